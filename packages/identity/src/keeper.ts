/**
 * A control-plane component's own certificate, from the mesh CA (identity README, "Control-plane
 * identities in Kubernetes"): the component starts a CertificateRotator that publishes into its
 * `tlsDir` — the directory its gRPC servers and clients already read (and re-read on rotation) —
 * and starts serving once the first certificate is there. The credential is a projected
 * ServiceAccount token (audience `octo-ca`) in Kubernetes.
 */
import type { Logger, Registry } from '@octo-mesh/runtime';
import { CertificateRotator, credentialFromFile } from './rotator.js';
import { readTrustBundleFile } from './trust-bundle.js';

export interface MeshCaSettings {
  caUrl: string;
  caTrustBundleFile: string;
  caTokenFile: string;
  /** Where cert-chain.pem, key.pem and root-cert.pem are published. */
  tlsDir: string;
}

export interface MeshCertificateKeeper {
  /** For `/readyz`: true while a certificate valid now is held, else why not. */
  readiness(): true | string;
  stop(): Promise<void>;
}

/**
 * Starts the rotator and resolves once the first certificate is published (failures are retried
 * with backoff and jitter, each logged and counted by the rotator, for as long as it takes: the
 * component cannot serve mTLS without it). Rejects, naming the field, only for a trust bundle
 * file that cannot be used. `onStarted` receives the keeper before the wait, so a shutdown
 * during the wait stops the rotator.
 */
export async function keepMeshCertificate(s: MeshCaSettings, deps: { logger: Logger; registry: Registry; onStarted?: (k: MeshCertificateKeeper) => void }): Promise<MeshCertificateKeeper> {
  const trustBundle = await readTrustBundleFile(s.caTrustBundleFile);
  const rotator = new CertificateRotator({ ca: { url: s.caUrl, trustBundle }, credential: credentialFromFile(s.caTokenFile), dir: s.tlsDir, logger: deps.logger, registry: deps.registry });
  const keeper: MeshCertificateKeeper = {
    readiness: () => {
      if (rotator.ready) return true;
      const c = rotator.current;
      return c ? `certificate of ${c.spiffeId} expired at ${c.expiresAt.toISOString()}; renewal from ${s.caUrl} failing` : `no certificate yet from ${s.caUrl}`;
    },
    stop: () => rotator.stop(),
  };
  deps.onStarted?.(keeper);
  rotator.start();
  deps.logger.info('waiting for the first certificate', { ca: s.caUrl, dir: s.tlsDir });
  const first = await rotator.firstCertificate;
  deps.logger.info('certificate obtained', { spiffeId: first.spiffeId, expiresAt: first.expiresAt.toISOString(), dir: s.tlsDir });
  return keeper;
}

/** {@link keepMeshCertificate} for a config with the mesh TLS fields: undefined without `caUrl`. */
export function keepMeshCertificateOf(
  c: { caUrl?: string | undefined; caTrustBundleFile?: string | undefined; caTokenFile?: string | undefined; tlsDir?: string | undefined },
  deps: Parameters<typeof keepMeshCertificate>[1],
): Promise<MeshCertificateKeeper> | undefined {
  if (!c.caUrl) return undefined;
  // The config schema (refineMeshCa) already requires the others with caUrl.
  return keepMeshCertificate({ caUrl: c.caUrl, caTrustBundleFile: c.caTrustBundleFile!, caTokenFile: c.caTokenFile!, tlsDir: c.tlsDir! }, deps);
}
