#!/usr/bin/env node
import { statSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { RESOURCE_KINDS, isResourceKind, type ManifestIssue } from '@octo-mesh/api';
import { ConfigError, Gauge, GracefulShutdown, ValidationError, createLogger, createMetricsRegistry, loadConfig, startAdminServer } from '@octo-mesh/runtime';
import { dispatcherConfig } from './config.js';
import { DirectorySource } from './dir-source.js';
import { KubernetesSource } from './kube-source.js';
import { KUBE_KINDS, KubernetesStore } from './kube-store.js';
import { MemoryStore } from './memory-store.js';
import { meshAdminTls, meshTlsOf, startGrpcServer } from '@octo-mesh/clients';
import { keepMeshCertificateOf } from '@octo-mesh/identity';
import type { DispatcherWatcherView } from '@octo-mesh/contracts';
import { DispatcherGrpc, DispatcherService, type DispatcherServiceOptions } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(dispatcherConfig, { envPrefix: 'OCTO_DISPATCHER_' });
    for (const [field, dir] of [['watchDir', config.watchDir]] as const) {
      if (dir !== undefined && !statSync(dir, { throwIfNoEntry: false })?.isDirectory())
        throw new ConfigError('invalid configuration', [{ path: field, message: `${dir} is not a directory` }]);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-dispatcher: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('dispatcher', config.logLevel);
  const registry = createMetricsRegistry('dispatcher');
  const shutdown = new GracefulShutdown({ logger }).install();

  const store = MemoryStore.open({ ...(config.dataDir ? { dir: config.dataDir } : {}), historySize: config.historySize, logger });
  shutdown.add('store', () => store.close());
  // Computed when scraped: a write costs nothing here (recounting on every change made a bulk
  // apply quadratic — 17 objects/s at 5,000 policies).
  new Gauge({
    name: 'octo_dispatcher_objects',
    help: 'Objects in the store, by kind.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const kind of RESOURCE_KINDS) this.set({ kind }, store.count(kind));
    },
  });
  new Gauge({
    name: 'octo_dispatcher_store_version',
    help: 'The store version (grows with every change).',
    registers: [registry],
    collect() {
      this.set(Number(store.version()));
    },
  });
  const manifestIssues = new Gauge({ name: 'octo_dispatcher_manifest_issues', help: 'Problems in watched manifest files (rejected files keep their last good content).', registers: [registry] });

  const ready: Record<string, boolean> = {};
  let issues: ManifestIssue[] = [];
  let dirSource: DirectorySource | undefined;
  if (config.watchDir) {
    ready['directory'] = false;
    dirSource = new DirectorySource({
      dir: config.watchDir,
      store,
      logger,
      onIssues: (i) => {
        issues = i;
        manifestIssues.set(i.length);
      },
    });
    await dirSource.start();
    ready['directory'] = true;
    shutdown.add('directory source', () => dirSource?.stop());
  }
  let writeThrough: DispatcherServiceOptions['writeThrough'];
  let kubeHealth: (() => true | string) | undefined;
  if (config.kubernetes) {
    ready['kubernetes'] = false;
    const kc = new KubeConfig();
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
    writeThrough = { store: await KubernetesStore.open({ kubeConfig: kc }), kinds: KUBE_KINDS };
    const kube = new KubernetesSource({ kubeConfig: kc, store, logger });
    await kube.start();
    kubeHealth = () => kube.health();
    ready['kubernetes'] = true;
    shutdown.add('kubernetes source', () => kube.stop());
  }

  // The sync barrier. Every source has listed by now (awaited above). A persisted store also has
  // what the registry published; an empty one gets it back within the meta server's republish
  // period, and until then a pilot told SYNCED would withdraw those services from its sidecars.
  const graceMs = config.dataDir ? 0 : (config.registryGraceMs ?? (config.kubernetes ? 6000 : 0));
  let barrierPassed = graceMs === 0;
  const synced = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref()).then(() => {
    barrierPassed = true;
    if (graceMs) logger.info('registry grace period over; answering watchers', { graceMs });
  });
  const service = new DispatcherGrpc({ store, logger, registry, coalesceMs: config.coalesceMs, synced, ...(writeThrough ? { writeThrough } : {}) });
  const keeper = await keepMeshCertificateOf(config, { logger, registry, onStarted: (k) => shutdown.add('certificate rotator', () => k.stop()) });
  const tls = meshTlsOf(config);
  const grpc = await startGrpcServer(config.host, config.grpcPort, (s) => s.addService(DispatcherService, service.implementation()), tls && { tls, logger, registry });
  shutdown.add('grpc server', () => grpc.close());

  const admin = await startAdminServer({
    ...(tls && config.adminMtls ? { tls: meshAdminTls(tls, { logger, registry }) } : {}),
    host: config.host,
    port: config.adminPort,
    registry,
    readiness: {
      ...Object.fromEntries(Object.keys(ready).map((k) => [k, () => ready[k] === true || `${k} source not synced`])),
      ...(kubeHealth ? { 'kubernetes informers': kubeHealth } : {}),
      registry: () => barrierPassed || 'waiting for the meta server to publish its registry again (in-memory store)',
      ...(keeper ? { certificate: () => keeper.readiness() } : {}),
    },
    routes: {
      '/debug/watchers': (): DispatcherWatcherView[] => service.list(),
      '/debug/manifests': () => ({ dir: config.watchDir ?? null, issues }),
      '/debug/store': async (_req, url) => {
        const kind = url.searchParams.get('kind') ?? 'RoutePolicy';
        if (!isResourceKind(kind)) throw new ValidationError('query', [{ path: 'kind', message: `must be one of ${RESOURCE_KINDS.join(', ')}` }]);
        return store.list(kind);
      },
    },
  });
  shutdown.add('admin server', () => admin.close());
  logger.info('listening', { grpcPort: grpc.port, adminPort: admin.port, host: config.host, version: store.version(), watchDir: config.watchDir, dataDir: config.dataDir, kubernetes: config.kubernetes });
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-dispatcher: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
