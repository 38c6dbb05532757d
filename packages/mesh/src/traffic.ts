import { request } from 'node:http';
import type { DemoReply } from './demo-app.js';

/** `service/version`, e.g. `catalog/v2`. */
export type Series = string;

/**
 * Request counts per service and version over time, in one-second buckets: totals since start
 * and rates over a sliding window. Pure (time is passed in).
 */
export class TrafficStats {
  private readonly buckets = new Map<number, Map<Series, number>>();
  readonly totals = new Map<Series, number>();
  failures = 0;
  readonly failureReasons = new Map<string, number>();
  requests = 0;

  /** Records one answered request: every service/version that took part in it. */
  record(reply: DemoReply, now: number): void {
    this.requests++;
    const second = Math.floor(now / 1000);
    let b = this.buckets.get(second);
    if (!b) this.buckets.set(second, (b = new Map()));
    const visit = (r: DemoReply) => {
      const s = `${r.service}/${r.version}`;
      b.set(s, (b.get(s) ?? 0) + 1);
      this.totals.set(s, (this.totals.get(s) ?? 0) + 1);
      for (const c of Object.values(r.calls ?? {})) if ('service' in c) visit(c);
    };
    visit(reply);
    for (const k of this.buckets.keys()) if (k < second - 120) this.buckets.delete(k);
  }

  fail(reason: string): void {
    // Long enough to keep the failing hop's reason (e.g. an x-octo-reason) in the key.
    this.requests++;
    this.failures++;
    const r = reason.slice(0, 240);
    this.failureReasons.set(r, (this.failureReasons.get(r) ?? 0) + 1);
  }

  /** Requests per second per series over the `windowS` complete seconds before `now`. */
  rates(now: number, windowS = 5): Map<Series, number> {
    const current = Math.floor(now / 1000);
    const out = new Map<Series, number>();
    for (let s = current - windowS; s < current; s++)
      for (const [k, v] of this.buckets.get(s) ?? []) out.set(k, (out.get(k) ?? 0) + v / windowS);
    return new Map([...out.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Share of `service`'s requests per version since `sinceCounts` (a snapshot of totals). */
  static split(service: string, totals: ReadonlyMap<Series, number>, since: ReadonlyMap<Series, number> = new Map()): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [k, v] of totals) if (k.startsWith(`${service}/`)) counts.set(k.slice(service.length + 1), v - (since.get(k) ?? 0));
    const sum = [...counts.values()].reduce((a, b) => a + b, 0);
    return new Map([...counts.entries()].map(([k, v]) => [k, sum ? v / sum : 0]));
  }
}

export interface LoadGeneratorOptions {
  /** host:port to send requests to (the frontend's sidecar inbound listener). */
  target: string;
  /** Host header, e.g. `frontend.demo.svc:8080`. */
  host: string;
  rps: number;
  /** Requests in flight at most; beyond it a tick is skipped and counted as shed, not failed. */
  maxInFlight?: number;
  /** A request with no byte for this long fails as timed out (default 5000). */
  timeoutMs?: number;
  stats: TrafficStats;
}

/**
 * Sends requests at a steady rate and records what answered. A request that fails (connection
 * error, non-200, timeout) is a failure with its reason: the demo's "no failed requests" claim is
 * measured here.
 */
export class LoadGenerator {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private readonly pending = new Set<Promise<void>>();
  skipped = 0;

  constructor(private readonly opts: LoadGeneratorOptions) {}

  start(): void {
    const intervalMs = 1000 / this.opts.rps;
    let next = performance.now();
    const tick = () => {
      const now = performance.now();
      while (next <= now) {
        next += intervalMs;
        if (this.inFlight >= (this.opts.maxInFlight ?? 200)) this.skipped++;
        else this.one();
      }
      this.timer = setTimeout(tick, Math.max(1, next - performance.now()));
    };
    tick();
  }

  /** Sends one request now and resolves when it is recorded. */
  one(): Promise<void> {
    this.inFlight++;
    const [host, port] = this.opts.target.split(':');
    const timeoutMs = this.opts.timeoutMs ?? 5000;
    const p = new Promise<void>((resolve) => {
      let recorded = false;
      const done = (fn: () => void) => {
        if (recorded) return;
        recorded = true;
        fn();
        this.inFlight--;
        resolve();
      };
      const req = request({ host, port: Number(port), path: '/', headers: { host: this.opts.host }, timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          done(() => {
            if (res.statusCode !== 200) return this.opts.stats.fail(`HTTP ${res.statusCode}: ${failedCalls(body) ?? body}`);
            try {
              this.opts.stats.record(JSON.parse(body) as DemoReply, Date.now());
            } catch {
              this.opts.stats.fail(`not JSON: ${body}`);
            }
          }),
        );
        res.on('error', (err) => done(() => this.opts.stats.fail(err.message)));
      });
      // Decided after the next I/O poll: when this process itself was not running (a loaded machine),
      // an answer that came in time waits in the socket while the timer is due, and Node runs timers
      // first; the mesh is not to be blamed for the load generator's stall.
      req.on('timeout', () => setImmediate(() => recorded || req.destroy(new Error(`timed out after ${timeoutMs / 1000} s`))));
      req.on('error', (err) => done(() => this.opts.stats.fail(err.message)));
      req.end();
    });
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await Promise.all([...this.pending]);
  }
}

/**
 * What failed inside a demo app's error reply: the dependency calls that failed and why, nested
 * (`catalog: catalog.demo.svc:8080: HTTP 504 upstream-per-try-timeout`), or undefined when the
 * body is not such a reply. Pure.
 */
export function failedCalls(body: string): string | undefined {
  let reply: { calls?: Record<string, { error?: string; calls?: unknown }> };
  try {
    reply = JSON.parse(body) as typeof reply;
  } catch {
    return undefined; // not a demo reply: the caller reports the body as it is
  }
  const out: string[] = [];
  const visit = (calls: Record<string, { error?: string; calls?: unknown }> | undefined, path: string) => {
    for (const [dep, c] of Object.entries(calls ?? {})) {
      if (c.error) out.push(`${path}${dep}: ${c.error}`);
      else visit(c.calls as typeof calls, `${path}${dep} > `);
    }
  };
  visit(reply.calls, '');
  return out.length ? out.join('; ') : undefined;
}
