import http from 'node:http';
import http2 from 'node:http2';

/**
 * A fixed-rate load generator over kept-alive connections: HTTP/1.1 (a keep-alive agent) and
 * h2c sessions, half the requests each. Counts every request that did not end in a 200 as
 * failed, with its error. An HTTP/2 request the server refused unprocessed — sent before its
 * GOAWAY arrived (REFUSED_STREAM, or a session already going away) — is retried on a new
 * session, as gRPC and Envoy do transparently, and counted in `retriedRefused`.
 */
export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  errors: string[];
  retriedRefused: number;
  /** [start ms since the generator started, latency ms, protocol] per completed request (made when read; see {@link Samples}). */
  readonly samples: [number, number, 'h1' | 'h2'][];
  /** Start (ms since the generator started) of each failed request. */
  failedAt: number[];
}

/**
 * Completed requests in typed arrays that grow by doubling: a tuple per request kept for the
 * whole run would be old-generation garbage the generator's process collects in pauses of
 * several ms (bench/lego saw 6–7 ms ones in its windows), delaying the very requests it times.
 */
class Samples {
  private start = new Float64Array(1 << 16);
  private latency = new Float64Array(1 << 16);
  private h2 = new Uint8Array(1 << 16);
  length = 0;

  push(start: number, latency: number, h2: boolean): void {
    if (this.length === this.start.length) {
      const grow = <T extends Float64Array | Uint8Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.start = grow(this.start);
      this.latency = grow(this.latency);
      this.h2 = grow(this.h2);
    }
    this.start[this.length] = start;
    this.latency[this.length] = latency;
    this.h2[this.length++] = h2 ? 1 : 0;
  }

  tuples(): [number, number, 'h1' | 'h2'][] {
    const out: [number, number, 'h1' | 'h2'][] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = [this.start[i]!, this.latency[i]!, this.h2[i] ? 'h2' : 'h1'];
    return out;
  }
}

const REFUSED = new Set(['ERR_HTTP2_GOAWAY_SESSION', 'ERR_HTTP2_INVALID_SESSION', 'ERR_HTTP2_STREAM_CANCEL']);

export class LoadGenerator {
  private readonly recorded = new Samples();
  readonly stats: LoadStats = (() => {
    const recorded = this.recorded;
    return {
      sent: 0,
      ok: 0,
      failed: 0,
      errors: [],
      retriedRefused: 0,
      failedAt: [],
      get samples() {
        return recorded.tuples();
      },
    };
  })();
  private running = false;
  private readonly agent: http.Agent;
  private sessions: (http2.ClientHttp2Session | undefined)[];
  private timer: NodeJS.Timeout | undefined;
  private inflight = 0;
  private t0 = 0;
  private next = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    /** `rps`: open loop at that rate; `concurrency` instead: closed loop, that many requests always in flight (saturation). */
    private readonly opts: { port: number; rps: number; concurrency?: number; h1Connections?: number; h2Connections?: number; path?: string; h2Share?: number },
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.h1Connections ?? 8 });
    this.sessions = new Array(opts.h2Connections ?? 2).fill(undefined);
  }

  start(): void {
    this.t0 = performance.now();
    this.running = true;
    if (this.opts.concurrency) {
      for (let i = 0; i < this.opts.concurrency; i++) this.one();
      return;
    }
    let due = 0;
    const tick = () => {
      const elapsed = (performance.now() - this.t0) / 1000;
      const target = Math.floor(elapsed * this.opts.rps);
      for (; due < target; due++) this.one();
      this.timer = setTimeout(tick, 5);
    };
    tick();
  }

  /** Stops sending and waits for every request in flight. */
  async stop(): Promise<LoadStats> {
    clearTimeout(this.timer);
    this.running = false;
    if (this.inflight > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
    this.agent.destroy();
    for (const s of this.sessions) s?.close();
    return this.stats;
  }

  private done(started: number, err?: string, protocol: 'h1' | 'h2' = 'h1'): void {
    this.inflight--;
    if (err) {
      this.stats.failed++;
      this.stats.failedAt.push(started - this.t0);
      if (this.stats.errors.length < 50) this.stats.errors.push(err);
    } else {
      this.stats.ok++;
      const now = performance.now();
      this.recorded.push(started - this.t0, now - started, protocol === 'h2');
    }
    if (this.running && this.opts.concurrency) this.one();
    else if (this.inflight === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  /** ms since start. */
  now(): number {
    return performance.now() - this.t0;
  }

  private one(): void {
    this.stats.sent++;
    this.inflight++;
    const started = performance.now();
    const h2 = (this.opts.h2Share ?? 0.5) > 0 && this.stats.sent % Math.round(1 / (this.opts.h2Share ?? 0.5)) === 0;
    if (h2) this.h2Request(started, 0);
    else this.h1Request(started);
  }

  private h1Request(started: number): void {
    const req = http.request({ host: '127.0.0.1', port: this.opts.port, path: this.opts.path ?? '/load', agent: this.agent, headers: { host: 'svc' } }, (res) => {
      res.resume();
      res.on('end', () => this.done(started, res.statusCode === 200 ? undefined : `h1 status ${res.statusCode} ${res.headers['x-octo-reason'] ?? ''}`));
      res.on('error', (err) => this.done(started, `h1 response: ${err.message}`));
    });
    req.on('error', (err: NodeJS.ErrnoException) => this.done(started, `h1: ${err.code ?? ''} ${err.message}`));
    req.end();
  }

  /** A session from the pool; `fresh` replaces it with a new connection (a retry after a refusal). */
  private session(fresh = false): http2.ClientHttp2Session {
    const i = this.next++ % this.sessions.length;
    let s = this.sessions[i];
    if (fresh || !s || s.closed || s.destroyed || (s as unknown as { goneAway?: boolean }).goneAway) {
      const fresh = http2.connect(`http://127.0.0.1:${this.opts.port}`);
      fresh.on('goaway', () => ((fresh as unknown as { goneAway?: boolean }).goneAway = true));
      fresh.on('error', () => undefined);
      fresh.on('close', () => {
        if (this.sessions[i] === fresh) this.sessions[i] = undefined;
      });
      this.sessions[i] = fresh;
      s = fresh;
    }
    return s;
  }

  private h2Request(started: number, attempt: number): void {
    const retry = (why: string) => {
      if (attempt >= 3) return this.done(started, `h2 refused ${attempt + 1} times: ${why}`);
      this.stats.retriedRefused++;
      this.h2Request(started, attempt + 1);
    };
    let stream: http2.ClientHttp2Stream;
    try {
      stream = this.session(attempt > 0).request({ ':path': this.opts.path ?? '/load', ':authority': 'svc' });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (REFUSED.has(code)) return retry(code);
      return this.done(started, `h2 request: ${code} ${(err as Error).message}`);
    }
    let status = 0;
    let settled = false;
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.resume();
    stream.on('end', () => {
      if (settled) return;
      settled = true;
      this.done(started, status === 200 ? undefined : `h2 status ${status}`, 'h2');
    });
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (settled) return;
      settled = true;
      if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || REFUSED.has(err.code ?? '')) return retry(err.code ?? 'REFUSED_STREAM');
      this.done(started, `h2: ${err.code ?? ''} ${err.message} rst=${stream.rstCode}`);
    });
    stream.on('close', () => {
      if (settled) return;
      settled = true;
      if (stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && status === 0) return retry('REFUSED_STREAM');
      this.done(started, status === 200 ? undefined : `h2 closed, status ${status} rst=${stream.rstCode}`, 'h2');
    });
  }
}

/** p-quantile (0..1) of latencies in ms. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}
