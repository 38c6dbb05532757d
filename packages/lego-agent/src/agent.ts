import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { KeyObject } from 'node:crypto';
import type net from 'node:net';
import { join } from 'node:path';
import type { Logger, Registry } from '@octo-mesh/runtime';
import { Backoff, sleep } from '@octo-mesh/runtime/backoff.js';
import { Counter, Gauge, Histogram } from '@octo-mesh/runtime/metrics.js';
import { compileCacheDirFor } from '@octo-mesh/proxy-package/compile-cache.js';
import { isPackageError } from '@octo-mesh/proxy-package/errors.js';
import { PackageStore, packageDirName, type InstalledPackage } from '@octo-mesh/proxy-package/store.js';
import { ProxyChild } from './child.js';
import type { AgentConfig } from './config.js';
import type { ListeningSockets } from './sockets.js';
import type { AgentIdentityStatus, AgentPhase, AgentReason, AgentStatus } from './status.js';
import { sameTarget, type UpgradeTarget } from './target.js';

/** What a proxy child runs: a package, or the local bootstrap proxy (`sha256` ''). */
export interface RunningPackage {
  version: string;
  sha256: string;
  entry: string;
  dir?: string;
}

class UpgradeFailure extends Error {
  constructor(
    readonly reason: AgentReason,
    message: string,
  ) {
    super(message);
  }
}

export interface LegoAgentOptions {
  config: AgentConfig;
  sockets: ListeningSockets;
  logger: Logger;
  registry: Registry;
  trustedKeys: readonly KeyObject[];
  /** The bootstrap file every proxy child gets (`--config`). */
  bootstrapFile: string;
  /** Passed to every proxy child as `--tls-dir` (the directory the agent's certificate rotator publishes into). */
  tlsDir?: string;
}

/**
 * The LEGO agent's brain: runs one serving proxy child on the held sockets, restarts it when it
 * crashes (at once, then with backoff), and upgrades it to the desired target: download →
 * verify → unpack → start beside the old one → ready and synced within `readyTimeoutMs` and
 * healthy for `minReadySeconds` → the old one drains and exits. Any failure kills the new child
 * (the old one never stopped serving) and marks that version+sha bad for the target.
 * Level-triggered: `reconcile` compares what runs with the desired target, whatever event woke it.
 */
