/**
 * Who may call what on the control plane (packages/identity/README.md, "Control-plane
 * authorization"): a caller is known by the SPIFFE ID of the client certificate it presented
 * over mTLS, and its role is read from that ID — `sa/octo-<role>` in the control plane's
 * namespace — never from anything the caller says about itself. Pure: the gRPC servers apply it
 * in an interceptor (packages/clients/src/mtls.ts).
 */

import { z } from 'zod';
import { parseSpiffeId, type WorkloadIdentity } from './spiffe.js';

/** The URI SAN (SPIFFE ID) of a certificate as Node describes it (`subjectaltname`), if it has one. */
export function uriSan(cert: { subjectaltname?: string | undefined } | undefined): string | undefined {
  for (const part of cert?.subjectaltname?.split(',') ?? []) {
    const p = part.trim();
    if (p.startsWith('URI:')) return p.slice(4);
  }
  return undefined;
}

/** A SPIFFE ID parsed, or why it is not one of the mesh's (the message names the part). */
export function spiffeIdOrError(uri: string): WorkloadIdentity | { error: string } {
  try {
    return parseSpiffeId(uri);
  } catch (err) {
    return { error: `${JSON.stringify(uri)}: ${(err as Error).message}` };
  }
}

/** Control-plane roles, each the service account `octo-<role>` in the control plane's namespace. */
export const CONTROL_ROLES = ['pilot', 'dispatcher', 'meta-server', 'health', 'operator', 'ca', 'admin'] as const;
export type ControlRole = (typeof CONTROL_ROLES)[number];

/** Who may call a method: control-plane roles, or `mesh` (any identity of the trust domain). */
export type Allowed = readonly (ControlRole | 'mesh')[];

const XDS = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
/**
 * Every gRPC method a control-plane server serves, by full path. A method not listed is refused
 * (fail closed), so a new RPC must be placed here to be callable over mTLS.
 */
export const METHOD_ACCESS: Readonly<Record<string, Allowed>> = {
  '/octo.mesh.v1.MetaServer/RegisterPilot': ['pilot'],
  '/octo.mesh.v1.MetaServer/PilotHeartbeat': ['pilot'],
  '/octo.mesh.v1.MetaServer/DeregisterPilot': ['pilot', 'admin'],
  '/octo.mesh.v1.MetaServer/Locate': ['mesh'],
  '/octo.mesh.v1.MetaServer/CheckerHeartbeat': ['health'],
  '/octo.mesh.v1.MetaServer/DeregisterChecker': ['health', 'admin'],
  // Instances outside Kubernetes register themselves (any workload; its own namespace is checked
  // by the handler once the meta server reads the caller's identity).
  '/octo.mesh.v1.ServiceRegistry/Register': ['mesh'],
  '/octo.mesh.v1.ServiceRegistry/Heartbeat': ['mesh'],
  '/octo.mesh.v1.ServiceRegistry/Deregister': ['mesh'],
  '/octo.mesh.v1.Dispatcher/Watch': ['pilot', 'meta-server', 'health', 'operator', 'admin'],
  '/octo.mesh.v1.Dispatcher/Get': ['pilot', 'meta-server', 'health', 'operator', 'admin'],
  '/octo.mesh.v1.Dispatcher/List': ['pilot', 'meta-server', 'health', 'operator', 'admin'],
  // The meta server publishes registry instances, the checker endpoint health, the operator and
  // administrators (octoctl) everything else.
  '/octo.mesh.v1.Dispatcher/Apply': ['operator', 'admin', 'meta-server', 'health'],
  '/octo.mesh.v1.Dispatcher/Delete': ['operator', 'admin', 'meta-server', 'health'],
  '/octo.mesh.v1.Dispatcher/UpdateStatus': ['operator', 'pilot', 'admin'],
  '/octo.mesh.v1.SidecarStatusService/Report': ['mesh'],
  [`/${XDS}/StreamAggregatedResources`]: ['mesh'],
  [`/${XDS}/DeltaAggregatedResources`]: ['mesh'],
};

export interface AccessOptions {
  trustDomain: string;
  /** The control plane's namespace (`octo-system`): where `sa/octo-<role>` identities live. */
  controlNamespace: string;
  /** The service accounts' prefix before the role (default `octo-`; the chart's is `<release>-`). */
  rolePrefix?: string;
  /** Defaults to {@link METHOD_ACCESS}. */
  table?: Readonly<Record<string, Allowed>>;
}

