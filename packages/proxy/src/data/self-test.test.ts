import { describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { Registry, createLogger } from '@octo-mesh/runtime';
import { httpListener, routeConfig, staticCluster } from '../test-support/resources.js';
import { httpUpstream, request } from '../test-support/upstreams.js';
import { startProxy } from '../test-support/proxy.js';
import { downstreamH1Codec } from './listeners.js';
import { selfTestH1, warmUp, type Observed } from './self-test.js';
import { upstreamH1Codec } from './upstream.js';

/** A logger whose lines the test reads. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('proxy-test', 'info', new Writable({ write: (c, _e, cb) => (lines.push(JSON.parse(String(c))), cb()) }));
  return { logger, lines };
}

// Jest gives each test file its own modules, so the fallback below stays in this file. The
// tests run in order: the passing self-test first, then the one that falls back.
describe('HTTP/1.1 start-up self-test', () => {
  it('passes on the lean path, which stays in force', async () => {
    const { logger, lines } = capture();
    const registry = new Registry();
    const r = await selfTestH1({ logger, registry });
    expect(r.mismatch).toBeUndefined();
    expect(r.codec).toEqual({ downstream: 'lean', upstream: 'lean' });
    expect(lines.filter((l) => l['level'] === 'warn' || l['level'] === 'error')).toEqual([]);
    expect(await registry.metrics()).toContain('octo_proxy_http1_codec{side="downstream",codec="lean"} 1');
  });

  it('warms up within its bounds over HTTP/1.1 and h2c, reports it, and not at all with 0 requests', async () => {
    const { logger, lines } = capture();
    const registry = new Registry();
    const before = Date.now() / 1000;
    const r = await warmUp({ requests: 40, budgetMs: 2000, logger, registry });
    expect(r.error).toBeUndefined();
    expect(lines.filter((l) => l['level'] === 'warn' || l['level'] === 'error')).toEqual([]);
    expect(r.requests).toBeGreaterThanOrEqual(40);
    expect(r.requests).toBeLessThan(40 + 4 * 4 + 1); // the rounds in flight finish
    // Both protocols' paths ran (two lanes each), and the gauges say so.
    expect(r.byProtocol!.h1).toBeGreaterThanOrEqual(8);
    expect(r.byProtocol!.h2).toBeGreaterThanOrEqual(6);
    expect(r.byProtocol!.h1 + r.byProtocol!.h2).toBe(r.requests);
    const m = await registry.metrics();
    expect(m).toContain(`octo_proxy_warm_up_requests{protocol="http1"} ${r.byProtocol!.h1}`);
    expect(m).toContain(`octo_proxy_warm_up_requests{protocol="http2"} ${r.byProtocol!.h2}`);
    const end = Number(/^octo_proxy_warm_up_end_timestamp_seconds (\S+)$/m.exec(m)?.[1]);
    expect(end).toBeGreaterThanOrEqual(before);
    expect(end).toBeLessThanOrEqual(Date.now() / 1000);
    const bounded = await warmUp({ requests: 100_000, budgetMs: 50, logger });
    expect(bounded.ms).toBeLessThan(1000);
    expect(await warmUp({ requests: 0, budgetMs: 300, logger })).toEqual({ requests: 0, ms: 0 });
  });

  // Beside a serving proxy on shared CPUs (a LEGO swap) the warm-up can leave room: with a duty
  // cycle below 1 the lanes pause together in proportion to it, so the event loop is idle
  // for the rest (ELU counts time the process was descheduled as busy, so a loaded machine does
  // not make the idle share look larger than it is).
  it('with a duty cycle below 1 leaves the event loop idle between rounds', async () => {
    const { logger } = capture();
    await warmUp({ requests: 40, budgetMs: 2000, logger }); // compiled, as in the measured run below
    const elu0 = performance.eventLoopUtilization();
    const r = await warmUp({ requests: 100_000, budgetMs: 400, dutyCycle: 0.1, logger });
    const elu = performance.eventLoopUtilization(elu0);
    expect(r.error).toBeUndefined();
    expect(r.requests).toBeGreaterThan(0);
    expect(elu.utilization).toBeLessThan(0.65);
  });

  it('on a mismatch of the lean path falls back to node:http, says why, counts it, and serves correctly', async () => {
    const { logger, lines } = capture();
    const registry = new Registry();
    const faults: string[] = [];
    // The injected fault: on the lean server only, the chunked response loses its body's end.
    const fault = (codec: string, probe: string, seen: Observed) => {
      faults.push(`${codec}:${probe}`);
      if (codec === 'lean' && probe === 'post-chunked') seen.body = seen.body.slice(0, -3);
    };
    const up = await httpUpstream('app', (req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        if (req.url === '/chunked') {
          res.writeHead(200, { 'x-seen': String(Buffer.concat(parts).length) });
          res.write('a');
          res.end('b');
        } else res.end(`hello ${req.method} ${Buffer.concat(parts).length}`);
      });
    });
    const proxy = await startProxy(
      { listeners: [httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) })], clusters: [staticCluster('app', [up.port])] },
      { logger, registry, selfTestFault: fault },
    );
    try {
      expect(downstreamH1Codec()).toBe('node');
      expect(upstreamH1Codec()).toBe('node');
      const warn = lines.find((l) => l['level'] === 'warn');
      expect(warn).toMatchObject({ message: 'HTTP/1.1 fast path failed its self-test; serving HTTP/1.1 with node:http', check: 'post-chunked.body' });
      expect(String(warn?.['mismatch'])).toContain('chunk-one,chunk-two,end');
      expect(lines.filter((l) => l['level'] === 'error')).toEqual([]); // the round on node:http passed
      expect(faults).toContain('node:post-chunked');
      const metrics = await registry.metrics();
      expect(metrics).toContain('octo_proxy_http1_self_test_failures_total{check="post-chunked.body"} 1');
      expect(metrics).toContain('octo_proxy_http1_codec{side="downstream",codec="node"} 1');
      expect(metrics).toContain('octo_proxy_http1_codec{side="upstream",codec="node"} 1');
      // Real traffic through the proxy on the fallback: content-length and chunked, kept alive.
      for (let i = 0; i < 3; i++) {
        const r = await request(proxy.port, { path: '/x', method: 'POST', body: 'abc' });
        expect(r.status).toBe(200);
        expect(r.body).toBe('hello POST 3');
      }
      const c = await request(proxy.port, { path: '/chunked', method: 'POST', body: 'x'.repeat(5000) });
      expect(c.status).toBe(200);
      expect(c.body).toBe('ab');
      expect(c.headers['x-seen']).toBe('5000');
    } finally {
      await proxy.stop(0);
      await up.close();
    }
  });
});
