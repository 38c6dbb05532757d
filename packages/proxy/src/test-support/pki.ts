import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Certificates for TLS tests, made with the openssl CLI (ECDSA P-256, SHA-256, the SPIFFE ID as
 * the only URI SAN, as packages/identity/README.md specifies), and SDS files in the contract's
 * format. Independent of the mesh CA library on purpose: the proxy is tested against certificates
 * any CA could have issued.
 */
const OPENSSL = '/usr/bin/openssl';

export interface KeyPair {
  cert: string;
  key: string;
  /** Serial number, upper-case hex as Node's `serialNumber` prints it. */
  serial: string;
}

export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'octo-pki-'));
  private n = 0;

  private run(args: string[]): void {
    execFileSync(OPENSSL, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  }

  /** A self-signed root (CA:true, pathlen 0). */
  root(cn: string): KeyPair {
    const k = join(this.dir, `${cn}-${++this.n}.key`);
    const c = join(this.dir, `${cn}-${this.n}.crt`);
    this.run(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-sha256', '-keyout', k, '-out', c, '-subj', `/CN=${cn}`, '-days', '3650',
      '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return this.read(c, k);
  }

  /** A workload certificate for `spiffeId` signed by `ca`; `days` < 0 makes one already expired. */
  leaf(ca: KeyPair, spiffeId: string, days = 1): KeyPair {
    const i = ++this.n;
    const k = join(this.dir, `leaf-${i}.key`);
    const csr = join(this.dir, `leaf-${i}.csr`);
    const c = join(this.dir, `leaf-${i}.crt`);
    const caCert = join(this.dir, `ca-${i}.crt`);
    const caKey = join(this.dir, `ca-${i}.key`);
    const ext = join(this.dir, `leaf-${i}.ext`);
    writeFileSync(caCert, ca.cert);
    writeFileSync(caKey, ca.key);
    writeFileSync(ext, `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=URI:${spiffeId}\n`);
    this.run(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', k, '-out', csr, '-subj', '/O=octo-mesh-test']);
    this.run(['x509', '-req', '-sha256', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${randomBytes(8).toString('hex').replace(/^0+/, '1')}`, '-days', String(days), '-extfile', ext, '-out', c]);
    return this.read(c, k);
  }

  private read(certPath: string, keyPath: string): KeyPair {
    const cert = readFileSync(certPath, 'utf8');
    const serial = execFileSync(OPENSSL, ['x509', '-noout', '-serial', '-in', certPath], { encoding: 'utf8' }).trim().replace(/^serial=/, '').toUpperCase();
    return { cert, key: readFileSync(keyPath, 'utf8'), serial };
  }
}

const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';

/** Writes a file atomically (temporary file, then rename), as the CertificateRotator does. */
export function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** `<dir>/default.json`: the workload's certificate and key as an SDS DiscoveryResponse. */
export function certificateSds(kp: KeyPair, version = kp.serial): string {
  return JSON.stringify({
    version_info: version,
    resources: [{ '@type': SECRET, name: 'default', tls_certificate: { certificate_chain: { inline_string: kp.cert }, private_key: { inline_string: kp.key } } }],
  });
}

/** `<dir>/ROOTCA.json`: the trust bundle as an SDS DiscoveryResponse. */
export function rootSds(roots: KeyPair[], version = roots.map((r) => r.serial).join('+')): string {
  return JSON.stringify({ version_info: version, resources: [{ '@type': SECRET, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: roots.map((r) => r.cert).join('') } } }] });
}

/** Envoy-JSON TLS pieces that read the contract's SDS files in `dir`. */
export function sdsTlsContext(dir: string, alpn = ['h2', 'http/1.1'], san?: { exact?: string; prefix?: string }): Record<string, unknown> {
  return {
    tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { path_config_source: { path: join(dir, 'default.json') } } }],
    ...(san
      ? {
          combined_validation_context: {
            default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: san }] },
            validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { path_config_source: { path: join(dir, 'ROOTCA.json') } } },
          },
        }
      : { validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: { path_config_source: { path: join(dir, 'ROOTCA.json') } } } }),
    alpn_protocols: alpn,
  };
}

export const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const TLS_INSPECTOR = { name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } };

/** An inbound listener in the contract's shape: the TLS chain (mTLS required) and, PERMISSIVE only, the plaintext one. */
export function inboundListener(name: string, plainListener: unknown, tlsContext: Record<string, unknown>, mode: 'STRICT' | 'PERMISSIVE'): unknown {
  const base = plainListener as { filter_chains: { filters: unknown[] }[] };
  const filters = base.filter_chains[0]!.filters;
  return {
    name,
    listener_filters: [TLS_INSPECTOR],
    filter_chains: [
      {
        filter_chain_match: { transport_protocol: 'tls' },
        filters,
        transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS, require_client_certificate: true, common_tls_context: tlsContext } },
      },
      ...(mode === 'PERMISSIVE' ? [{ filter_chain_match: { transport_protocol: 'raw_buffer' }, filters }] : []),
    ],
  };
}

/** A cluster's `transport_socket` with an UpstreamTlsContext. */
export function upstreamTransport(tlsContext: Record<string, unknown>, sni = ''): Record<string, unknown> {
  return { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS, ...(sni ? { sni } : {}), common_tls_context: tlsContext } } };
}
