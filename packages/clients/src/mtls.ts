/**
 * mTLS for the control plane's gRPC (packages/identity/README.md): credentials that read the
 * certificate files a CertificateRotator keeps current (re-read on change, so a rotated
 * certificate is used by new connections without a restart), and the server interceptor that
 * lets a call through only when the caller's verified identity may call that method
 * (`decideAccess` in @octo-mesh/contracts).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChannelCredentials,
  ResponderBuilder,
  ServerCredentials,
  ServerInterceptingCall,
  ServerListenerBuilder,
  credentials,
  experimental,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import { DEFAULT_ROLE_PREFIX, MESH_TLS_FILES, decideAccess, decideAdminAccess, uriSan, type ControlRole, type MeshTls } from '@octo-mesh/contracts/access.js';
import { spiffeId } from '@octo-mesh/contracts/spiffe.js';
import { Counter, type AdminTls, type AdminTlsMaterial, type Logger, type Registry } from '@octo-mesh/runtime';

export { MESH_TLS_FILES, meshAdminTlsConfigFields, meshCaConfigFields, meshCaSettingsError, meshTlsConfigFields, meshTlsOf, refineMeshCa, uriSan, type MeshTls } from '@octo-mesh/contracts/access.js';

const TD = (tls: MeshTls) => tls.trustDomain ?? 'cluster.local';
const CNS = (tls: MeshTls) => tls.controlNamespace ?? 'octo-system';
const PREFIX = (tls: MeshTls) => tls.rolePrefix ?? DEFAULT_ROLE_PREFIX;

/**
 * One file watcher for the three files, passed as both the CA and the identity provider: grpc-js
 * 1.14's `createCertificateProviderServerCredentials` hands its two providers to the constructor
 * in the opposite order to its parameters, so separate providers would be swapped on the server.
 */
function provider(tls: MeshTls): experimental.CertificateProvider {
  return new experimental.FileWatcherCertificateProvider({
    caCertificateFile: join(tls.certDir, MESH_TLS_FILES.roots),
    certificateFile: join(tls.certDir, MESH_TLS_FILES.chain),
    privateKeyFile: join(tls.certDir, MESH_TLS_FILES.key),
    refreshIntervalMs: tls.refreshMs ?? 5000,
  });
}


/**
 * Channel options every mesh client passes (harmless in plaintext): the TLS server name. Mesh
 * servers are checked by identity, not by name, and the address dialled is usually an IP, which
 * Node refuses as SNI (RFC 6066) with a deprecation warning on every connection.
 */
export const MESH_CHANNEL_OPTIONS = { 'grpc.ssl_target_name_override': 'octo-mesh' } as const;

/**
 * Client credentials: plaintext without `tls`; with it, our certificate and the mesh's roots.
 * Mesh certificates name identities, not hosts, so the server is checked by its SPIFFE ID — the
 * control-plane `server` role's (`spiffe://<td>/ns/<control ns>/sa/octo-<role>`) — instead of
 * the host name dialled.
 */
export function meshChannelCredentials(tls: MeshTls | undefined, server: ControlRole): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  const p = provider(tls);
  const expected = spiffeId({ trustDomain: TD(tls), namespace: CNS(tls), serviceAccount: `${PREFIX(tls)}${server}` });
  return experimental.createCertificateProviderChannelCredentials(p, p, {
    checkServerIdentity: (_host, cert) => {
      const id = uriSan(cert);
      return id === expected ? undefined : new Error(`the server's identity is ${id ?? '(none)'}, expected ${expected}`);
    },
  });
}

export interface MeshServerSecurity {
  tls: MeshTls;
  logger: Logger;
  registry?: Registry;
}

/**
 * Server credentials: plaintext without `security`; with it, mTLS that requires a client
 * certificate chaining to the mesh's roots, and every call checked against the access table.
 * A refusal is logged and counted (`octo_grpc_access_denied_total{method,code}`).
 */
