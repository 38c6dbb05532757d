#!/usr/bin/env node
import { KubeConfig } from '@kubernetes/client-node';
import { meshAdminTls, meshTlsOf, type MeshTls } from '@octo-mesh/clients';
import { keepMeshCertificateOf } from '@octo-mesh/identity';
import { PackageRepository } from '@octo-mesh/proxy-package';
import { ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, startAdminServer, type Logger, type Registry } from '@octo-mesh/runtime';
import { operatorConfig, type OperatorConfig } from './config.js';
import { DispatcherOperatorStore } from './dispatcher-store.js';
import { KubernetesEventRecorder, LogEventRecorder } from './events.js';
import { FleetPoller, httpFleetClient } from './fleet.js';
import { KubernetesOperatorStore } from './kube-store.js';
import { LeaderElector, kubernetesLeaseClient } from './leader.js';
import { OperatorMetrics } from './metrics.js';
import { Operator } from './operator.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(operatorConfig, { envPrefix: 'OCTO_OPERATOR_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-operator: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('operator', config.logLevel);
  const registry = createMetricsRegistry('operator');
  const shutdown = new GracefulShutdown({ logger }).install();
  const repository = await startRepository(config, { logger, registry, shutdown });
  if (config.repositoryOnly) return runRepositoryOnly(config, repository!, { logger, registry, shutdown });
  const metrics = new OperatorMetrics(registry);
  const repositoryReady: Record<string, () => true | string> = repository ? { repository: () => repository.port > 0 || 'package repository not listening' } : {};
  // The operator's own certificate (with --ca-url): for the dispatcher in embedded mode, and for
  // reading the pilots' and the meta server's debug endpoints over mTLS (--admin-mtls).
  const keeper = await keepMeshCertificateOf(config, { logger, registry, onStarted: (k) => shutdown.add('certificate rotator', () => k.stop()) });
  const tls = meshTlsOf(config);
  const adminTls = tls && config.adminMtls ? tls : undefined;
  const certificateReady: Record<string, () => true | string> = keeper ? { certificate: () => keeper.readiness() } : {};
  const fleet = new FleetPoller(httpFleetClient(config.metaServerUrl, config.fleetTimeoutMs, adminTls), logger, metrics);
  if (config.dispatcherAddress) return runEmbedded(config, config.dispatcherAddress, { logger, registry, metrics, shutdown, fleet, repositoryReady: { ...repositoryReady, ...certificateReady }, tls, adminTls });
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    process.stderr.write(`octo-operator: invalid configuration\n  kubeconfig: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const namespace = config.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';

  const store = new KubernetesOperatorStore({ kubeConfig: kc, namespace: config.watchNamespace, logger, metrics });
  const events = new KubernetesEventRecorder(kc, config.identity, logger, metrics);
  const operator = new Operator({ store, fleet, events, metrics, logger, pollIntervalMs: config.pollIntervalMs, statusMinIntervalMs: config.statusMinIntervalMs, routePolicyResyncMs: config.routePolicyResyncMs });
  let synced = false;

  const admin = await startAdminServer({
    ...(adminTls ? { tls: meshAdminTls(adminTls, { logger, registry }) } : {}),
    host: config.host,
    port: config.adminPort,
    registry,
    readiness: { caches: () => synced || 'informer caches not synced', ...repositoryReady, ...certificateReady },
    routes: {
      '/debug/leader': () => ({ identity: config.identity, leading: operator.isLeading }),
    },
  });
  shutdown.add('admin server', () => admin.close());
  await store.start();
  synced = true;
  shutdown.add('store', () => store.stop());

  const elector = new LeaderElector({
    client: kubernetesLeaseClient(kc, namespace, config.leaseName),
    identity: config.identity,
    timings: { leaseDurationMs: config.leaseDurationMs, renewDeadlineMs: config.renewDeadlineMs, retryPeriodMs: config.retryPeriodMs },
    logger,
    metrics,
    onStartedLeading: () => operator.startLeading(),
    // As controller-runtime: a replica that lost the Lease exits, and starts over as a candidate
    // (its reconciles may have raced the new leader; a fresh process has no stale state).
    onStoppedLeading: () => {
      void operator.stopLeading().finally(() => process.exit(1));
    },
  });
  // Stop order (reverse of registration): the elector first (stops reconciling, releases the
  // Lease), then the store, then the admin server.
  shutdown.add('leader election', async () => {
    await operator.stopLeading();
    await elector.stop();
  });
  elector.start();
  logger.info('listening', { adminPort: admin.port, host: config.host, identity: config.identity, lease: `${namespace}/${config.leaseName}`, metaServer: config.metaServerUrl, watchNamespace: config.watchNamespace ?? '(all)', repositoryPort: repository?.port });
}

/**
 * Embedded mode: the dispatcher is the store; a single replica leads from the start (there is no
 * Lease to contend for; the embedded runner restarts it if it dies).
 */
async function runEmbedded(
  config: OperatorConfig,
  dispatcherAddress: string,
  deps: { logger: Logger; registry: Registry; metrics: OperatorMetrics; shutdown: GracefulShutdown; fleet: FleetPoller; repositoryReady: Record<string, () => true | string>; tls: MeshTls | undefined; adminTls: MeshTls | undefined },
): Promise<void> {
  const { logger, registry, metrics, shutdown, fleet, repositoryReady, tls, adminTls } = deps;
  const store = new DispatcherOperatorStore({ address: dispatcherAddress, clientId: config.identity, logger, ...(tls ? { tls } : {}) });
  const operator = new Operator({ store, fleet, events: new LogEventRecorder(logger), metrics, logger, pollIntervalMs: config.pollIntervalMs, statusMinIntervalMs: config.statusMinIntervalMs, routePolicyResyncMs: config.routePolicyResyncMs });
  let synced = false;
  const admin = await startAdminServer({
    ...(adminTls ? { tls: meshAdminTls(adminTls, { logger, registry }) } : {}),
    host: config.host,
    port: config.adminPort,
    registry,
    readiness: { caches: () => synced || 'not synced with the dispatcher yet', ...repositoryReady },
    routes: { '/debug/leader': () => ({ identity: config.identity, leading: operator.isLeading }) },
  });
  shutdown.add('admin server', () => admin.close());
  await store.start();
  synced = true;
  shutdown.add('store', () => store.stop());
  shutdown.add('operator', () => operator.stopLeading());
  operator.startLeading();
  logger.info('listening', { adminPort: admin.port, host: config.host, identity: config.identity, dispatcher: dispatcherAddress, metaServer: config.metaServerUrl });
}

/**
 * The proxy package repository agents download from (`--repository-dir`): content-addressed, so
 * any number of writers and readers share one directory safely (uploads are renamed into place).
 * Stopped last-registered-first by the shutdown, i.e. before the admin server.
 */
async function startRepository(config: OperatorConfig, deps: { logger: Logger; registry: Registry; shutdown: GracefulShutdown }): Promise<PackageRepository | undefined> {
  if (config.repositoryDir === undefined) return undefined;
  const repository = new PackageRepository({
    dir: config.repositoryDir,
    host: config.host,
    port: config.repositoryPort,
    maxBytes: config.repositoryMaxBytes,
    logger: deps.logger.child({ component: 'package-repository' }),
    registry: deps.registry,
  });
  await repository.start();
  deps.shutdown.add('package repository', () => repository.stop());
  return repository;
}

/**
 * Only the package repository (`--repository-only`): no store, no Lease, nothing reconciled, no
 * API access needed. The chart runs it as its own single-replica Deployment, because packages are
 * pushed to one repository and every agent must find them there.
 */
async function runRepositoryOnly(config: OperatorConfig, repository: PackageRepository, deps: { logger: Logger; registry: Registry; shutdown: GracefulShutdown }): Promise<void> {
  const admin = await startAdminServer({
    host: config.host,
    port: config.adminPort,
    registry: deps.registry,
    readiness: { repository: () => repository.port > 0 || 'package repository not listening' },
  });
  deps.shutdown.add('admin server', () => admin.close());
  deps.logger.info('listening', { adminPort: admin.port, host: config.host, repositoryPort: repository.port, repositoryDir: config.repositoryDir, mode: 'repository only' });
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-operator: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