export type AccessDecision =
  | { allowed: true; identity: WorkloadIdentity; role: ControlRole | undefined }
  | { allowed: false; code: 'unauthenticated' | 'permission-denied'; reason: string };

/** The default prefix of the control plane's service accounts: `octo-<role>`. */
export const DEFAULT_ROLE_PREFIX = 'octo-';

/** The role a control-plane identity holds, if any: `sa/<prefix><role>` in the control namespace. */
export function roleOf(id: WorkloadIdentity, controlNamespace: string, rolePrefix = DEFAULT_ROLE_PREFIX): ControlRole | undefined {
  if (id.namespace !== controlNamespace || !id.serviceAccount.startsWith(rolePrefix)) return undefined;
  const role = id.serviceAccount.slice(rolePrefix.length);
  return (CONTROL_ROLES as readonly string[]).includes(role) ? (role as ControlRole) : undefined;
}

/**
 * May the caller whose verified certificate carries `uri` (undefined: no certificate, or none
 * verified) call `method`? The reason names the method, the caller and what it lacks.
 */
export function decideAccess(method: string, uri: string | undefined, opts: AccessOptions): AccessDecision {
  if (!uri) return { allowed: false, code: 'unauthenticated', reason: `${method} requires a client certificate from the mesh CA` };
  const id = spiffeIdOrError(uri);
  if ('error' in id) return { allowed: false, code: 'unauthenticated', reason: `${method}: the client certificate's identity is unusable: ${id.error}` };
  if (id.trustDomain !== opts.trustDomain) return { allowed: false, code: 'unauthenticated', reason: `${method}: ${uri} is not of trust domain ${opts.trustDomain}` };
  const allowed = (opts.table ?? METHOD_ACCESS)[method];
  if (!allowed) return { allowed: false, code: 'permission-denied', reason: `${method} is not callable over the mesh's mTLS (no access rule)` };
  const prefix = opts.rolePrefix ?? DEFAULT_ROLE_PREFIX;
  const role = roleOf(id, opts.controlNamespace, prefix);
  if (allowed.includes('mesh') || (role && allowed.includes(role))) return { allowed: true, identity: id, role };
  const who = allowed.map((r) => (r === 'mesh' ? 'any mesh identity' : `ns/${opts.controlNamespace}/sa/${prefix}${r}`)).join(', ');
  return { allowed: false, code: 'permission-denied', reason: `${method} is for ${who}; ${uri} may not call it` };
}

/**
 * Who may read a control-plane component's debug endpoints (`/debug/*`) when its admin port
 * serves mTLS (`adminMtls`): administrators (octoctl) and the operator (its fleet poller). Probes,
 * `/healthz`, `/readyz` and `/metrics` stay open on that port (kubelet and Prometheus present no
 * mesh certificate); outside Kubernetes the admin port binds loopback instead.
 */
export const ADMIN_DEBUG_ACCESS: Allowed = ['admin', 'operator'];

/** The name a debug read goes by in the access decision and its reasons: `GET <path>`. */
export const adminRoute = (path: string) => `GET ${path}`;

/**
 * May the caller whose verified client certificate carries `uri` read the admin route `path`?
 * {@link decideAccess} over {@link ADMIN_DEBUG_ACCESS}.
 */
export function decideAdminAccess(path: string, uri: string | undefined, opts: Omit<AccessOptions, 'table'>): AccessDecision {
  const route = adminRoute(path);
  return decideAccess(route, uri, { ...opts, table: { [route]: ADMIN_DEBUG_ACCESS } });
}

/** The files a certificate rotator keeps current in its directory (see the identity README). */
export const MESH_TLS_FILES = { chain: 'cert-chain.pem', key: 'key.pem', roots: 'root-cert.pem' } as const;

export interface MeshTls {
  /** Directory holding `cert-chain.pem`, `key.pem` and `root-cert.pem`. */
  certDir: string;
  /** Default `cluster.local`. */
  trustDomain?: string;
  /** Where the control plane's `sa/octo-<role>` identities live; default `octo-system`. */
  controlNamespace?: string;
  /** The control plane's service accounts are `<rolePrefix><role>`; default `octo-`. */
  rolePrefix?: string;
  /** How often the files are re-read for a rotated certificate (default 5 s). */
  refreshMs?: number;
  /** The access table, default METHOD_ACCESS (servers only). */
  table?: Readonly<Record<string, Allowed>>;
}