export class LegoAgent {
  readonly status: AgentStatus;
  private current: { child: ProxyChild; pkg: RunningPackage } | undefined;
  private desired: UpgradeTarget | null = null;
  private readonly bad = new Map<string, { version: string; sha256: string; reason: AgentReason }>();
  private readonly store: PackageStore;
  private working = false;
  private again = false;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly crashBackoff: Backoff;
  private crashStreak = 0;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly m: {
    swaps: Counter<'result'>;
    swapSeconds: Histogram;
    crashes: Counter;
    refused: Counter<'reason'>;
    errors: Counter<'where'>;
    connections: Counter<'result'>;
    ready: Gauge;
  };
  /** Resolves when no upgrade is under way (for tests and shutdown). */
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly opts: LegoAgentOptions) {
    const cfg = opts.config;
    this.log = opts.logger;
    this.store = new PackageStore({
      root: join(cfg.stateDir, 'packages'),
      trustedKeys: opts.trustedKeys,
      keep: cfg.keepVersions,
      limits: { maxUnpackedBytes: cfg.maxPackageBytes * 8 },
    });
    this.crashBackoff = new Backoff({ initialMs: cfg.crashBackoffMs, maxMs: cfg.crashBackoffMaxMs, jitter: 0.5 });
    const r = [opts.registry];
    this.m = {
      swaps: new Counter({ name: 'octo_lego_swaps_total', help: 'Upgrades by result (promoted, or the failure reason).', labelNames: ['result'], registers: r }),
      swapSeconds: new Histogram({ name: 'octo_lego_swap_duration_seconds', help: 'Target received to old proxy gone, for promoted upgrades.', buckets: [0.25, 0.5, 1, 2, 5, 10, 30], registers: r }),
      crashes: new Counter({ name: 'octo_lego_proxy_crashes_total', help: 'Serving proxy children that exited unasked.', registers: r }),
      refused: new Counter({ name: 'octo_lego_packages_refused_total', help: 'Packages refused or rolled back, by reason.', labelNames: ['reason'], registers: r }),
      errors: new Counter({ name: 'octo_lego_errors_total', help: 'Errors caught and handled, by where.', labelNames: ['where'], registers: r }),
      connections: new Counter({
        name: 'octo_lego_connection_handovers_total',
        help: 'Kept-alive connections passed from a draining proxy to its successor in a swap, by result (passed, closed, failed).',
        labelNames: ['result'],
        registers: r,
      }),
      ready: new Gauge({ name: 'octo_lego_proxy_ready', help: '1 while a proxy child serves and is ready.', registers: r }),
    };
    const now = new Date().toISOString();
    this.status = {
      instanceId: cfg.instanceId,
      runningVersion: '',
      target: null,
      phase: 'Idle',
      ready: false,
      readySince: null,
      lastError: null,
      badVersions: [],
      lastChange: now,
    };
  }

  /** The serving child's admin port (the agent's admin fronts it). */
  get childAdminPort(): number | undefined {
    return this.current?.child.adminPort;
  }

  get childPid(): number | undefined {
    return this.current?.child.pid;
  }

  /** Starts the first proxy: the package last promoted (after an agent restart), else the local proxy. */
  async start(): Promise<void> {
    // Stopped while main waited for the first certificate: no proxy to start.
    if (this.stopped) return;
    await mkdir(this.opts.config.stateDir, { recursive: true });
    let pkg: RunningPackage = { version: 'bootstrap', sha256: '', entry: this.opts.config.proxyEntry };
    try {
      const active = JSON.parse(await readFile(this.activeFile, 'utf8')) as { dir: string };
      const p = await this.store.load(active.dir);
      pkg = { version: p.manifest.version, sha256: p.sha256, entry: p.entry, dir: p.dir };
      this.log.info('resuming the package last promoted', { version: pkg.version, sha256: pkg.sha256 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.m.errors.inc({ where: 'resume' });
        this.log.warn('cannot resume the last promoted package; starting the local proxy', { error: (err as Error).message });
      }
    }
    if (this.stopped) return;
    this.serve(this.spawn(pkg), pkg);
    await this.current!.child.started;
    this.probe();
  }

  private get activeFile(): string {
    return join(this.opts.config.stateDir, 'active.json');
  }

  /**
   * Starts a proxy child from `pkg`. `beside`: another proxy serves meanwhile (a swap), so the new
   * one warms up before it accepts (the proxy's warmUpRequests/warmUpBudgetMs). Otherwise (the
   * first proxy, a crash restart) nothing else serves and connections wait in the backlog: a
   * warm-up would only delay them, so it is turned off by env (a proxy older than the setting
   * ignores it, where an unknown flag would stop it).
   */
  private spawn(pkg: RunningPackage, beside = false): ProxyChild {
    const child = new ProxyChild({
      entry: pkg.entry,
      args: proxyChildArgs(this.opts.bootstrapFile, this.opts.tlsDir),
      execArgv: this.opts.config.proxyNodeFlags,
      sockets: this.opts.sockets,
      logger: this.log,
      version: pkg.version,
      sha256: pkg.sha256,
      // V8's compile cache: the one a package or the image ships (built where they were built),
      // so even a version's first start does not parse and compile the bundle; portable: keyed
      // by paths relative to the cache directory (docs/footprint.md, round 7).
      env: {
        ...process.env,
        NODE_COMPILE_CACHE: compileCacheDirFor(pkg.entry, pkg.dir, join(this.opts.config.stateDir, 'compile-cache')),
        NODE_COMPILE_CACHE_PORTABLE: '1',
        ...(beside ? {} : { OCTO_PROXY_WARM_UP_REQUESTS: '0' }),
      },
    });
    this.log.info('proxy started', { pid: child.pid, version: pkg.version, entry: pkg.entry });
    return child;
  }

  /** Makes `child` the serving one: its crashes are supervised, its targets followed. */
  /** Passes a drained proxy's kept-alive connection to its successor; if that cannot take it, it is closed. */
  private passConnection(to: ProxyChild, listener: string, socket: net.Socket): void {
    if (to.exited || to.draining || !to.adoptsConnections || this.current?.child !== to) {
      this.m.connections.inc({ result: 'closed' });
      socket.destroy();
      return;
    }
    to.send({ type: 'octo.connection', listener }, socket, (err) => {
      if (!err) return void this.m.connections.inc({ result: 'passed' });
      this.m.connections.inc({ result: 'failed' });
      this.m.errors.inc({ where: 'connection-handover' });
      this.log.warn('passing a kept-alive connection to the new proxy failed; it is closed', { listener, pid: to.pid, error: err.message });
      socket.destroy();
    });
  }

  private serve(child: ProxyChild, pkg: RunningPackage): void {
    this.current = { child, pkg };
    this.status.runningVersion = pkg.version === 'bootstrap' ? (child.reportedVersion ?? 'bootstrap') : pkg.version;
    child.once('started', () => {
      if (this.current?.child === child && pkg.version === 'bootstrap' && child.reportedVersion) {
        this.status.runningVersion = child.reportedVersion;
        this.changed();
      }
    });
    child.on('target', (t: unknown) => {
      if (this.current?.child !== child || !this.opts.config.followPilot) return;
      this.onPilotTarget?.(t);
    });
    child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => this.onExit(child, code, signal));
    this.changed();
  }

  /** Set by main: turns a forwarded target into `setTarget` (parsing errors are logged there). */
  onPilotTarget: ((raw: unknown) => void) | undefined;

  private onExit(child: ProxyChild, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopped || child.draining || this.current?.child !== child) return;
    const pkg = this.current.pkg;
    this.m.crashes.inc();
    const upMs = Date.now() - child.startedAt;
    if (upMs >= this.opts.config.crashBackoffMaxMs) {
      this.crashStreak = 0;
      this.crashBackoff.reset();
    }
    // The first crash restarts at once; repeated ones back off (with jitter), never a tight loop.
    const delay = this.crashStreak++ === 0 ? 0 : this.crashBackoff.next();
    this.setReady(false);
    this.status.lastError = { reason: 'Crashed', message: `proxy ${pkg.version} (pid ${child.pid}) exited (code ${code}, signal ${signal}) after ${upMs} ms; restarting in ${delay} ms`, version: pkg.version };
    this.log.error('proxy crashed; restarting the last good version on the same sockets', { pid: child.pid, version: pkg.version, code, signal, upMs, delayMs: delay, streak: this.crashStreak });
    this.changed();
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (this.stopped || this.current?.child !== child) return;
      this.serve(this.spawn(pkg), pkg);
    }, delay);
  }

  /** Keeps `ready` current: probes the serving child's `/ready` and `/sync`. */
  private probe(): void {
    const tick = async () => {
      const child = this.current?.child;
      let ok = false;
      if (child?.adminPort && !child.exited) {
        // Ready as the status contract means it: `/ready` 200 and xDS-synced.
        const st = await syncProbe(child.adminPort, this.probeError);
        ok = st.ready && st.synced;
      }
      if (child === this.current?.child) this.setReady(ok);
      if (!this.stopped) this.probeTimer = setTimeout(() => void tick(), this.status.ready ? this.opts.config.healthProbeIntervalMs : 50);
    };
    void tick();
  }

  private setReady(ready: boolean): void {
    if (ready === this.status.ready) return;
    this.status.ready = ready;
    this.status.readySince = ready ? new Date().toISOString() : null;
    this.m.ready.set(ready ? 1 : 0);
    this.changed();
  }

  private setPhase(phase: AgentPhase): void {
    if (this.status.phase === phase) return;
    this.status.phase = phase;
    this.log.info('phase', { phase, target: this.status.target?.version });
    this.changed();
  }

  /** Records a change and tells the serving proxy (which relays it to its pilot). */
  private changed(): void {
    this.status.lastChange = new Date().toISOString();
    this.status.badVersions = [...this.bad.values()];
    this.current?.child.send({ type: 'octo.agent.status', status: this.status });
  }

  /** The workload certificate's state (from AgentIdentity), reported in the status. */
  setIdentity(identity: AgentIdentityStatus): void {
    this.status.identity = identity;
    this.changed();
  }

  /** The desired target (null: stay on what runs). Level-triggered; repeated calls are cheap. */
  setTarget(t: UpgradeTarget | null, source: string): void {
    if (sameTarget(t, this.desired)) return;
    const prev = this.desired;
    this.desired = t;
    // Bad versions are remembered per target: a new rollout or generation may try again.
    if (t && prev && (prev.rollout !== t.rollout || prev.generation !== t.generation)) this.bad.clear();
    this.status.target = t ? { version: t.version, sha256: t.sha256, rollout: t.rollout, generation: t.generation } : null;
    this.log.info('upgrade target', { source, version: t?.version ?? null, sha256: t?.sha256 ?? null, rollout: t?.rollout, generation: t?.generation });
    this.changed();
    this.kick();
  }

  private kick(): void {
    if (this.working) {
      this.again = true;
      return;
    }
    this.working = true;
    void (async () => {
      do {
        this.again = false;
        try {
          await this.reconcile();
        } catch (err) {
          this.m.errors.inc({ where: 'reconcile' });
          this.log.error('reconcile failed', { error: (err as Error).stack });
        }
      } while (this.again && !this.stopped);
      this.working = false;
      for (const w of this.idleWaiters.splice(0)) w();
    })();
  }

  private readonly probeError = (what: string, err: Error) => {
    this.m.errors.inc({ where: `probe-${what}` });
    this.log.debug('proxy probe failed', { probe: what, error: err.message });
  };

  /** Resolves once no upgrade is under way. */
  idle(): Promise<void> {
    return this.working ? new Promise((r) => this.idleWaiters.push(r)) : Promise.resolve();
  }

  private async reconcile(): Promise<void> {
    const t = this.desired;
    if (!t || this.stopped) return;
    const running = this.current?.pkg;
    if (running && running.version === t.version && running.sha256 === t.sha256) {
      if (this.status.phase !== 'Idle') this.setPhase('Idle');
      return;
    }
    if (this.bad.has(`${t.version}@${t.sha256}`)) return;
    await this.upgrade(t);
  }

  private async upgrade(t: UpgradeTarget): Promise<void> {
    const cfg = this.opts.config;
    const began = Date.now();
    const log = this.log.child({ target: t.version, sha256: t.sha256.slice(0, 12) });
    let child: ProxyChild | undefined;
    let stage = 'Downloading' as AgentPhase;
    try {
      this.setPhase('Downloading');
      const pkg = await this.obtain(t, () => {
        stage = 'Verifying';
        this.setPhase('Verifying');
      });
      stage = 'Starting';
      this.setPhase('Starting');
      const running: RunningPackage = { version: pkg.manifest.version, sha256: pkg.sha256, entry: pkg.entry, dir: pkg.dir };
      child = this.spawn(running, true);
      await this.qualify(child);
      // Promote: the new one serves (it already accepts); the old one stops accepting and drains.
      this.setPhase('Draining');
      const old = this.current;
      clearTimeout(this.restartTimer);
      this.crashStreak = 0;
      this.crashBackoff.reset();
      this.serve(child, running);
      this.setReady(true);
      await writeFile(this.activeFile, JSON.stringify({ dir: pkg.dir }));
      if (old) {
        // Kept-alive connections move to the new proxy when it can adopt them (no client then
        // meets a closing connection); otherwise each closes after its next response.
        const onConnection = (listener: string, socket: net.Socket) => this.passConnection(child!, listener, socket);
        old.child.on('connection', onConnection);
        await old.child.drain(cfg.drainTimeoutMs, cfg.drainSpreadMs, undefined, child.adoptsConnections);
        old.child.off('connection', onConnection);
      }
      const seconds = (Date.now() - began) / 1000;
      this.m.swaps.inc({ result: 'promoted' });
      this.m.swapSeconds.observe(seconds);
      log.info('upgraded', { from: old?.pkg.version, to: running.version, seconds, oldPid: old?.child.pid, newPid: child.pid });
      this.setPhase('Idle');
      await this.store.prune([pkg.dir]).catch((err: Error) => {
        this.m.errors.inc({ where: 'prune' });
        log.warn('cannot prune old packages', { error: err.message });
      });
    } catch (err) {
      const reason: AgentReason =
        err instanceof UpgradeFailure ? err.reason : isPackageError(err) ? err.reason : stage === 'Downloading' ? 'DownloadFailed' : stage === 'Verifying' ? 'UnsafeArchive' : 'NotReady';
      child?.kill();
      this.bad.set(`${t.version}@${t.sha256}`, { version: t.version, sha256: t.sha256, reason });
      this.status.lastError = { reason, message: (err as Error).message, version: t.version };
      this.m.swaps.inc({ result: reason });
      this.m.refused.inc({ reason });
      log.error('upgrade refused; the running proxy keeps serving', { reason, error: (err as Error).message, running: this.current?.pkg.version });
      this.setPhase('Failed');
    }
  }

  /** The package on disk, verified: already unpacked (kept versions), or downloaded and installed. */
  private async obtain(t: UpgradeTarget, verifying: () => void): Promise<InstalledPackage> {
    const cfg = this.opts.config;
    const dir = join(this.store.root, packageDirName(t.version, t.sha256));
    const have = await stat(join(dir, '.sha256')).then(
      () => true,
      () => false,
    );
    if (have) {
      verifying();
      const p = await this.store.load(dir);
      if (p.sha256 === t.sha256 && p.manifest.version === t.version) {
        // Kept from before; signatures are checked per target, so once more here.
        this.store.verifySignature({ version: t.version, sha256: t.sha256, signature: t.signature || undefined });
        return p;
      }
    }
    const downloads = join(cfg.stateDir, 'downloads');
    await mkdir(downloads, { recursive: true });
    const file = join(downloads, `${t.sha256}.tgz`);
    // Only an upgrade downloads: the downloader is loaded then, not at every agent's start.
    const { download } = await import('@octo-mesh/proxy-package/download.js');
    await download(t.packageUrl, file, {
      maxBytes: cfg.maxPackageBytes,
      timeoutMs: cfg.downloadTimeoutMs,
      retries: cfg.downloadRetries,
      onRetry: (attempt, err, delayMs) => {
        this.m.errors.inc({ where: 'download' });
        this.log.warn('download failed; retrying', { url: t.packageUrl, attempt, error: err.message, delayMs });
      },
    });
    verifying();
    try {
      return await this.store.install(file, { version: t.version, sha256: t.sha256, signature: t.signature || undefined }, this.current?.pkg.dir ? [this.current.pkg.dir] : []);
    } finally {
      await rm(file, { force: true });
    }
  }

  /**
   * Whether a new child may take over: started and ready + synced within `readyTimeoutMs`
   * (NotReady; a NACK is Nacked at once), then alive and answering `/ready` for
   * `minReadySeconds` (Crashed, HealthProbeFailed). Throws UpgradeFailure.
   */
  private async qualify(child: ProxyChild): Promise<void> {
    const cfg = this.opts.config;
    const deadline = child.startedAt + cfg.readyTimeoutMs;
    const crashed = () => new UpgradeFailure('Crashed', `new proxy exited (code ${child.exited!.code}, signal ${child.exited!.signal}) after ${Date.now() - child.startedAt} ms`);
    const wait = (ms: number) => Promise.race([sleep(Math.max(0, ms)), child.exit]);
    await Promise.race([child.started.catch(() => undefined), sleep(Math.max(0, deadline - Date.now()))]);
    if (child.exited) throw crashed();
    if (!child.adminPort) throw new UpgradeFailure('NotReady', `new proxy did not start within ${cfg.readyTimeoutMs} ms`);
    let last = 'no answer';
    for (;;) {
      if (child.exited) throw crashed();
      const s = await syncProbe(child.adminPort, this.probeError);
      if (s.nacked) throw new UpgradeFailure('Nacked', `new proxy rejected its configuration: ${s.nacked.typeUrl.split('.').pop()}: ${s.nacked.error}`);
      if (s.ready && s.synced) break;
      last = s.ready ? 'ready, not synced' : 'not ready';
      if (Date.now() >= deadline) throw new UpgradeFailure('NotReady', `new proxy not ready and synced within ${cfg.readyTimeoutMs} ms (${last})`);
      await wait(50);
    }
    const until = Date.now() + cfg.minReadySeconds * 1000;
    let failures = 0;
    while (Date.now() < until) {
      await wait(Math.min(cfg.healthProbeIntervalMs, until - Date.now()));
      if (child.exited) throw crashed();
      if (await readyProbe(child.adminPort, this.probeError)) failures = 0;
      else if (++failures >= 2) throw new UpgradeFailure('HealthProbeFailed', `new proxy failed ${failures} health probes in a row within minReadySeconds`);
    }
    if (child.exited) throw crashed();
  }

  /** SIGTERM: the serving proxy drains (finishes in-flight requests), then the agent exits. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.probeTimer);
    const cur = this.current;
    if (cur) {
      await cur.child.drain(this.opts.config.drainTimeoutMs);
    }
  }
}

/** Called with a probe's failure (a child starting or gone is expected to fail some). */
type ProbeError = (what: string, err: Error) => void;

