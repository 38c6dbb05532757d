/**
 * The embedded mesh's identity plane (issue 21; packages/identity/README.md): the mesh CA as a
 * supervised child, one bootstrap token per identity (the CA keeps only their SHA-256), and a
 * CertificateRotator here for each control-plane component and the administrator, writing the
 * files each component's `--tls-dir` points at. Sidecars get their own certificates through
 * their LEGO agent (token file, CA URL and trust bundle in the agent's config).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateRotator, type WorkloadCredential } from '@octo-mesh/identity';
import type { Logger, Registry } from '@octo-mesh/runtime';
import type { Supervisor } from './supervisor.js';

export const TRUST_DOMAIN = 'cluster.local';
export const CONTROL_NAMESPACE = 'octo-system';
/** Control-plane identities this process keeps certificates for: `sa/octo-<role>`. */
export const CONTROL_ROLES = ['dispatcher', 'meta-server', 'pilot', 'health', 'operator', 'admin'] as const;
export type EmbeddedRole = (typeof CONTROL_ROLES)[number];

export interface Identity {
  namespace: string;
  serviceAccount: string;
}

export interface MeshSecurityOptions {
  stateDir: string;
  supervisor: Supervisor;
  /** The `octo-ca` entry point. */
  caScript: string;
  caPort: number;
  caAdminPort: number;
  /** Workload identities that get a bootstrap token (keyed by a name, e.g. the sidecar instance). */
  workloads: Record<string, Identity>;
  /** Lifetime of workload and component certificates (default 1 h: rotation is seen in a demo). */
  ttlSeconds?: number;
  logLevel: string;
  logger: Logger;
  registry?: Registry;
}

export interface MeshSecurity {
  caUrl: string;
  /** PEM file of the roots the CA's serving certificate (and every mesh certificate) chains to. */
  trustBundleFile: string;
  /** `--tls-dir` of a control-plane component (or the administrator's, for octoctl). */
  tlsDir(role: EmbeddedRole): string;
  /** The bootstrap token file of a workload. */
  tokenFile(workload: string): string;
  stop(): Promise<void>;
}

const token = () => randomBytes(32).toString('base64url');
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export async function startMeshSecurity(o: MeshSecurityOptions): Promise<MeshSecurity> {
  const base = join(o.stateDir, 'security');
  const tokensDir = join(base, 'tokens');
  mkdirSync(tokensDir, { recursive: true, mode: 0o700 });
  const identities: Record<string, Identity> = { ...o.workloads };
  for (const role of CONTROL_ROLES) identities[`control-${role}`] = { namespace: CONTROL_NAMESPACE, serviceAccount: `octo-${role}` };
  const tokens = Object.fromEntries(Object.keys(identities).map((name) => [name, token()]));
  for (const [name, t] of Object.entries(tokens)) writeFileSync(join(tokensDir, `${name}.token`), t, { mode: 0o600 });
  const credentials = join(base, 'credentials.json');
  writeFileSync(
    credentials,
    JSON.stringify({ tokens: Object.entries(identities).map(([name, id]) => ({ sha256: sha256(tokens[name]!), ...id })) }, null, 2),
    { mode: 0o600 },
  );
  const caState = join(base, 'ca');
  const ttl = o.ttlSeconds ?? 3600;
  await o.supervisor.start({
    name: 'ca',
    script: o.caScript,
    args: [
      '--state-dir', caState, '--credentials', credentials,
      '--host', '127.0.0.1', '--port', `${o.caPort}`, '--admin-host', '127.0.0.1', '--admin-port', `${o.caAdminPort}`,
      '--max-ttl-seconds', `${Math.max(ttl, 3600)}`, '--default-ttl-seconds', `${ttl}`,
      '--log-level', o.logLevel,
    ],
    readyUrl: `http://127.0.0.1:${o.caAdminPort}/readyz`,
  });
  // The CA generated its root into its state directory on first start.
  const trustBundleFile = join(caState, 'roots', 'generated', 'cert.pem');
  const bundle = readFileSync(trustBundleFile, 'utf8');
  const caUrl = `https://127.0.0.1:${o.caPort}`;
  const rotators = CONTROL_ROLES.map((role) => {
    const t = tokens[`control-${role}`]!;
    return new CertificateRotator({
      ca: { url: caUrl, trustBundle: [bundle] },
      credential: () => t,
      dir: join(base, 'certs', role),
      ttlSeconds: ttl,
      logger: o.logger.child({ rotator: role }),
      ...(o.registry ? { registry: o.registry } : {}),
    }).start();
  });
  const first = await Promise.race([
    Promise.all(rotators.map((r) => r.firstCertificate)),
    new Promise<WorkloadCredential[]>((_, reject) => setTimeout(() => reject(new Error('the mesh CA issued no certificate to the control plane within 30 s')), 30_000).unref()),
  ]);
  o.logger.info('control-plane certificates issued', { identities: first.map((c) => c.spiffeId), expiresAt: first[0]?.expiresAt });
  return {
    caUrl,
    trustBundleFile,
    tlsDir: (role) => join(base, 'certs', role),
    tokenFile: (workload) => join(tokensDir, `${workload}.token`),
    stop: async () => {
      await Promise.all(rotators.map((r) => r.stop()));
    },
  };
}
