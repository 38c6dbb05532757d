#!/usr/bin/env node
import { KubeConfig } from '@kubernetes/client-node';
import { ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig } from '@octo-mesh/runtime';
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
  if (config.credentials === 'kubernetes') {
    const kc = new KubeConfig();
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
    ca = await startCa(config, { logger, registry, ...(verifier ? { verifier } : {}) });
  } catch (err) {
    // Roots or credentials that cannot be read or do not fit: a configuration error, named.
    process.stderr.write(`octo-ca: ${(err as Error).message}\n`);
    process.exit(2);
  }
  shutdown.add('ca', () => ca.stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-ca: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
