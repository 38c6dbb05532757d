import { createHash } from 'node:crypto';
import type * as HttpT from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import { Counter, Gauge, Registry, recordError, type Logger } from '@octo-mesh/runtime';
import type { ClusterModel, ListenerModel, RouteTable } from '../model.js';
import { ProxyStats } from '../stats.js';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from '../translate/index.js';
import { ConfigStore } from '../xds/config-store.js';
import { ClusterManager } from './cluster-manager.js';
import { ListenerManager, downstreamH1Codec, serveH1WithNode } from './listeners.js';
import { RateLimiter } from './rate-limit.js';
import { requestH1WithNode, upstreamH1Codec } from './upstream.js';

// node:http as its CommonJS object, not an ESM import (see lego-agent/src/admin.ts: an ESM import
// of node:http makes Node 24 load undici through its lazy WebSocket getters, ~5 MB per proxy).
const http = process.getBuiltinModule('node:http');

/**
 * The HTTP/1.1 fast path's start-up self-test, and the LEGO warm-up built on it.
 *
 * The lean codec (h1-server.ts, h1-client.ts, lean-http.ts, h1-fast.ts) reaches into Node
 * internals: `_http_common`'s llhttp binding, the socket fields behind `onread` (`readDirect`) and
 * one read buffer shared by every connection. A Node release that changes any of them could
 * corrupt messages quietly rather than fail. So before the proxy serves, it sends a few real
 * round trips through its own path — a private loopback listener (ListenerManager, as real
 * traffic arrives) → the proxy's request handling (router, cluster, upstream pool) → an upstream
 * in this process — and compares status, headers, bodies, both framings (`content-length` and
 * `chunked`, each way) and keep-alive reuse with what was sent. On any mismatch the process
 * switches both HTTP/1.1 sides to `node:http` (`serveH1WithNode`, `requestH1WithNode`), logs a
 * warning naming the check, and counts it (`octo_proxy_http1_self_test_failures_total{check}`;
 * `octo_proxy_http1_codec{side,codec}` says what is in force). The private path has its own
 * snapshot, cluster pools and metrics registry: nothing of it shows in the proxy's config,
 * stats or access log.
 *
 * The warm-up (`warmUp`) runs the same round trips in a bounded burst so that the data path's
 * hot functions are compiled before real traffic arrives: the LEGO agent's new proxy does it
 * before it accepts on the agent's sockets (issue 14: a swap's slow requests were those that
 * met the new, cold process).
 */

export type H1Codec = 'lean' | 'node';

/** What the client saw of one response, before it is compared (a test's `fault` may change it). */
export interface Observed {
  status: number;
  headers: HttpT.IncomingHttpHeaders;
  body: string;
  /** Whether the request went on a connection a previous one used (keep-alive). */
  reused: boolean;
}

export interface SelfTestOptions {
  logger: Logger;
  /** The proxy's registry, for the codec metrics; omit for none. */
  registry?: Registry;
  /** Tests only: sees (and may change) each observed response before the checks, with the codec in force downstream. */
  fault?: (codec: H1Codec, probe: string, seen: Observed) => void;
}

export interface SelfTestResult {
  /** The codecs in force after the test (downstream server, upstream client). */
  codec: { downstream: H1Codec; upstream: H1Codec };
  /** The first mismatch of the lean path, when it failed and the process fell back. */
  mismatch?: string;
  ms: number;
}

/** A failed check: which one, and what was expected against what was seen. */
class Mismatch extends Error {
  constructor(readonly check: string, detail: string) {
    super(`${check}: ${detail}`);
  }
}

const BODY = Buffer.alloc(3000, 'octo-self-test/').toString('latin1');
const sum = (s: string | Buffer) => createHash('sha256').update(s).digest('hex').slice(0, 16);
const BODY_SUM = sum(BODY);

/** The in-process upstream: answers by path; echoes what it received in `x-echo-*` headers. */
function upstreamHandler(req: HttpT.IncomingMessage, res: HttpT.ServerResponse): void {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    const body = Buffer.concat(parts);
    const echo = {
      'x-echo-probe': String(req.headers['x-probe'] ?? ''),
      'x-echo-te': String(req.headers['transfer-encoding'] ?? ''),
      'x-echo-len': String(body.length),
      'x-echo-sum': sum(body),
    };
    if (req.url === '/chunked') {
      // No content-length: node:http frames the response with chunked encoding.
      res.writeHead(201, { 'content-type': 'text/plain', ...echo });
      res.write('chunk-one,');
      res.write('chunk-two,');
      res.end('end');
      return;
    }
    const out = `ok ${req.method} ${req.url}`;
    res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(out), 'set-cookie': ['a=1', 'b=2'], ...echo });
    res.end(out);
  });
}

