import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { LoadGenerator, TrafficStats, failedCalls } from './traffic.js';

const reply = (catalog: string) => ({
  service: 'frontend',
  version: 'v1',
  instance: 'f-0',
  calls: { catalog: { service: 'catalog', version: catalog, instance: 'c' }, ratings: { service: 'ratings', version: 'v1', instance: 'r' } },
});

describe('TrafficStats', () => {
  it('counts every service/version of a reply, and rates over whole seconds', () => {
    const s = new TrafficStats();
    for (let i = 0; i < 10; i++) s.record(reply(i < 8 ? 'v1' : 'v2'), 10_000 + i * 100); // second 10
    s.record(reply('v2'), 11_500); // second 11 (not complete at 11.9 s)
    expect(Object.fromEntries(s.totals)).toEqual({ 'frontend/v1': 11, 'catalog/v1': 8, 'catalog/v2': 3, 'ratings/v1': 11 });
    expect(Object.fromEntries(s.rates(11_900, 1))).toEqual({ 'catalog/v1': 8, 'catalog/v2': 2, 'frontend/v1': 10, 'ratings/v1': 10 });
    expect(Object.fromEntries(TrafficStats.split('catalog', s.totals))).toEqual({ v1: 8 / 11, v2: 3 / 11 });
    const snapshot = new Map(s.totals);
    s.record(reply('v2'), 12_000);
    expect(Object.fromEntries(TrafficStats.split('catalog', s.totals, snapshot))).toEqual({ v1: 0, v2: 1 });
  });

  it('keeps failure reasons', () => {
    const s = new TrafficStats();
    s.fail('HTTP 503: no healthy upstream');
    s.fail('HTTP 503: no healthy upstream');
    expect(s.failures).toBe(2);
    expect(s.requests).toBe(2);
    expect(Object.fromEntries(s.failureReasons)).toEqual({ 'HTTP 503: no healthy upstream': 2 });
  });
});

describe('LoadGenerator', () => {
  let server: Server;
  let port = 0;
  let n = 0;
  beforeAll(async () => {
    server = createServer((req, res) => {
      n++;
      if (req.headers.host !== 'frontend.demo.svc:8080') return void res.writeHead(400).end('wrong host');
      if (n % 5 === 0) return void res.writeHead(503).end('unlucky');
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply('v1')));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends at the rate asked and records answers and failures with their reasons', async () => {
    const stats = new TrafficStats();
    const gen = new LoadGenerator({ target: `127.0.0.1:${port}`, host: 'frontend.demo.svc:8080', rps: 100, stats });
    gen.start();
    await new Promise((r) => setTimeout(r, 1000));
    await gen.stop();
    expect(stats.requests).toBeGreaterThanOrEqual(80);
    expect(stats.requests).toBeLessThanOrEqual(110);
    expect(stats.failures).toBe(Math.floor(stats.requests / 5));
    expect([...stats.failureReasons.keys()]).toEqual(['HTTP 503: unlucky']);
  });

  it('records an answer that came in time while the generator itself was stalled past its timeout', async () => {
    // The stall is a synchronous wait in the server's callback (this process) after its answer is
    // written: when it ends the request's 15 ms timeout is due and the answer is in the socket.
    const stalling = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(reply('v2')));
      const until = performance.now() + 60;
      while (performance.now() < until);
    });
    await new Promise<void>((r) => stalling.listen(0, '127.0.0.1', r));
    try {
      const stats = new TrafficStats();
      await new LoadGenerator({ target: `127.0.0.1:${(stalling.address() as { port: number }).port}`, host: 'frontend.demo.svc:8080', rps: 1, stats, timeoutMs: 15 }).one();
      expect(Object.fromEntries(stats.failureReasons)).toEqual({});
      expect(stats.totals.get('catalog/v2')).toBe(1);
    } finally {
      await new Promise<void>((r) => stalling.close(() => r()));
    }
  });

  it('counts a refused connection as a failure', async () => {
    const stats = new TrafficStats();
    await new LoadGenerator({ target: '127.0.0.1:1', host: 'x', rps: 1, stats }).one();
    expect(stats.failures).toBe(1);
    expect([...stats.failureReasons.keys()][0]).toContain('ECONNREFUSED');
  });
});

describe('failedCalls', () => {
  // columns: body of a failed reply, the reason kept
  it.each([
    ['{"service":"frontend","calls":{"ratings":{"service":"ratings"},"catalog":{"error":"catalog.demo.svc:8080: HTTP 504 upstream-per-try-timeout"}}}', 'catalog: catalog.demo.svc:8080: HTTP 504 upstream-per-try-timeout'],
    ['{"service":"frontend","calls":{"catalog":{"service":"catalog","calls":{"db":{"error":"ECONNRESET"}}}}}', 'catalog > db: ECONNRESET'],
    ['{"service":"frontend","calls":{}}', undefined],
    ['upstream connect error', undefined],
  ])('%s', (body, reason) => {
    expect(failedCalls(body)).toBe(reason);
  });
});
