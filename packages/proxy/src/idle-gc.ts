import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Counter, Histogram, recordError, type Logger, type Registry } from '@octo-mesh/runtime';

/**
 * One memory-reducing garbage collection when the proxy has gone idle (issue 22).
 *
 * Why: V8 sizes its young generation by the allocation rate it sees and keeps what it grew. A
 * burst — loading 1,000 routes, the LEGO warm-up's 400 round trips, a load peak — grows the
 * semi-spaces to their maximum and leaves the old generation's pages full of garbage, and an idle
 * process never collects again, so that memory stays resident for as long as the sidecar lives
 * (measured: the warm-up alone leaves a one-route proxy ~15 MB above the same proxy without it;
 * see docs/footprint.md). V8's own memory reducer only starts after a full collection, which an
 * idle proxy never reaches. A last-resort full GC (`flavor: 'last-resort'`, what the inspector's
 * `HeapProfiler.collectGarbage` does) shrinks the young generation back to its initial size and
 * returns the freed pages; an ordinary full GC frees the same objects but keeps the sizes.
 *
 * When: the proxy is ready and its event loop was busy less than `maxElu` of the time for `idleMs`
 * in a row; the first time after start, then again only when the V8 heap has grown `growthBytes`
 * past what the last collection left, and at most once per `minIntervalMs`. The pause (tens of
 * ms) thus falls where almost no request waits for it — never in a swap or under steady load,
 * where the loop is busier than that — and a proxy whose heap stays grown under load pays nothing.
 *
 * Before the first accept ({@link IdleGc.beforeAccept}, setting `gcBeforeAccept`): the same
 * collection once the initial config is applied and the LEGO warm-up ended, before the proxy takes
 * its first connection, so that pause lands in the swap (the old proxy serves meanwhile), never on
 * a request; by default only after a warm-up, as on a first start it would add the pause to
 * start-to-ready for the memory the idle collection returns anyway. It counts as the last
 * collection: the idle one then runs only once the heap grew past what it left.
 */

/** What the decision reads at one check. `now` in ms; `elu` is the event loop's busy fraction since the previous check. */
export interface IdleGcSample {
  now: number;
  ready: boolean;
  elu: number;
  heapTotal: number;
}

/** What it remembers between checks. */
export interface IdleGcState {
  /** Since when the loop has been idle (and the proxy ready), or undefined while it is not. */
  idleSince?: number;
  /** When the last collection ran and the heap total it left. */
  last?: { at: number; heapTotal: number };
}

export interface IdleGcSettings {
  idleMs: number;
  maxElu: number;
  growthBytes: number;
  minIntervalMs: number;
}

export const IDLE_GC_DEFAULTS: Omit<IdleGcSettings, 'idleMs'> = { maxElu: 0.02, growthBytes: 8 * 1024 * 1024, minIntervalMs: 60_000 };

/** Pure: whether to collect now, and the state after this check. */
export function decideIdleGc(state: IdleGcState, s: IdleGcSample, cfg: IdleGcSettings): { collect: boolean; state: IdleGcState } {
  if (!s.ready || s.elu > cfg.maxElu) return { collect: false, state: { ...(state.last ? { last: state.last } : {}) } };
  const idleSince = state.idleSince ?? s.now;
  const next: IdleGcState = { idleSince, ...(state.last ? { last: state.last } : {}) };
  if (s.now - idleSince < cfg.idleMs) return { collect: false, state: next };
  if (state.last && (s.now - state.last.at < cfg.minIntervalMs || s.heapTotal < state.last.heapTotal + cfg.growthBytes)) return { collect: false, state: next };
  return { collect: true, state: next };
}

type GcFunction = (options?: { type?: 'major' | 'minor'; execution?: 'sync' | 'async'; flavor?: 'regular' | 'last-resort' }) => void;

let gcFn: GcFunction | undefined;

/**
 * V8's `gc`, without `--expose-gc` on the command line: the flag set at run time installs it in
 * contexts created afterwards, and the function collects the whole isolate's heap whichever
 * context it came from. Created once, at the first collection (a context costs memory).
 */
export function exposedGc(): GcFunction {
  if (gcFn) return gcFn;
  const global = (globalThis as { gc?: GcFunction }).gc;
  if (typeof global === 'function') return (gcFn = global);
  v8.setFlagsFromString('--expose-gc');
  const fn = vm.runInNewContext('gc') as unknown;
  if (typeof fn !== 'function') throw new Error('V8 did not expose gc after --expose-gc');
  return (gcFn = fn as GcFunction);
}

