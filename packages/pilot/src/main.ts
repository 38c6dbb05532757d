#!/usr/bin/env node
/**
 * Runs a pilot: ADS on --xds-port (15010), /healthz /readyz /metrics and the debug API on
 * --admin-port (15014). Stops gracefully on SIGTERM/SIGINT. See config.ts for every setting.
 */
import { fileURLToPath } from 'node:url';
import { ConfigError, createLogger, createMetricsRegistry, GracefulShutdown, loadConfig, startAdminServer, type AdminServer, type Logger } from '@octo-mesh/runtime';
import type { ProxyVersion } from '@octo-mesh/api';
import { SidecarStatusServiceService } from '@octo-mesh/proto';
import { keepMeshCertificateOf } from '@octo-mesh/identity';
import { DispatcherConnection, DispatcherInformer, DispatcherMeshSource, PilotMembership, meshAdminTls, meshTlsOf, type MeshTls } from '@octo-mesh/clients';
import { advertisedAddresses, pilotConfig, type PilotConfig } from './config.js';
import { debugRoutes } from './debug.js';
import { loadResources } from './load-resources.js';
import { createPilotMetrics } from './metrics.js';
import { Pilot } from './pilot.js';
import { AdsServer } from './server/ads.js';
import { sidecarStatusService } from './server/sidecar-status.js';
import { MemoryMeshSource, TrackedMeshSource, type MeshSource } from './source.js';

export interface RunningPilot {
  pilot: Pilot;
  ads: AdsServer;
  admin: AdminServer;
  xdsPort: number;
  /** Registration with the meta server, when `metaServerAddress` is set. */
  membership?: PilotMembership;
  stop(): Promise<void>;
}

/**
 * Registers the pilot with the meta server and heartbeats its connected sidecars (namespace and
 * workload from their node metadata). When the meta server moves sidecars to another pilot (one
 * joined) it names them in a heartbeat reply, a few at a time; their streams are ended here, so
 * the proxies Locate again and go to their new pilot.
 */
function joinMesh(config: PilotConfig, running: { pilot: Pilot; ads: AdsServer; xdsPort: number; adminPort: number }, logger: Logger): PilotMembership {
  const advertised = advertisedAddresses(config, running.xdsPort, running.adminPort);
  const membership = new PilotMembership({
    metaAddress: config.metaServerAddress!,
    tls: meshTlsOf(config),
    pilotId: config.pilotId,
    xdsAddress: advertised.xds,
    adminAddress: advertised.admin,
    ...(config.zone ? { zone: config.zone } : {}),
    sidecars: () => running.pilot.describe().nodes.map((n) => ({ nodeId: n.id, namespace: n.namespace, workload: n.workload })),
    onShed: (ids) => {
      const closed = ids.reduce((sum, id) => sum + running.ads.closeNode(id), 0);
      logger.info('meta server moved sidecars to another pilot; ended their streams', { sidecars: ids, streams: closed });
    },
    logger,
  });
  membership.start();
  return membership;
}

/**
 * Services, endpoints and RoutePolicies through the dispatcher's MeshSource (fetched per
 * service, on demand); ProxyVersions — few, mesh-wide — through an informer that keeps them all.
 */
async function dispatcherSource(
  address: string,
  clientId: string,
  logger: Logger,
  onProxyVersions: (pvs: ProxyVersion[]) => void,
  tls: MeshTls | undefined,
): Promise<{ source: MeshSource; health: () => true | string; close(): Promise<void> }> {
  const connection = new DispatcherConnection(address, tls);
  const update = () => onProxyVersions(informer.list('ProxyVersion') as ProxyVersion[]);
  const informer = new DispatcherInformer({ connection, clientId, kinds: ['ProxyVersion'], onChange: update, onSynced: update, logger });
  void informer.start(); // retries in the background; rollouts simply start once it syncs
  const source = new DispatcherMeshSource({ connection, clientId, logger });
  return {
    source,
    // Not ready while the mesh can go stale unnoticed: its watch or the ProxyVersion informer down.
    health: () => {
      const h = source.health();
      return h === true ? informer.health() : h;
    },
    close: async () => {
      await informer.stop();
      connection.close();
    },
  };
}

/**
 * Starts every part of a pilot. The mesh source is, in order: `source` if given, the dispatcher
 * at `dispatcherAddress`, or an in-memory one (seeded from `resources`).
 */