interface Probe {
  name: string;
  method: string;
  path: string;
  /** Request body: sent with content-length, or chunked (`chunked: true`, in pieces). */
  body?: string;
  chunked?: boolean;
  expect: { status: number; body: string; framing: 'content-length' | 'chunked' };
}

/** One round of round trips on one kept-alive connection. */
const PROBES: Probe[] = [
  { name: 'get', method: 'GET', path: '/plain?q=1', expect: { status: 200, body: 'ok GET /plain?q=1', framing: 'content-length' } },
  { name: 'post-content-length', method: 'POST', path: '/upload', body: BODY, expect: { status: 200, body: 'ok POST /upload', framing: 'content-length' } },
  { name: 'post-chunked', method: 'POST', path: '/chunked', body: BODY, chunked: true, expect: { status: 201, body: 'chunk-one,chunk-two,end', framing: 'chunked' } },
  { name: 'status-404', method: 'GET', path: '/missing', expect: { status: 404, body: 'ok GET /missing', framing: 'content-length' } },
];

/** The warm-up's HTTP/2 streams, multiplexed on one session (framing is HTTP/2's own). */
const PROBES_H2: Probe[] = PROBES.filter((p) => !p.chunked);

/** Resources of the private path, in Envoy's shape (translated like the bootstrap's). */
function resources(upstreamPort: number): ConfigStore {
  const one = <T extends ResourceTypeUrl>(typeUrl: T, obj: unknown) => {
    const m = fromEnvoyJson(typeUrl, obj, 'self-test');
    const r = m.ok ? translateResource(typeUrl, m.value) : m;
    if (!r.ok) throw new Error(`self-test resources: ${r.error}`);
    return r.value;
  };
  const listener = one(TYPE_URL.listener, {
    name: 'self-test',
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'self-test',
              route_config: { name: 'self-test', virtual_hosts: [{ name: 'self-test', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'self-test' } }] }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  }) as ListenerModel;
  const cluster = one(TYPE_URL.cluster, {
    name: 'self-test',
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: 'self-test', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: upstreamPort } } } }] }] },
  }) as ClusterModel;
  return new ConfigStore(new Map([['self-test', listener]]), new Map([['self-test', cluster]]), new Map<string, RouteTable>());
}

/**
 * The private path: an upstream in this process, a listener on 127.0.0.1 port 0 served by the
 * proxy's ListenerManager with its own snapshot and pools. `close()` leaves nothing behind.
 */
export class SelfTestPath {
  private constructor(
    private readonly upstream: HttpT.Server,
    private readonly listeners: ListenerManager,
    private readonly clusters: ClusterManager,
    readonly port: number,
    /** Connections the upstream accepted (keep-alive reuse upstream). */
    readonly upstreamConnections: () => number,
  ) {}