export function meshServerCredentials(security: MeshServerSecurity | undefined): ServerCredentials {
  if (!security) return ServerCredentials.createInsecure();
  const p = provider(security.tls);
  const access = { trustDomain: TD(security.tls), controlNamespace: CNS(security.tls), rolePrefix: PREFIX(security.tls), ...(security.tls.table ? { table: security.tls.table } : {}) };
  const denied = new Counter({
    name: 'octo_grpc_access_denied_total',
    help: 'gRPC calls refused by the control-plane access table, by method and status.',
    labelNames: ['method', 'code'],
    registers: security.registry ? [security.registry] : [],
  });
  const interceptor: ServerInterceptor = (method, call) => {
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        const d = decideAccess(method.path, uriSan(call.getAuthContext().sslPeerCertificate), access);
        if (d.allowed) return next(metadata);
        denied.inc({ method: method.path, code: d.code });
        security.logger.warn('gRPC call refused', { method: method.path, code: d.code, reason: d.reason, peer: call.getPeer() });
        call.sendStatus({ code: d.code === 'unauthenticated' ? status.UNAUTHENTICATED : status.PERMISSION_DENIED, details: d.reason });
      })
      .build();
    return new ServerInterceptingCall(call, new ResponderBuilder().withStart((next) => next(listener)).build());
  };
  return experimental.createServerCredentialsWithInterceptors(experimental.createCertificateProviderServerCredentials(p, p, true), [interceptor]);
}

/** The SPIFFE ID a control-plane server of `role` must present to a mesh client. */
export const controlPlaneId = (tls: MeshTls, role: ControlRole): string => spiffeId({ trustDomain: TD(tls), namespace: CNS(tls), serviceAccount: `${PREFIX(tls)}${role}` });

/** Reads the certificate files of `tls.certDir` as PEM text (throws naming the file). */
export function readMeshTlsMaterial(tls: MeshTls): AdminTlsMaterial {
  const read = (file: string) => {
    const path = join(tls.certDir, file);
    try {
      return readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return { key: read(MESH_TLS_FILES.key), cert: read(MESH_TLS_FILES.chain), ca: read(MESH_TLS_FILES.roots) };
}

/**
 * The admin port over mTLS (`adminMtls`): the component's mesh certificate, re-read every
 * `refreshMs` (a rotated one serves new connections), and `/debug/*` only for a verified client
 * certificate of role admin or operator (`decideAdminAccess`). A refusal answers 401 (no or an
 * unverified certificate) or 403 (another identity), is logged and counted
 * (`octo_admin_access_denied_total{code}`); a reload that fails keeps the last certificate, logged
 * and counted (`octo_admin_tls_reload_errors_total`).
 */
export function meshAdminTls(tls: MeshTls, deps: { logger: Logger; registry: Registry }): AdminTls {
  const access = { trustDomain: TD(tls), controlNamespace: CNS(tls), rolePrefix: PREFIX(tls) };
  const denied = new Counter({ name: 'octo_admin_access_denied_total', help: 'Admin (debug) requests refused for want of a client certificate of role admin or operator.', labelNames: ['code'], registers: [deps.registry] });
  const reloadErrors = new Counter({ name: 'octo_admin_tls_reload_errors_total', help: "Failed re-reads of the admin port's certificate files (the last certificate stays in use).", registers: [deps.registry] });
  let last: AdminTlsMaterial | undefined;
  return {
    material() {
      try {
        const next = readMeshTlsMaterial(tls);
        if (last && next.key === last.key && next.cert === last.cert && next.ca === last.ca) return undefined;
        if (last) deps.logger.info('admin TLS certificate reloaded', { certDir: tls.certDir });
        return (last = next);
      } catch (err) {
        if (!last) throw err;
        reloadErrors.inc();
        deps.logger.warn('admin TLS certificate reload failed; keeping the last one', { certDir: tls.certDir, error: (err as Error).message });
        return undefined;
      }
    },
    ...(tls.refreshMs ? { refreshMs: tls.refreshMs } : {}),
    authorize(peer, path) {
      const d = peer.authorized
        ? decideAdminAccess(path, uriSan({ subjectaltname: peer.subjectAltName }), access)
        : ({ allowed: false, code: 'unauthenticated', reason: `GET ${path} requires a client certificate from the mesh CA${peer.authorizationError ? ` (${peer.authorizationError})` : ''}` } as const);
      if (d.allowed) return true;
      denied.inc({ code: d.code });
      deps.logger.warn('admin request refused', { path, code: d.code, reason: d.reason });
      return { status: d.code === 'unauthenticated' ? 401 : 403, reason: d.reason };
    },
  };
}
