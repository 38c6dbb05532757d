#!/usr/bin/env node
import { KubeConfig } from '@kubernetes/client-node';
import { Backoff, ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, recordError, sleep } from '@octo-mesh/runtime';
import { publishTrustBundle, syncRootSecret } from './kube-root.js';
import { caConfig } from './config.js';
import { startCa } from './server.js';
import { TokenReviewVerifier } from './token-review.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(caConfig, { envPrefix: 'OCTO_CA_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-ca: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('ca', config.logLevel);
  const registry = createMetricsRegistry('ca');
  const shutdown = new GracefulShutdown({ logger, timeoutMs: config.shutdownGraceSeconds * 1000 + 5000 }).install();
  let verifier;
  let kc: KubeConfig | undefined;
  if (config.credentials === 'kubernetes') {
    kc = new KubeConfig();
    try {
      if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
      else kc.loadFromDefault();
      if (!kc.getCurrentCluster()) throw new Error('no current cluster (not in a pod, no ~/.kube/config)');
    } catch (err) {
      process.stderr.write(`octo-ca: invalid configuration: kubeconfig: ${config.kubeconfig ?? 'default'}: ${(err as Error).message}\n`);
      process.exit(2);
    }
    verifier = new TokenReviewVerifier(kc, config.tokenAudience);
  }
  let ca;
  try {
    if (kc && config.rootSecret) await syncRootSecret({ kubeConfig: kc, namespace: config.namespace, name: config.rootSecret, stateDir: config.stateDir!, trustDomain: config.trustDomain, lifetimeSeconds: config.generatedRootLifetimeSeconds, logger });
    ca = await startCa(config, { logger, registry, ...(verifier ? { verifier } : {}) });
  } catch (err) {
    // Roots or credentials that cannot be read or do not fit: a configuration error, named.
    process.stderr.write(`octo-ca: ${(err as Error).message}\n`);
    process.exit(2);
  }
  shutdown.add('ca', () => ca.stop());
  if (kc && config.trustBundleConfigMap) {
    const publish = { kubeConfig: kc, namespace: config.namespace, name: config.trustBundleConfigMap, logger };
    // Pods wait for this ConfigMap (a volume): retried with backoff until written; then kept in
    // step with the roots (a root that expires leaves the bundle) once a minute.
    const backoff = new Backoff({ initialMs: 500, maxMs: 30_000, jitter: 0.5 });
    const keep = async (): Promise<void> => {
      for (;;) {
        try {
          await publishTrustBundle({ ...publish, trustBundle: ca.trustBundle() });
          backoff.reset();
          return;
        } catch (err) {
          recordError(logger, 'ca trust bundle publish', err, { configMap: `${config.namespace}/${config.trustBundleConfigMap}` }, 'error');
          await sleep(backoff.next());
        }
      }
    };
    await keep();
    const timer = setInterval(() => void keep(), 60_000);
    shutdown.add('trust bundle publisher', () => clearInterval(timer));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-ca: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