  static async open(logger: Logger): Promise<SelfTestPath> {
    let accepted = 0;
    const upstream = http.createServer({ keepAlive: true }, upstreamHandler);
    upstream.on('connection', () => accepted++);
    await new Promise<void>((resolve, reject) => {
      upstream.once('error', reject);
      upstream.listen(0, '127.0.0.1', () => resolve());
    });
    const store = resources((upstream.address() as AddressInfo).port);
    const clusters = new ClusterManager();
    clusters.apply(store.snapshot);
    const snapshot = store.snapshot;
    // Its listener's own info lines ('listening', …) would read as the proxy's; warnings stay.
    const quiet = {
      debug: () => undefined,
      info: () => undefined,
      warn: (msg: string, meta?: object) => logger.warn(msg, { selfTest: true, ...meta }),
      error: (msg: string, meta?: object) => logger.error(msg, { selfTest: true, ...meta }),
    } as unknown as Logger;
    const listeners = new ListenerManager(
      { snapshot: () => snapshot, clusters, rateLimiter: new RateLimiter(), stats: new ProxyStats(new Registry()) },
      quiet,
      { isolated: true, overload: { stopAccepting: 2, disableKeepAlive: 2, reject: 2 } },
    );
    try {
      const addr = await listeners.attach('self-test', { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } });
      return new SelfTestPath(upstream, listeners, clusters, addr && addr.kind === 'tcp' ? addr.port : 0, () => accepted);
    } catch (err) {
      upstream.close();
      clusters.close();
      await listeners.drain(0);
      throw err;
    }
  }

  /**
   * One round of PROBES on one new kept-alive connection; throws a Mismatch naming the first
   * check that failed. `fault` is the tests' hook (see SelfTestOptions).
   */
  async round(fault?: SelfTestOptions['fault']): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const [i, p] of PROBES.entries()) {
        const seen = await this.send(agent, p);
        fault?.(downstreamH1Codec(), p.name, seen);
        check(p, seen, i > 0);
      }
    } finally {
      agent.destroy();
    }
  }

  private send(agent: HttpT.Agent, p: Probe): Promise<Observed> {
    return new Promise((resolve, reject) => {
      const headers: HttpT.OutgoingHttpHeaders = { 'x-probe': p.name };
      if (p.body !== undefined && !p.chunked) headers['content-length'] = Buffer.byteLength(p.body);
      const req = http.request({ host: '127.0.0.1', port: this.port, method: p.method, path: p.path, agent, headers }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('latin1'), reused: req.reusedSocket }));
        res.on('error', reject);
      });
      req.setTimeout(2000, () => req.destroy(new Mismatch(`${p.name}.timeout`, 'no response within 2 s')));
      req.on('error', (err) => reject(err instanceof Mismatch ? err : new Mismatch(`${p.name}.transport`, err.message)));
      if (p.body !== undefined && p.chunked) {
        // Three writes before the end: the client frames them as chunks.
        const third = Math.ceil(p.body.length / 3);
        req.write(p.body.slice(0, third));
        req.write(p.body.slice(third, 2 * third));
        req.end(p.body.slice(2 * third));
      } else req.end(p.body);
    });
  }

  /**
   * The warm-up's HTTP/2 round: one h2c session (prior knowledge, as the mesh's h2 clients
   * connect) to the private listener, PROBES_H2 multiplexed on it, each response checked.
   * HTTP/2 downstream is node:http2 (no lean codec to test), so this only warms its JS path:
   * the preface sniffing, the session and stream handlers, the h2 → h1 request translation.
   */
  async roundH2(): Promise<void> {
    const session = http2.connect(`http://127.0.0.1:${this.port}`);
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', (err) => reject(new Mismatch('h2.transport', err.message)));
      });
      await Promise.all(PROBES_H2.map((p) => this.sendH2(session, p)));
    } finally {
      session.destroy();
    }
  }

  private sendH2(session: http2.ClientHttp2Session, p: Probe): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (check: string, detail: string) => reject(new Mismatch(`h2-${p.name}.${check}`, detail));
      const stream = session.request({ ':method': p.method, ':path': p.path, 'x-probe': p.name, ...(p.body !== undefined ? { 'content-length': Buffer.byteLength(p.body) } : {}) });
      let status = 0;
      const parts: Buffer[] = [];
      stream.setTimeout(2000, () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', (c: Buffer) => parts.push(c));
      stream.on('error', (err) => fail('transport', err.message));
      stream.on('close', () => {
        const body = Buffer.concat(parts).toString('latin1');
        if (status !== p.expect.status) return fail('status', `expected ${p.expect.status}, got ${status} (rst ${stream.rstCode})`);
        if (body !== p.expect.body) return fail('body', `expected ${JSON.stringify(p.expect.body)}, got ${JSON.stringify(body)}`);
        resolve();
      });
      stream.end(p.body);
    });
  }

  async close(): Promise<void> {
    await this.listeners.drain(0);
    this.clusters.close();
    this.upstream.closeAllConnections();
    await new Promise<void>((r) => this.upstream.close(() => r()));
  }
}

