/**
 * Selective peer-to-peer health checks, the runtime: every `tickMs` it looks at the hosts of the
 * clusters this sidecar called recently and whose service has an active health check, asks the
 * decision table (p2p-decision.ts) whether to probe and whether its own evidence overrides the
 * central verdict, probes (at most `maxConcurrent` at a time, each host at most once per check
 * interval) and puts the result in force on the host. Nothing is sent to the control plane: the
 * override holds for this sidecar only. The data path pays nothing: "called recently" and "its
 * requests succeed" come from the per-host counters it keeps anyway.
 */
import net from 'node:net';
import type tls from 'node:tls';
import { Counter, Gauge, recordError, type Logger, type Registry } from '@octo-mesh/runtime';
import type { ClusterManager, ClusterRuntime } from './cluster-manager.js';
import type { Host } from './load-balancer.js';
import { isEjected } from './outlier.js';
import { decide, newEvidence, observe, peerCheckSpec, statusHealthy, type PeerCheckSpec, type ProbeReason } from './p2p-decision.js';

export interface PeerCheckSettings {
  /** Off: no probe, no override (the central verdict and outlier detection alone). */
  enabled: boolean;
  /** How often hosts are looked at (ms). */
  tickMs: number;
  /** At most this many probes in flight over all clusters. */
  maxConcurrent: number;
  /** A cluster counts as called when it had requests within this window (ms). */
  recentMs: number;
  /** A central verdict is stale, and local evidence ages out, after this many check intervals. */
  staleFactor: number;
}

export const DEFAULT_PEER_CHECKS: PeerCheckSettings = { enabled: true, tickMs: 250, maxConcurrent: 4, recentMs: 60_000, staleFactor: 3 };

/** Per-cluster bookkeeping: when it was last seen called. */
interface ClusterUse {
  requests: number;
  calledAt: number;
}

/** Per-host bookkeeping outside the decision: successes seen so far, a probe in flight. */
interface HostWatch {
  ok: number;
  probing: boolean;
}

export class PeerChecker {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly use = new WeakMap<ClusterRuntime, ClusterUse>();
  private readonly watch = new WeakMap<Host, HostWatch>();
  private specs = new Map<string, PeerCheckSpec>();
  private specsFrom: ReadonlyMap<string, unknown> | undefined;
  private readonly checks: Counter<'cluster' | 'result'>;
  /** Registered for its `collect`, which counts the overrides when scraped. */
  readonly overrides: Gauge<string>;

  constructor(
    private readonly clusters: ClusterManager,
    /** The ServiceGovernance in force by service, as JSON (ConfigStore.serviceGovernance). */
    private readonly governance: () => ReadonlyMap<string, unknown>,
    registry: Registry,
    private readonly logger: Logger,
    readonly settings: PeerCheckSettings = DEFAULT_PEER_CHECKS,
  ) {
    this.checks = new Counter({
      name: 'octo_proxy_p2p_checks_total',
      help: 'Selective peer-to-peer health probes this sidecar sent, by cluster and result (success, failure).',
      labelNames: ['cluster', 'result'],
      registers: [registry],
    });
    const all = () => this.clusters.all();
    this.overrides = new Gauge({
      name: 'octo_proxy_p2p_overrides',
      help: "Hosts whose central health verdict this sidecar's own fresh P2P evidence overrides right now.",
      registers: [registry],
      // Counted when scraped: an override can change on a tick or when a probe ends.
      collect() {
        let n = 0;
        for (const c of all()) for (const h of c.hosts.hosts) if (h.override) n++;
        this.set(n);
      },
    });
  }