/**
 * The settings every control-plane component takes for mTLS, spread into its zod config:
 * without `tlsDir` it speaks plaintext (a development mesh); with it, mTLS both ways.
 */
export const meshTlsConfigFields = {
  tlsDir: z.string().min(1).optional().describe('Directory of cert-chain.pem, key.pem and root-cert.pem (kept current by a certificate rotator): mTLS on every gRPC server and client.'),
  trustDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,253}[a-z0-9])?$/, 'must be a lower-case DNS name').default('cluster.local'),
  controlNamespace: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name (DNS label)').default('octo-system'),
  rolePrefix: z
    .string()
    .regex(/^[a-z0-9][-a-z0-9.]*-$/, 'must be the start of a service account name, ending in "-" (e.g. "octo-")')
    .default(DEFAULT_ROLE_PREFIX)
    .describe('The control plane\'s service accounts are <rolePrefix><role> (the chart\'s: "<release>-").'),
};

/**
 * A control-plane component's admin port over mTLS (spread beside {@link meshTlsConfigFields},
 * checked by {@link refineMeshCa}: it needs `tlsDir`). The component serves HTTPS with its mesh
 * certificate; debug routes need a client certificate of {@link ADMIN_DEBUG_ACCESS}; and it reads
 * other components' debug routes (the operator's fleet poller) over HTTPS with its certificate.
 */
export const meshAdminTlsConfigFields = {
  adminMtls: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true')
    .describe('Serve the admin port over HTTPS with the mesh certificate; /debug/* need a client certificate of role admin or operator (needs tlsDir).'),
};

/**
 * The settings of a control-plane component that obtains its own certificate from the mesh CA
 * (spread beside {@link meshTlsConfigFields}, checked by {@link refineMeshCa}).
 */
export const meshCaConfigFields = {
  caUrl: z.url({ protocol: /^https$/, error: 'must be an https:// URL of the mesh CA' }).optional().describe('The mesh CA: with it, the component obtains its own certificate into tlsDir and keeps it fresh (caTrustBundleFile and caTokenFile required).'),
  caTrustBundleFile: z.string().min(1).optional().describe('PEM roots the CA\'s serving certificate chains to.'),
  caTokenFile: z.string().min(1).optional().describe('The credential for first issuance: a projected ServiceAccount token (audience octo-ca) or a bootstrap token; read at each use.'),
};

/** The MeshTls of a config with {@link meshTlsConfigFields}, or undefined (plaintext). */
export function meshTlsOf(c: { tlsDir?: string | undefined; trustDomain: string; controlNamespace: string; rolePrefix?: string | undefined }): MeshTls | undefined {
  return c.tlsDir ? { certDir: c.tlsDir, trustDomain: c.trustDomain, controlNamespace: c.controlNamespace, ...(c.rolePrefix && c.rolePrefix !== DEFAULT_ROLE_PREFIX ? { rolePrefix: c.rolePrefix } : {}) } : undefined;
}

/**
 * Why a config's CA settings do not go together (field, message), or undefined: with `caUrl`,
 * `tlsDir`, `caTrustBundleFile` and `caTokenFile` are required; without it, the CA files are
 * meaningless. Pure; components report it as a configuration error naming the field.
 */
export function meshCaSettingsError(c: { caUrl?: string | undefined; tlsDir?: string | undefined; caTrustBundleFile?: string | undefined; caTokenFile?: string | undefined; adminMtls?: boolean | undefined }): { field: string; message: string } | undefined {
  if (c.adminMtls && !c.tlsDir) return { field: 'adminMtls', message: 'requires tlsDir (the admin port serves the mesh certificate kept there)' };
  if (c.caUrl) {
    for (const field of ['tlsDir', 'caTrustBundleFile', 'caTokenFile'] as const) if (!c[field]) return { field, message: `required with caUrl (${c.caUrl}): where the certificate goes and how the CA is trusted and asked` };
    return undefined;
  }
  for (const field of ['caTrustBundleFile', 'caTokenFile'] as const) if (c[field]) return { field: 'caUrl', message: `required with ${field} (the CA settings go together)` };
  return undefined;
}

/** {@link meshCaSettingsError} as a zod refinement, for the configs that spread {@link meshTlsConfigFields}. */
export function refineMeshCa(c: Parameters<typeof meshCaSettingsError>[0], ctx: z.RefinementCtx): void {
  const e = meshCaSettingsError(c);
  if (e) ctx.addIssue({ code: 'custom', path: [e.field], message: e.message });
}
