import { readFileSync, readdirSync } from 'node:fs';
import v8 from 'node:v8';

/**
 * The proxy's overload rule, after Envoy's overload manager: one pressure figure — the larger of
 * the V8 heap in use over its limit and the open file descriptors over the soft `RLIMIT_NOFILE`
 * — sampled once a second, and three actions that start at rising thresholds, so a proxy near
 * its limits sheds load in steps instead of crashing (an out-of-memory abort or EMFILE on every
 * accept and connect):
 *
 * 1. `stopAccepting` (default 0.90): new downstream connections are closed as they are accepted;
 * 2. `disableKeepAlive` (0.95): responses carry `connection: close`, so clients spread out;
 * 3. `reject` (0.98): requests are answered `503` with `x-octo-reason: overloaded`.
 */
export interface OverloadThresholds {
  stopAccepting: number;
  disableKeepAlive: number;
  reject: number;
}

export const DEFAULT_OVERLOAD: OverloadThresholds = { stopAccepting: 0.9, disableKeepAlive: 0.95, reject: 0.98 };

/** 0: normal; 1: stop accepting; 2: and no keep-alive; 3: and answer 503. Pure, for the table test. */
export function overloadLevel(pressure: number, t: OverloadThresholds): 0 | 1 | 2 | 3 {
  if (pressure >= t.reject) return 3;
  if (pressure >= t.disableKeepAlive) return 2;
  if (pressure >= t.stopAccepting) return 1;
  return 0;
}

/** The soft limit on open files, from /proc (Linux); undefined elsewhere or when unlimited. */
function fdLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'latin1'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Heap in use over the heap limit, and open descriptors over their limit: the larger one. Never throws. */
export function processPressure(limit = fdLimit()): number {
  let p = 0;
  try {
    const h = v8.getHeapStatistics();
    p = h.used_heap_size / h.heap_size_limit;
  } catch {
    // keep 0
  }
  if (limit) {
    try {
      p = Math.max(p, readdirSync('/proc/self/fd').length / limit);
    } catch {
      // no /proc: heap only
    }
  }
  return p;
}

export class OverloadMonitor {
  /** The level from the last sample (see {@link overloadLevel}). */
  level: 0 | 1 | 2 | 3 = 0;
  pressure = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly thresholds: OverloadThresholds = DEFAULT_OVERLOAD,
    /** Where pressure comes from (tests drive it). */
    private readonly sample: () => number = processPressure,
    private readonly intervalMs = 1000,
    private readonly onChange?: (level: number, pressure: number) => void,
  ) {}

  start(): void {
    if (this.timer) return;
    this.check();
    this.timer = setInterval(() => this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  check(): void {
    let p = 0;
    try {
      p = this.sample();
    } catch {
      // A failing probe must not turn into shedding load, nor into a crash.
    }
    this.pressure = p;
    const level = overloadLevel(p, this.thresholds);
    if (level !== this.level) {
      this.level = level;
      this.onChange?.(level, p);
    }
  }
}