  start(): void {
    if (!this.settings.enabled || this.timer) return;
    this.timer = setInterval(() => this.tick(), this.settings.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Health check per cluster name, rebuilt when the governance in force changes. */
  private specByCluster(): Map<string, PeerCheckSpec> {
    const g = this.governance();
    if (g === this.specsFrom) return this.specs;
    const out = new Map<string, PeerCheckSpec>();
    for (const gov of g.values()) {
      const spec = peerCheckSpec(gov);
      const clusters = (gov as { clusters?: unknown }).clusters;
      if (spec && Array.isArray(clusters)) for (const c of clusters) out.set(String(c), spec);
    }
    this.specsFrom = g;
    this.specs = out;
    return out;
  }

  /** One look at every host of every checked cluster; exported for tests that drive time. */
  tick(now = Date.now()): void {
    const specs = this.specByCluster();
    const checked = new Set<ClusterRuntime>();
    const due: Due[] = [];
    if (specs.size > 0)
      for (const c of this.clusters.all()) {
        const spec = specs.get(c.model.name);
        if (!spec) continue;
        checked.add(c);
        const called = this.called(c, now);
        for (const h of c.hosts.hosts) {
          const d = this.evaluate(c, h, spec, called, now);
          if (d) due.push(d);
        }
      }
    // Over the cap, the hosts waiting longest go first, so none starves.
    due.sort((a, b) => (a.h.p2p?.lastProbeAt ?? 0) - (b.h.p2p?.lastProbeAt ?? 0));
    for (const d of due) {
      if (this.inFlight >= this.settings.maxConcurrent) break;
      this.launch(d);
    }
    // A cluster whose service lost its health check: no local evidence may stand against the central verdict.
    for (const c of this.checked) if (!checked.has(c)) for (const h of c.hosts.hosts) this.reset(c, h);
    this.checked = checked;
  }

  /** The clusters looked at in the last tick. */
  private checked = new Set<ClusterRuntime>();

  private called(c: ClusterRuntime, now: number): boolean {
    let total = 0;
    for (const h of c.hosts.hosts) total += h.requests;
    const u = this.use.get(c);
    if (!u) {
      this.use.set(c, { requests: total, calledAt: total > 0 ? now : 0 });
      return total > 0;
    }
    if (total !== u.requests) {
      u.requests = total;
      u.calledAt = now;
    }
    return u.calledAt > 0 && now - u.calledAt <= this.settings.recentMs;
  }

  private reset(c: ClusterRuntime, h: Host): void {
    h.p2p = undefined;
    if (h.override) {
      h.override = undefined;
      c.hosts.invalidate();
    }
  }

  /** Applies the decision for one host; returns the probe to start when one is due. */
  private evaluate(c: ClusterRuntime, h: Host, spec: PeerCheckSpec, called: boolean, now: number): Due | undefined {
    let w = this.watch.get(h);
    if (!w) this.watch.set(h, (w = { ok: h.requests - h.failures, probing: false }));
    const ok = h.requests - h.failures;
    const recentSuccess = ok > w.ok;
    w.ok = ok;
    const d = decide({
      now,
      called,
      centralHealthy: h.healthy,
      checkerDecides: h.central !== undefined && h.health === 'unhealthy',
      since: h.central?.since,
      intervalMs: spec.intervalMs,
      staleFactor: this.settings.staleFactor,
      ejected: isEjected(h.outlier, now),
      ejectedAt: h.outlier.lastEjectedAt,
      recentSuccess,
      evidence: h.p2p,
    });
    if (d.override !== h.override) {
      this.logger.info('P2P health override', { cluster: c.model.name, host: h.key, central: h.health, local: d.override ?? 'none (central verdict stands)' });
      h.override = d.override;
      c.hosts.invalidate();
    }
    if (d.uneject) {
      this.logger.info('P2P probes pass: ejection ended early', { cluster: c.model.name, host: h.key });
      h.outlier.ejectedUntil = now;
      c.hosts.invalidate();
    }
    if (!d.probe || w.probing) return undefined;
    if (h.p2p && now - h.p2p.lastProbeAt < spec.intervalMs) return undefined;
    return { c, h, spec, why: d.probe, watch: w };
  }

  private launch({ c, h, spec, why, watch }: Due): void {
    watch.probing = true;
    this.inFlight++;
    void probe(c, h, spec, this.logger).then((result) => {
      this.inFlight--;
      watch.probing = false;
      const ok = result === undefined;
      this.checks.inc({ cluster: c.model.name, result: ok ? 'success' : 'failure' });
      // The host may have left the cluster while the probe ran (its state goes with it).
      if (!c.hosts.hosts.includes(h)) return;
      this.logger.debug('P2P probe', { cluster: c.model.name, host: h.key, why, result: result ?? 'healthy' });
      const t = Date.now();
      h.p2p = observe(h.p2p ?? newEvidence(), ok, t, spec);
      // Put the result in force now rather than at the next tick.
      this.evaluate(c, h, spec, true, t);
    });
  }
}

/** A probe due: its host, the check, and why (the decision table's reason). */
interface Due {
  c: ClusterRuntime;
  h: Host;
  spec: PeerCheckSpec;
  why: ProbeReason;
  watch: HostWatch;
}

/**
 * One probe of `h` per `spec`, over the cluster's TLS when it has one: undefined when healthy,
 * else why not. HTTP: `GET path` (HTTP/1.1, `Connection: close`) answered with an expected
 * status; TCP (and gRPC, probed as TCP): the connection (and TLS handshake) completes.
 */
export function probe(c: ClusterRuntime, h: Host, spec: PeerCheckSpec, logger?: Logger): Promise<string | undefined> {
  return new Promise((resolve) => {
    let socket: net.Socket | tls.TLSSocket;
    let secure = false;
    try {
      const s = c.tlsConnect(h.address, spec.kind === 'http' ? ['http/1.1'] : undefined);
      secure = s !== undefined;
      socket = s ?? (h.address.kind === 'tcp' ? net.connect({ host: h.address.host, port: h.address.port }) : net.connect(h.address.path));
    } catch (err) {
      // The cluster's TLS context is not ready (SDS secrets missing): no connection to probe over.
      recordError(logger, 'P2P probe connect', err, { cluster: c.model.name, host: h.key }, 'debug');
      return resolve((err as Error).message);
    }
    let done = false;
    const finish = (why: string | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => finish(`timeout after ${spec.timeoutMs} ms`), spec.timeoutMs);
    socket.on('error', (err: Error & { code?: string }) => finish(err.code ?? err.message));
    socket.on('close', () => finish('connection closed'));
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      if (spec.kind === 'tcp') return finish(undefined);
      socket.write(`GET ${spec.path} HTTP/1.1\r\nHost: ${spec.host || 'localhost'}\r\nUser-Agent: octo-proxy-p2p\r\nConnection: close\r\n\r\n`);
      let head = '';
      socket.on('data', (chunk: Buffer) => {
        head += chunk.toString('latin1');
        const eol = head.indexOf('\r\n');
        if (eol < 0) {
          if (head.length > 1024) finish('no HTTP status line');
          return;
        }
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(head.slice(0, eol));
        if (!m) return finish('no HTTP status line');
        const status = Number(m[1]);
        finish(statusHealthy(status, spec.expectedStatuses) ? undefined : `HTTP ${status}`);
      });
    });
  });
}