export async function startPilot(config: PilotConfig, logger: Logger, source?: MeshSource): Promise<RunningPilot> {
  const registry = createMetricsRegistry('pilot');
  // With a CA: our own certificate first (every mesh connection below needs it).
  const keeper = await keepMeshCertificateOf(config, { logger, registry });
  let proxyVersions: Parameters<Pilot['setProxyVersions']>[0] = [];
  let closeSource = async () => {};
  let tracked: TrackedMeshSource | undefined;
  const held: { ads?: AdsServer; pilot?: Pilot; proxyVersions?: ProxyVersion[] } = {};
  if (!source && config.dispatcherAddress) {
    const d = await dispatcherSource(
      config.dispatcherAddress,
      config.pilotId,
      logger,
      (pvs) => {
        held.proxyVersions = pvs;
        held.pilot?.setProxyVersions(pvs);
      },
      meshTlsOf(config),
    );
    source = tracked = new TrackedMeshSource(d.source, { registry, checks: [d.health] });
    closeSource = d.close;
    logger.info('reading the mesh from the dispatcher', { address: config.dispatcherAddress });
  }
  if (!source) {
    const memory = new MemoryMeshSource();
    if (config.resources) {
      const loaded = loadResources(config.resources, memory);
      proxyVersions = loaded.proxyVersions;
      logger.info('resources loaded', { path: config.resources, services: loaded.services, endpoints: loaded.endpoints, routePolicies: loaded.policies, proxyVersions: loaded.proxyVersions.length });
    }
    source = memory;
  }
  const metrics = createPilotMetrics(
    registry,
    () => held.ads?.admission.queued ?? 0,
    () => {
      const p = held.pilot;
      if (!p) return new Map();
      return p.sync.counts((id) => p.cache.getSnapshot(id)?.versions());
    },
  );
  const pilot = (held.pilot = new Pilot({
    source,
    logger,
    metrics,
    debounce: { quietMs: config.debounceQuietMs, maxDelayMs: config.debounceMaxMs },
    mtls: { mode: config.mtlsMode, trustDomain: config.trustDomain, h2Upgrade: config.h2Upgrade },
  }));
  pilot.setProxyVersions(held.proxyVersions ?? proxyVersions);
  const tls = meshTlsOf(config);
  const ads = (held.ads = new AdsServer({
    cache: pilot.cache,
    callbacks: pilot.callbacks,
    admission: { ratePerSecond: config.streamAdmissionRate, burst: config.streamAdmissionBurst, maxSettingUp: config.streamAdmissionMaxSettingUp },
    ...(tls && config.xdsMtls ? { security: { tls, logger, registry } } : {}),
  }));
  ads.server.addService(
    SidecarStatusServiceService,
    sidecarStatusService(pilot, logger, (result) => metrics.sidecarStatusReports.inc({ result })),
  );
  const xdsPort = await ads.listen(config.xdsPort, config.xdsHost);
  const admin = await startAdminServer({
    ...(tls && config.adminMtls ? { tls: meshAdminTls(tls, { logger, registry }) } : {}),
    host: config.adminHost,
    port: config.adminPort,
    registry,
    readiness: { xds: () => xdsPort > 0 || 'xds server not listening', ...(tracked ? { 'mesh source': () => tracked.health() } : {}), ...(keeper ? { certificate: () => keeper.readiness() } : {}) },
    routes: debugRoutes(pilot, config.pilotId),
  });
  const membership = config.metaServerAddress ? joinMesh(config, { pilot, ads, xdsPort, adminPort: admin.port }, logger) : undefined;
  logger.info('pilot serving', { pilotId: config.pilotId, xdsPort, adminPort: admin.port, mtls: tls ? (config.xdsMtls ? 'control plane and xds' : 'control plane') : false, ...(membership ? { metaServer: config.metaServerAddress } : {}) });
  return {
    pilot,
    ads,
    admin,
    xdsPort,
    ...(membership ? { membership } : {}),
    stop: async () => {
      // Deregister first: the meta server sends the sidecars elsewhere before their streams end.
      await membership?.stop();
      pilot.close();
      await ads.close(config.shutdownGraceSeconds * 1000);
      await admin.close();
      await closeSource();
      await keeper?.stop();
    },
  };
}

async function main(): Promise<void> {
  let config: PilotConfig;
  try {
    config = loadConfig(pilotConfig, { envPrefix: 'OCTO_PILOT_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-pilot: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('pilot', config.logLevel).child({ pilotId: config.pilotId });
  const running = await startPilot(config, logger);
  new GracefulShutdown({ logger, timeoutMs: (config.shutdownGraceSeconds + 5) * 1000 }).add('pilot', () => running.stop()).install();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: Error) => {
    process.stderr.write(`octo-pilot: ${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
