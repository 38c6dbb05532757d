#!/usr/bin/env node
import { hostname } from 'node:os';
import { CheckerMembership, DispatcherConnection, meshAdminTls, meshTlsOf } from '@octo-mesh/clients';
import { keepMeshCertificateOf } from '@octo-mesh/identity';
import { ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, startAdminServer } from '@octo-mesh/runtime';
import { HealthChecker } from './checker.js';
import { healthCheckerConfig } from './config.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(healthCheckerConfig, { envPrefix: 'OCTO_HEALTH_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-health-checker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const checkerId = config.checkerId ?? `${hostname()}-${process.pid}`;
  const logger = createLogger('health-checker', config.logLevel);
  const registry = createMetricsRegistry('health-checker');
  const shutdown = new GracefulShutdown({ logger, timeoutMs: config.shutdownGraceSeconds * 1000 + 5000 }).install();
  const keeper = await keepMeshCertificateOf(config, { logger, registry, onStarted: (k) => shutdown.add('certificate rotator', () => k.stop()) });
  const tls = meshTlsOf(config);
  const connection = new DispatcherConnection(config.dispatcherAddress, tls);
  const checker = new HealthChecker({
    checkerId,
    connection,
    logger,
    registry,
    maxUnhealthyPercent: config.maxUnhealthyPercent,
    maxConcurrentProbes: config.maxConcurrentProbes,
    vnodes: config.vnodes,
  });
  let membership: CheckerMembership | undefined;
  const admin = await startAdminServer({
    ...(tls && config.adminMtls ? { tls: meshAdminTls(tls, { logger, registry }) } : {}),
    host: config.adminHost,
    port: config.adminPort,
    registry,
    readiness: {
      dispatcher: () => (checker.informer.synced ? checker.health() : 'dispatcher not listed yet'),
      ...(config.metaServerAddress ? { membership: () => (membership!.lastAnsweredAt > 0 ? true : 'not yet a member (meta server not answered)') } : {}),
      ...(keeper ? { certificate: () => keeper.readiness() } : {}),
    },
    routes: { '/debug/checks': () => checker.debugView() },
  });
  // Order matters on the way out: leave the ring first (the others take the services over at
  // once), then stop checking, then close the servers. Registered in reverse.
  shutdown.add('admin server', () => admin.close());
  shutdown.add('dispatcher connection', () => connection.close());
  shutdown.add('checker', () => checker.stop());
  if (config.metaServerAddress) {
    membership = new CheckerMembership({
      metaAddress: config.metaServerAddress,
      ...(tls ? { tls } : {}),
      checkerId,
      adminAddress: `${config.advertiseHost ?? config.adminHost}:${admin.port}`,
      onMembers: (live) => checker.setMembers(live),
      logger,
    });
    shutdown.add('membership', () => membership!.stop());
  }
  logger.info('listening', { checker: checkerId, adminPort: admin.port, dispatcher: config.dispatcherAddress, meta: config.metaServerAddress });
  // Join only once the informer has listed: a member that cannot read the mesh yet would own
  // services and check none of them.
  await checker.start();
  membership?.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-health-checker: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
