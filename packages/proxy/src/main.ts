#!/usr/bin/env node
import { createWriteStream } from 'node:fs';
import { flushCompileCache, getCompileCacheDir } from 'node:module';
import net from 'node:net';
import { meshTlsOf } from '@octo-mesh/contracts/access.js';
import { ConfigError, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, recordError, type Logger } from '@octo-mesh/runtime';
import { ProxyConfigSchema, type ProxyConfig } from './config.js';
import type { AccessLogEntry } from './data/http-proxy.js';
import type { DrainMode, HandOff, SocketSpec } from './data/listeners.js';
import { cpuGroupMembers, helperClassFor, idleV8Helpers } from './helper-threads.js';
import { IdleGc } from './idle-gc.js';
import { PROXY_VERSION, Proxy } from './proxy.js';

function sockets(cfg: ProxyConfig): { name: string; spec: SocketSpec }[] {
  const out: { name: string; spec: SocketSpec }[] = [];
  if (cfg.socketsFrom === 'parent') {
    // From the LEGO agent; `outboundSocket` set means the agent holds an outbound Unix socket too.
    const fromParent: { name: string; spec: SocketSpec }[] = [{ name: 'outbound', spec: { kind: 'ipc' } }];
    if (cfg.outboundSocket) fromParent.push({ name: 'outbound', spec: { kind: 'ipc', id: 'outbound-unix' } });
    fromParent.push({ name: 'inbound', spec: { kind: 'ipc' } });
    return fromParent;
  }
  if (cfg.socketsFrom === 'fd') {
    if (cfg.outboundFd === undefined || cfg.inboundFd === undefined)
      throw new ConfigError('invalid configuration', [{ path: cfg.outboundFd === undefined ? 'outboundFd' : 'inboundFd', message: 'required when socketsFrom is fd' }]);
    return [
      { name: 'outbound', spec: { kind: 'fd', fd: cfg.outboundFd } },
      { name: 'inbound', spec: { kind: 'fd', fd: cfg.inboundFd } },
    ];
  }
  out.push({ name: 'outbound', spec: { kind: 'bind', address: { kind: 'tcp', host: cfg.outboundHost, port: cfg.outboundPort } } });
  if (cfg.outboundSocket) out.push({ name: 'outbound', spec: { kind: 'bind', address: { kind: 'pipe', path: cfg.outboundSocket } } });
  out.push({ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: cfg.inboundHost, port: cfg.inboundPort } } });
  return out;
}

function accessLog(target: string): ((e: AccessLogEntry) => void) | undefined {
  if (target === 'off') return undefined;
  const stream = target === 'stdout' ? process.stdout : createWriteStream(target, { flags: 'a' });
  return (e) => void stream.write(`${JSON.stringify({ type: 'access', ...e })}\n`);
}