/** Compares one observed response with what the probe and the upstream imply. */
function check(p: Probe, seen: Observed, mayReuse: boolean): void {
  const eq = (what: string, got: unknown, want: unknown) => {
    if (got !== want) throw new Mismatch(`${p.name}.${what}`, `expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
  };
  const h = seen.headers;
  eq('status', seen.status, p.expect.status);
  eq('body', seen.body, p.expect.body);
  eq('header', h['x-echo-probe'], p.name);
  eq('content-type', h['content-type'], 'text/plain');
  const sent = p.body ?? '';
  eq('request-body-length', h['x-echo-len'], String(Buffer.byteLength(sent)));
  eq('request-body', h['x-echo-sum'], sent === BODY ? BODY_SUM : sum(sent));
  if (p.expect.framing === 'content-length') {
    eq('content-length', h['content-length'], String(Buffer.byteLength(p.expect.body)));
    eq('set-cookie', JSON.stringify(h['set-cookie']), '["a=1","b=2"]');
  } else if (h['content-length'] !== undefined) eq('content-length', h['content-length'], String(Buffer.byteLength(p.expect.body)));
  else eq('transfer-encoding', h['transfer-encoding'], 'chunked');
  if (mayReuse) eq('keep-alive', seen.reused, true);
}

function codecs(): SelfTestResult['codec'] {
  return { downstream: downstreamH1Codec(), upstream: upstreamH1Codec() };
}

function codecGauge(registry: Registry | undefined): Gauge<'side' | 'codec'> | undefined {
  if (!registry) return undefined;
  const existing = registry.getSingleMetric('octo_proxy_http1_codec') as Gauge<'side' | 'codec'> | undefined;
  return existing ?? new Gauge({ name: 'octo_proxy_http1_codec', help: 'The HTTP/1.1 codec in force per side (downstream, upstream): 1 for lean or node.', labelNames: ['side', 'codec'], registers: [registry] });
}

function failureCounter(registry: Registry | undefined): Counter<'check'> | undefined {
  if (!registry) return undefined;
  const existing = registry.getSingleMetric('octo_proxy_http1_self_test_failures_total') as Counter<'check'> | undefined;
  return existing ?? new Counter({ name: 'octo_proxy_http1_self_test_failures_total', help: 'Start-up self-tests of the lean HTTP/1.1 path that failed (the proxy then serves with node:http), by the check that failed.', labelNames: ['check'], registers: [registry] });
}

function report(registry: Registry | undefined): SelfTestResult['codec'] {
  const c = codecs();
  const g = codecGauge(registry);
  if (g) {
    g.reset();
    g.set({ side: 'downstream', codec: c.downstream }, 1);
    g.set({ side: 'upstream', codec: c.upstream }, 1);
  }
  return c;
}

/** Runs one round on a fresh private path; the first mismatch, or undefined. */
async function roundOnce(logger: Logger, fault?: SelfTestOptions['fault']): Promise<Mismatch | undefined> {
  let path: SelfTestPath | undefined;
  try {
    path = await SelfTestPath.open(logger);
    await path.round(fault);
    return undefined;
  } catch (err) {
    return err instanceof Mismatch ? err : new Mismatch('setup', (err as Error).message);
  } finally {
    // The verdict is in: closing (a drain of its listener) need not hold the start.
    void path?.close().catch(() => undefined);
  }
}

/**
 * The start-up self-test (see the file's comment). Runs only when some side uses the lean codec;
 * on a mismatch both sides switch to `node:http` for the life of the process, and the round is
 * run once more on that path (a failure there is logged as an error; the proxy serves anyway).
 */
export async function selfTestH1(opts: SelfTestOptions): Promise<SelfTestResult> {
  const t0 = performance.now();
  const before = codecs();
  if (before.downstream === 'node' && before.upstream === 'node') return { codec: report(opts.registry), ms: 0 };
  const failed = await roundOnce(opts.logger, opts.fault);
  if (!failed) return { codec: report(opts.registry), ms: performance.now() - t0 };
  serveH1WithNode();
  requestH1WithNode();
  failureCounter(opts.registry)?.inc({ check: failed.check });
  opts.logger.warn('HTTP/1.1 fast path failed its self-test; serving HTTP/1.1 with node:http', { check: failed.check, mismatch: failed.message, node: process.version });
  const again = await roundOnce(opts.logger, opts.fault);
  if (again) opts.logger.error('HTTP/1.1 self-test fails on node:http too; serving anyway', { check: again.check, mismatch: again.message });
  return { codec: report(opts.registry), mismatch: failed.message, ms: performance.now() - t0 };
}

/** The warm-up's bounds: rounds of round trips until `requests` are done or `budgetMs` is spent. */
export interface WarmUpOptions {
  requests: number;
  budgetMs: number;
  /** Connections used side by side: HTTP/1.1 and h2c alternately (at least one of each). */
  connections?: number;
  /**
   * The share of the time the warm-up keeps its process busy (0 < d ≤ 1, default 1): after each
   * ~20 ms of work all lanes pause (1 − d) / d times as long, so a warm-up beside a serving proxy
   * on the same CPUs leaves it room.
   */
  dutyCycle?: number;
  logger: Logger;
  /** The proxy's registry: the warm-up's gauges (`octo_proxy_warm_up_*`), set when it ends. */
  registry?: Registry;
}

export interface WarmUpResult {
  /** Round trips done, both protocols. */
  requests: number;
  ms: number;
  byProtocol?: { h1: number; h2: number };
  error?: string;
}

/**
 * A bounded burst of round trips through the private path, HTTP/1.1 and h2c side by side, so V8
 * compiles the data path before real traffic (the LEGO agent's swap: kept-alive HTTP/1.1
 * connections are handed over, HTTP/2 clients reconnect after GOAWAY; both meet the new proxy at
 * once). Stops at `requests` or `budgetMs`, whichever is first (the rounds in flight finish); a
 * mismatch or error stops it and is logged and counted (`octo_errors_total{where="warm-up"}`),
 * never thrown. None of it shows in the proxy's request stats (the private path has its own).
 */
export async function warmUp(opts: WarmUpOptions): Promise<WarmUpResult> {
  const t0 = performance.now();
  if (opts.requests <= 0 || opts.budgetMs <= 0) return { requests: 0, ms: 0 };
  const by = { h1: 0, h2: 0 };
  let path: SelfTestPath | undefined;
  let error: string | undefined;
  const done = () => by.h1 + by.h2;
  try {
    path = await SelfTestPath.open(opts.logger);
    const lanes = Math.max(2, opts.connections ?? 4);
    const pace = dutyPacer(opts.dutyCycle ?? 1);
    const lane = async (h2: boolean) => {
      while (!error && done() < opts.requests && performance.now() - t0 < opts.budgetMs) {
        await pace();
        if (h2) {
          by.h2 += PROBES_H2.length;
          await path!.roundH2();
        } else {
          by.h1 += PROBES.length;
          await path!.round();
        }
      }
    };
    await Promise.all(Array.from({ length: lanes }, (_, i) => lane(i % 2 === 1).catch((err: Error) => void (error ??= err.message))));
  } catch (err) {
    error ??= (err as Error).message;
  } finally {
    await path?.close();
  }
  const ms = performance.now() - t0;
  if (error) recordError(opts.logger, 'warm-up', new Error(error), { requests: done(), ms: Math.round(ms) });
  if (opts.registry) warmUpGauges(opts.registry, by, ms);
  return { requests: done(), ms, byProtocol: by, ...(error ? { error } : {}) };
}

/**
 * The warm-up's duty cycle, shared by its lanes: after each ~20 ms of work every lane waits before
 * its next round until the process has been left idle in proportion (a pause per lane would let
 * the other lanes keep the event loop busy meanwhile). `duty` ≥ 1: no pauses.
 */
function dutyPacer(duty: number): () => Promise<void> {
  const d = Math.min(1, Math.max(0.05, duty));
  if (d >= 1) return () => Promise.resolve();
  let busySince = performance.now();
  let gate: Promise<void> | undefined;
  return () => {
    if (gate) return gate;
    const busy = performance.now() - busySince;
    if (busy < 20) return Promise.resolve();
    gate = new Promise<void>((r) => setTimeout(r, (busy * (1 - d)) / d)).then(() => {
      gate = undefined;
      busySince = performance.now();
    });
    return gate;
  };
}

/** What the last warm-up did, for the agent's tests and operators: requests, time, when it ended. */
function warmUpGauges(registry: Registry, by: { h1: number; h2: number }, ms: number): void {
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    (registry.getSingleMetric(name) as Gauge<string> | undefined) ?? new Gauge({ name, help, labelNames, registers: [registry] });
  const requests = gauge('octo_proxy_warm_up_requests', 'Round trips of the warm-up before accepting on the LEGO agent\'s sockets, by protocol (private path; not in octo_proxy_requests_total).', ['protocol']);
  requests.set({ protocol: 'http1' }, by.h1);
  requests.set({ protocol: 'http2' }, by.h2);
  gauge('octo_proxy_warm_up_seconds', 'How long the warm-up took.').set(ms / 1000);
  gauge('octo_proxy_warm_up_end_timestamp_seconds', 'When the warm-up ended (Unix time); the proxy accepts on the agent\'s sockets only after it.').set(Date.now() / 1000);
}