/**
 * A proxy child's command line. What the agent owns — sockets handed over IPC, a private admin
 * port on loopback — is in the bootstrap file and again as flags, because the proxy reads
 * `OCTO_PROXY_*` env over its file and a pod's env is not only ours: a Service named
 * `octo-proxy-admin` in the app's namespace puts `OCTO_PROXY_ADMIN_PORT=tcp://…` into every
 * container (service links). Flags win over env. The listener ports are unused with sockets from
 * the parent; pinned so such a link cannot fail the child's config either.
 */
export function proxyChildArgs(bootstrapFile: string, tlsDir?: string): string[] {
  return [
    '--config',
    bootstrapFile,
    '--sockets-from',
    'parent',
    '--admin-host',
    '127.0.0.1',
    '--admin-port',
    '0',
    '--outbound-port',
    '0',
    '--inbound-port',
    '0',
    // The certificate files the agent keeps current (`proxyTlsDir`): the proxy watches them.
    ...(tlsDir ? ['--tls-dir', tlsDir] : []),
  ];
}

/**
 * GET of the child's admin over node:http, which the admin server has loaded already. `fetch`
 * would load undici (its 0.8 MB source, a WebAssembly llhttp) into the agent for two probes:
 * ~7 MB RSS (issue 22). A fresh connection per probe (`agent: false`): a kept-alive socket to a
 * child that just exited would fail the next probe for a reason that is not the new child's.
 */
const http = process.getBuiltinModule('node:http'); // not an ESM import: see admin.ts

function adminGet(adminPort: number, path: string, timeoutMs = 2_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

async function readyProbe(adminPort: number, onError?: ProbeError): Promise<boolean> {
  try {
    return (await adminGet(adminPort, '/ready')).status === 200;
  } catch (err) {
    onError?.('ready', err as Error);
    return false;
  }
}

async function syncProbe(adminPort: number, onError?: ProbeError): Promise<{ ready: boolean; synced: boolean; nacked: { typeUrl: string; error: string } | null }> {
  const ready = await readyProbe(adminPort, onError);
  try {
    const r = await adminGet(adminPort, '/sync');
    // A proxy without /sync (older than this seam): ready is all it can say.
    if (r.status !== 200) return { ready, synced: ready, nacked: null };
    const s = JSON.parse(r.body) as { synced: boolean; nacked: { typeUrl: string; error: string } | null };
    return { ready, synced: s.synced, nacked: s.nacked };
  } catch (err) {
    onError?.('sync', err as Error);
    return { ready: false, synced: false, nacked: null };
  }
}