async function main(): Promise<void> {
  let cfg: ProxyConfig;
  try {
    cfg = loadConfig(ProxyConfigSchema, { envPrefix: 'OCTO_PROXY_' });
    // One application per sidecar: Pilot builds one inbound cluster, to a port or to a socket.
    if (cfg.appPort !== undefined && cfg.appSocket !== undefined) throw new ConfigError('invalid configuration', [{ path: 'appSocket', message: 'give appPort or appSocket, not both' }]);
  } catch (err) {
    process.stderr.write(`octo-proxy: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger('proxy', cfg.logLevel);
  const helperClass = helperClassFor(cfg.v8Helpers, { pid: process.pid, ppid: process.ppid }, cfg.v8Helpers === 'auto' ? cpuGroupMembers() : [], cfg.socketsFrom === 'parent');
  if (helperClass.idle) {
    const helpers = await idleV8Helpers();
    if ('moved' in helpers) logger.debug('V8 helper threads at SCHED_IDLE', { threads: helpers.moved, why: helperClass.reason });
    else logger.warn('v8Helpers: V8 helper threads stay at normal priority', { reason: helpers.skipped });
  } else logger.debug('V8 helper threads at normal priority', { why: helperClass.reason });
  const log = accessLog(cfg.accessLog);
  const tls = meshTlsOf(cfg);
  const registry = createMetricsRegistry('proxy', PROXY_VERSION);
  let started: Proxy | undefined;
  // Made before the proxy, whose start calls its beforeAccept; the idle checks wait for it to be ready.
  const gc = cfg.idleGcMs > 0 || cfg.gcBeforeAccept !== 'off' ? new IdleGc({ idleMs: cfg.idleGcMs, ready: () => started?.ready() === true, logger, registry }) : undefined;
  const proxy = await Proxy.start({
    node: {
      id: cfg.nodeId,
      cluster: cfg.cluster || cfg.workload,
      metadata: {
        workload: cfg.workload,
        namespace: cfg.namespace,
        version: cfg.version,
        instance_id: cfg.instanceId,
        proxy_version: PROXY_VERSION,
        dependencies: cfg.dependencies,
        labels: cfg.labels,
        ...(cfg.appPort !== undefined ? { app_port: cfg.appPort } : {}),
        ...(cfg.appSocket !== undefined ? { app_socket: cfg.appSocket } : {}),
        // Where the agent's rotator keeps this sidecar's certificate as SDS files: Pilot configures
        // the data plane's TLS from them (packages/identity/README.md).
        ...(tls ? { 'octo.io/sds-dir': tls.certDir } : {}),
      },
      ...(cfg.region || cfg.zone ? { locality: { region: cfg.region, zone: cfg.zone, subZone: '' } } : {}),
      dynamicParameters: {},
      userAgentName: 'octo-proxy',
      userAgentVersion: PROXY_VERSION,
      extensions: [],
      clientFeatures: [],
      listeningAddresses: [],
    },
    sockets: sockets(cfg),
    ...(cfg.metaAddress
      ? { xds: { metaAddress: cfg.metaAddress, mode: cfg.xdsMode, ...(tls ? { tls } : {}) } }
      : cfg.xdsAddress
        ? { xds: { address: cfg.xdsAddress, mode: cfg.xdsMode, ...(tls ? { tls } : {}) } }
        : {}),
    ...(cfg.staticResources ? { staticResources: cfg.staticResources } : {}),
    learning: { timeoutMs: cfg.learnTimeoutMs, ttlMs: cfg.learnTtlMs },
    peerChecks: { enabled: cfg.p2pMaxConcurrentProbes > 0, maxConcurrent: cfg.p2pMaxConcurrentProbes, staleFactor: cfg.p2pStaleIntervals },
    admin: { host: cfg.adminHost, port: cfg.adminPort },
    limits: {
      connectionsPerListener: cfg.listenerConnectionLimit,
      overload: { stopAccepting: cfg.overloadStopAccepting, disableKeepAlive: cfg.overloadDisableKeepAlive, reject: cfg.overloadReject },
    },
    ...(log ? { accessLog: log } : {}),
    ...(cfg.socketsFrom === 'parent' ? { warmUp: { requests: cfg.warmUpRequests, budgetMs: cfg.warmUpBudgetMs, dutyCycle: cfg.warmUpDutyCycle } } : {}),
    ...(gc && cfg.gcBeforeAccept !== 'off'
      ? {
          beforeAccept: (warmedUp: boolean) => {
            if (warmedUp || cfg.gcBeforeAccept === 'always') gc.beforeAccept();
          },
        }
      : {}),
    logger,
    registry,
  });
  started = proxy;
  started = proxy;
  let drain: { mode: DrainMode; timeoutMs: number; spreadMs: number; handOff?: HandOff } = { mode: 'shutdown', timeoutMs: cfg.drainTimeoutMs, spreadMs: 0 };
  const shutdown = new GracefulShutdown({ logger, timeoutMs: cfg.drainTimeoutMs + 5000 })
    .add('proxy', () => {
      gc?.stop();
      return proxy.stop(drain.timeoutMs, drain.mode, drain.spreadMs, drain.handOff);
    })
    .install();
  if (process.send) {
    // The LEGO agent's side of a swap: `{type: 'octo.drain', timeoutMs?, spreadMs?, connections?}` drains
    // for a handover (the agent keeps the listening sockets; a new version already accepts on
    // them), then exits. With `connections: true` the new version adopts kept-alive connections:
    // each idle one is sent back to the agent as `{type: 'octo.connection', listener}` with its
    // socket, and the agent passes it on; one arriving that way here is served as if accepted.
    process.on('message', (m: { type?: string; timeoutMs?: number; spreadMs?: number; connections?: boolean; listener?: string; status?: unknown }, handle?: unknown) => {
      // The agent's status, for the pilot (see SidecarStatusReporter).
      if (m?.type === 'octo.agent.status') return void proxy.reportAgentStatus(JSON.stringify(m.status));
      if (m?.type === 'octo.connection') {
        if (handle instanceof net.Socket && typeof m.listener === 'string') proxy.adoptConnection(m.listener, handle);
        else logger.error('octo.connection without a socket or listener name', { listener: m.listener });
        return;
      }
      if (m?.type !== 'octo.drain') return;
      drain = {
        mode: 'handover',
        timeoutMs: typeof m.timeoutMs === 'number' ? m.timeoutMs : cfg.drainTimeoutMs,
        spreadMs: typeof m.spreadMs === 'number' ? m.spreadMs : 0,
        ...(m.connections === true ? { handOff: (listener, socket) => handOff(proxy, logger, listener, socket) } : {}),
      };
      logger.info('draining for a handover', { timeoutMs: drain.timeoutMs, connections: m.connections === true });
      void shutdown.shutdown('octo.drain');
    });
    // Under the agent, the agent's end is ours: no orphan keeps serving on its sockets.
    if (cfg.socketsFrom === 'parent') process.on('disconnect', () => void shutdown.shutdown('parent gone'));
  }
  const listening = proxy.listening();
  logger.info('proxy started', { version: PROXY_VERSION, admin: proxy.adminPort, listeners: listening });
  // `adopts: ['connections']`: this version serves kept-alive connections handed over in a swap.
  process.send?.({ type: 'octo.proxy.started', adminPort: proxy.adminPort, listeners: listening, version: PROXY_VERSION, adopts: ['connections'] });
  // With a compile cache (NODE_COMPILE_CACHE, as the LEGO agent sets), written now rather than at
  // exit: Node writes it only on a normal exit, so a proxy that is killed or crashes left the next
  // start cold (bench/footprint: one route 311 → 181 ms to ready with the cache warm; docs/footprint.md round 6).
  if (getCompileCacheDir()) {
    try {
      flushCompileCache();
    } catch (err) {
      recordError(logger, 'writing the compile cache', err, { dir: getCompileCacheDir() }, 'warn');
    }
  }
}

/**
 * Sends an idle kept-alive connection to the agent for the proxy taking over; resolves once the
 * socket has left (a failed send closes it). Node writes one handle at a time, so this may wait.
 */
function handOff(proxy: Proxy, logger: Logger, listener: string, socket: net.Socket): Promise<void> {
  const count = (result: string) => proxy.stats.connectionHandovers.inc({ direction: 'out', result });
  if (!process.send || !process.connected) {
    count('no-channel');
    socket.destroy();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    process.send!({ type: 'octo.connection', listener }, socket, { keepOpen: false }, (err: Error | null) => {
      resolve();
      if (!err) return count('sent');
      count('failed');
      logger.warn('handing a connection over failed; it is closed', { listener, error: err.message });
      socket.destroy();
    });
  });
}

main().catch((err: Error) => {
  process.stderr.write(`octo-proxy: ${err.message}\n`);
  process.exit(1);
});
