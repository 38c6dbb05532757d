#!/usr/bin/env node
import { KubeConfig } from '@kubernetes/client-node';
import { meshAdminTls, meshTlsOf, startGrpcServer } from '@octo-mesh/clients';
import { keepMeshCertificateOf } from '@octo-mesh/identity';
import { ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, startAdminServer } from '@octo-mesh/runtime';
import { metaServerConfig } from './config.js';
import { LeaseCheckers } from './checker-membership.js';
import { LeasePilots } from './lease-membership.js';
import { MetaServer, MetaServerService, ServiceRegistryService } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(metaServerConfig, { envPrefix: 'OCTO_META_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-meta-server: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('meta-server', config.logLevel);
  const registry = createMetricsRegistry('meta-server');
  const shutdown = new GracefulShutdown({ logger }).install();
  const keeper = await keepMeshCertificateOf(config, { logger, registry, onStarted: (k) => shutdown.add('certificate rotator', () => k.stop()) });
  let leases: LeasePilots | undefined;
  let checkerLeases: LeaseCheckers | undefined;
  let namespace: string | undefined;
  if (config.kubernetes) {
    const kc = new KubeConfig();
    try {
      if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
      else kc.loadFromDefault();
    } catch (err) {
      process.stderr.write(`octo-meta-server: invalid configuration\n  kubeconfig: ${(err as Error).message}\n`);
      process.exit(2);
    }
    namespace = config.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
    leases = new LeasePilots({ kubeConfig: kc, namespace, ttlMs: config.pilotTtlMs, rampMs: config.joinRampMs, vnodes: config.vnodes, logger });
    await leases.start();
    shutdown.add('pilot leases', () => leases!.stop());
    checkerLeases = new LeaseCheckers({ kubeConfig: kc, namespace, ttlMs: config.pilotTtlMs, logger });
    await checkerLeases.start();
    shutdown.add('checker leases', () => checkerLeases!.stop());
  }
  const tls = meshTlsOf(config);
  const meta = new MetaServer({ logger, registry, ...config, ...(leases ? { leases } : {}), ...(checkerLeases ? { checkerLeases } : {}), ...(tls ? { tls } : {}) });
  meta.start();
  shutdown.add('meta server', () => meta.stop());
  const grpc = await startGrpcServer(config.host, config.grpcPort, (s) => {
    s.addService(MetaServerService, meta.metaService());
    s.addService(ServiceRegistryService, meta.registryService());
  }, tls && { tls, logger, registry });
  shutdown.add('grpc server', () => grpc.close());
  const admin = await startAdminServer({
    ...(tls && config.adminMtls ? { tls: meshAdminTls(tls, { logger, registry }) } : {}),
    host: config.host,
    port: config.adminPort,
    registry,
    readiness: {
      pilots: () => meta.hasPilots() || 'no pilot registered',
      dispatcher: () => meta.dispatcherHealth(),
      ...(leases ? { leases: () => leases!.health() } : {}),
      ...(checkerLeases ? { checkerLeases: () => checkerLeases!.health() } : {}),
      ...(keeper ? { certificate: () => keeper.readiness() } : {}),
    },
    routes: meta.debugRoutes(),
  });
  shutdown.add('admin server', () => admin.close());
  logger.info('listening', { grpcPort: grpc.port, adminPort: admin.port, host: config.host, mtls: !!tls, dispatcher: config.dispatcherAddress, ...(namespace ? { leases: namespace } : {}) });
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-meta-server: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