export interface IdleGcOptions {
  /** Idle this long before collecting; 0 turns the idle collection off ({@link IdleGc.beforeAccept} still works). */
  idleMs: number;
  ready: () => boolean;
  logger: Logger;
  registry: Registry;
  /** How often the loop's utilisation is sampled. */
  checkEveryMs?: number;
  settings?: Partial<Omit<IdleGcSettings, 'idleMs'>>;
}

/** Samples the event loop every `checkEveryMs` (an unref'd timer) and collects when {@link decideIdleGc} says so. */
export class IdleGc {
  private state: IdleGcState = {};
  private readonly timer: NodeJS.Timeout | undefined;
  private elu: EventLoopUtilization = performance.eventLoopUtilization();
  private readonly cfg: IdleGcSettings;
  private readonly runs: Counter<'result'>;
  private readonly pause: Histogram;
  private readonly acceptRuns: Counter<'result'>;
  private readonly acceptPause: Histogram;
  private failed = false;

  constructor(private readonly opts: IdleGcOptions) {
    this.cfg = { ...IDLE_GC_DEFAULTS, ...opts.settings, idleMs: opts.idleMs };
    const registers = [opts.registry];
    const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5];
    this.runs = new Counter({ name: 'octo_proxy_idle_gc_total', help: 'Memory-reducing garbage collections run because the proxy was idle (result: done, failed).', labelNames: ['result'], registers });
    this.pause = new Histogram({ name: 'octo_proxy_idle_gc_seconds', help: 'Pause of each idle memory-reducing garbage collection.', buckets, registers });
    this.acceptRuns = new Counter({ name: 'octo_proxy_gc_before_accept_total', help: 'Memory-reducing garbage collections run before the first accept (result: done, failed).', labelNames: ['result'], registers });
    this.acceptPause = new Histogram({ name: 'octo_proxy_gc_before_accept_seconds', help: 'Pause of the memory-reducing garbage collection before the first accept.', buckets, registers });
    if (opts.idleMs > 0) {
      this.timer = setInterval(() => this.check(), opts.checkEveryMs ?? 1000);
      this.timer.unref();
    }
  }

  private check(): void {
    const elu = performance.eventLoopUtilization(this.elu);
    this.elu = performance.eventLoopUtilization();
    const heapTotal = v8.getHeapStatistics().total_heap_size;
    const d = decideIdleGc(this.state, { now: performance.now(), ready: this.opts.ready(), elu: elu.utilization, heapTotal }, this.cfg);
    this.state = d.state;
    if (d.collect) this.collect(heapTotal);
  }

  /** One last-resort full collection now (the idle one); logs what it took and what it left. */
  collect(heapBefore = v8.getHeapStatistics().total_heap_size): void {
    this.lastResort('idle: memory-reducing GC', heapBefore, this.runs, this.pause);
  }

  /**
   * The collection before the first accept: the initial config's and the warm-up's garbage, and
   * the young generation they grew, returned before any request can wait for the pause.
   */
  beforeAccept(): void {
    this.lastResort('before the first accept: memory-reducing GC', v8.getHeapStatistics().total_heap_size, this.acceptRuns, this.acceptPause);
  }

  private lastResort(what: string, heapBefore: number, runs: Counter<'result'>, pause: Histogram): void {
    const t0 = performance.now();
    try {
      exposedGc()({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    } catch (err) {
      runs.inc({ result: 'failed' });
      // Once is enough to say it: the next checks would fail the same way.
      recordError(this.opts.logger, what, err, {}, this.failed ? 'debug' : 'warn');
      this.failed = true;
      this.state = { last: { at: performance.now(), heapTotal: Number.MAX_SAFE_INTEGER } };
      return;
    }
    const ms = performance.now() - t0;
    const heap = v8.getHeapStatistics();
    this.state = { last: { at: performance.now(), heapTotal: heap.total_heap_size } };
    runs.inc({ result: 'done' });
    pause.observe(ms / 1000);
    this.opts.logger.info(what, { ms: Math.round(ms), heapTotalMB: +(heapBefore / 1048576).toFixed(1), heapTotalAfterMB: +(heap.total_heap_size / 1048576).toFixed(1), heapUsedMB: +(heap.used_heap_size / 1048576).toFixed(1) });
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
