import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleProxy, makePackage } from '@octo-mesh/proxy-package/build.js';
import { PackageRepository } from '@octo-mesh/proxy-package';
import { createLogger } from '@octo-mesh/runtime';
import { buildAgent, get1, proxySection, startAgent, upstreams, type RunningAgent, type Upstreams } from './test-support/harness.js';
import { LoadGenerator } from './test-support/load.js';
import type { AgentStatus } from './status.js';

// The agent as a real process, real proxy children from real packages served by a real
// repository, real clients: hot swaps under load, and a proxy killed with SIGKILL.
const dir = mkdtempSync(join(tmpdir(), 'octo-lego-swap-'));
const DRAIN_MS = 1500;
let up: Upstreams;
let repo: PackageRepository;
let agent: RunningAgent;
const pkgs: Record<string, { sha256: string; url: string }> = {};
const targetFile = join(dir, 'target.json');

function setTarget(version: string): void {
  const p = pkgs[version]!;
  writeFileSync(targetFile, JSON.stringify({ version, packageUrl: p.url, sha256: p.sha256 }));
}

/** A WebSocket through the proxy that pings every 100 ms; records echoes and when it closed. */
function webSocket(port: number): Promise<{ echoes: () => number; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let echoes = 0;
    let upgraded = false;
    let t: NodeJS.Timeout | undefined;
    const closed = new Promise<number>((r) =>
      s.on('close', () => {
        clearInterval(t);
        r(Date.now());
      }),
    );
    s.on('error', () => undefined);
    s.write('GET /ws HTTP/1.1\r\nhost: svc\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n');
    s.on('data', (c: Buffer) => {
      if (!upgraded) {
        if (!c.toString().startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${c.toString()}`));
        upgraded = true;
        t = setInterval(() => s.write('ping\n'), 100);
        return resolve({ echoes: () => echoes, closed });
      }
      echoes += c.toString().split('ping').length - 1;
    });
  });
}

/** A long HTTP/2 response stream (gRPC-streaming-like) through the proxy. */
function longStream(port: number): Promise<{ ticks: () => number; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    const stream = session.request({ ':path': '/stream', ':authority': 'svc' });
    let ticks = 0;
    const closed = new Promise<number>((r) =>
      stream.on('close', () => {
        session.destroy();
        r(Date.now());
      }),
    );
    stream.on('error', () => undefined);
    stream.on('response', (h) => (h[':status'] === 200 ? resolve({ ticks: () => ticks, closed }) : reject(new Error(`status ${h[':status']}`))));
    stream.on('data', () => ticks++);
  });
}

/** A connection that sends nothing until asked to: then one request, resolved with the whole response. */
function connectSilent(port: number): Promise<{ request: (path: string) => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () =>
      resolve({
        request: (path) =>
          new Promise((done, fail) => {
            let got = '';
            s.setEncoding('utf8');
            s.on('data', (c: string) => (got += c));
            s.on('end', () => done(got));
            s.on('close', () => done(got));
            s.on('error', fail);
            s.setTimeout(20_000, () => fail(new Error(`no response to ${path} on the silent connection within 20 s (got ${JSON.stringify(got)})`)));
            s.write(`GET ${path} HTTP/1.1\r\nhost: svc\r\nconnection: close\r\n\r\n`);
          }),
      }),
    );
    s.once('error', reject);
  });
}

/** One request on a kept-alive agent's single connection: which local port it left from, and whether it was reused. */
function onKeptAlive(a: http.Agent, port: number, path: string): Promise<{ status: number; body: string; localPort: number; reused: boolean; close: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: a, headers: { host: 'svc' } }, (res) => {
      const localPort = res.socket.localPort ?? 0;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, localPort, reused: req.reusedSocket, close: res.headers.connection === 'close' }),
      );
    });
    req.on('error', reject);
  });
}

describe('LEGO agent hot swap', () => {
  beforeAll(async () => {
    buildAgent();
    up = await upstreams();
    const [b1, b2] = await Promise.all([bundleProxy('1.0.0'), bundleProxy('2.0.0')]);
    mkdirSync(join(dir, 'boot'));
    writeFileSync(join(dir, 'boot', 'proxy.mjs'), b1);
    repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, logger: createLogger('repo', 'error') });
    await repo.start();
    for (const [version, bundle] of [
      ['1.0.0', b1],
      ['2.0.0', b2],
    ] as const) {
      const p = await makePackage({ version, bundle });
      const put = await fetch(`${repo.url}/packages/${p.sha256}`, { method: 'PUT', body: p.bytes });
      expect(put.status).toBe(201);
      pkgs[version] = { sha256: p.sha256, url: `${repo.url}/packages/${p.sha256}` };
    }
    writeFileSync(targetFile, '{}');
    agent = await startAgent(dir, 'swap', {
      proxyEntry: join(dir, 'boot', 'proxy.mjs'),
      targetFile,
      minReadySeconds: 0.3,
      drainTimeoutMs: DRAIN_MS,
      crashBackoffMs: 400,
      proxy: proxySection(up.h1Port, up.h2Port),
    });
    await agent.waitStatus('ready', (s) => s.ready);
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await repo?.stop();
    await up?.close();
  });

  it('fronts the serving proxy admin and reports its status', async () => {
    const s = await agent.status();
    expect(s).toMatchObject({ runningVersion: '1.0.0', phase: 'Idle', ready: true, target: null, lastError: null, badVersions: [] });
    expect((await agent.get('/ready')).body).toBe('LIVE\n');
    expect((await agent.get('/readyz')).status).toBe(200);
    expect((await agent.get('/healthz')).status).toBe(200);
    expect(JSON.parse((await agent.get('/config_dump')).body)).toHaveProperty('sync', { synced: true, types: {}, nacked: null });
    expect((await get1(agent.outboundPort, '/hello')).body).toBe('ok /hello');
  });

  it('upgrades 5 times in a row under load: 0 failed requests; long-lived streams end at the drain timeout', async () => {
    const load = new LoadGenerator({ port: agent.outboundPort, rps: 300, h1Connections: 8, h2Connections: 2 });
    load.start();
    const keptAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const keptAliveLong = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const keptAlivePorts = new Set<number>();
    const swaps: { to: string; ms: number; longLived: { kind: string; openMs: number; afterDrainMs: number; data: number }[] }[] = [];
    try {
      await new Promise((r) => setTimeout(r, 500));
      // A connection that sends nothing until after the first swap, and one kept-alive connection
      // left idle through three swaps: each drain hands it over again, still unread (a client's
      // pool keeps such sockets for seconds, and one closed under it is a failed request).
      const silent = await connectSilent(agent.outboundPort);
      const longIdle = await onKeptAlive(keptAliveLong, agent.outboundPort, '/long-idle-before');
      const versions = ['2.0.0', '1.0.0', '2.0.0', '1.0.0', '2.0.0'];
      for (const [i, to] of versions.entries()) {
        if (i === 1) expect(await silent.request('/silent')).toMatch(/^HTTP\/1\.1 200 [^]*ok \/silent$/);
        if (i === 3) {
          const r = await onKeptAlive(keptAliveLong, agent.outboundPort, '/long-idle-after');
          expect(r).toMatchObject({ status: 200, body: 'ok /long-idle-after', reused: true, localPort: longIdle.localPort });
        }
        const idle = await onKeptAlive(keptAlive, agent.outboundPort, `/before-${to}`);
        expect(idle).toMatchObject({ status: 200, close: false });
        keptAlivePorts.add(idle.localPort);
        const ws = await webSocket(agent.outboundPort);
        const ls = await longStream(agent.outboundPort);
        const before = await agent.proxy();
        const t0 = Date.now();
        setTarget(to);
        // Watch the phases: when draining starts, the old proxy's long-lived streams have DRAIN_MS left.
        let drainAt = 0;
        await agent.waitStatus(`running ${to}`, (s) => {
          if (s.phase === 'Draining' && !drainAt) drainAt = Date.now();
          return s.runningVersion === to && s.phase === 'Idle';
        });
        const ms = Date.now() - t0;
        const after = await agent.proxy();
        expect(after.pid).not.toBe(before.pid);
        // The connection that sat idle through the swap was handed to the new proxy, not closed:
        // its next request goes out on the same socket and is answered by the new version.
        const moved = await onKeptAlive(keptAlive, agent.outboundPort, `/after-${to}`);
        expect(moved).toMatchObject({ status: 200, body: `ok /after-${to}`, reused: true, close: false, localPort: idle.localPort });
        const [wsClosed, lsClosed] = await Promise.all([ws.closed, ls.closed]);
        swaps.push({
          to,
          ms,
          longLived: [
            { kind: 'websocket', openMs: wsClosed - t0, afterDrainMs: wsClosed - drainAt, data: ws.echoes() },
            { kind: 'h2 stream', openMs: lsClosed - t0, afterDrainMs: lsClosed - drainAt, data: ls.ticks() },
          ],
        });
        // Long-lived streams on the old proxy kept flowing through the drain and were closed at its timeout.
        for (const l of swaps.at(-1)!.longLived) {
          expect(drainAt).toBeGreaterThan(0);
          expect(l.afterDrainMs).toBeGreaterThan(DRAIN_MS - 300);
          expect(l.afterDrainMs).toBeLessThan(DRAIN_MS + 3000);
          expect(l.data).toBeGreaterThan(5);
        }
      }
    } finally {
      keptAlive.destroy();
      keptAliveLong.destroy();
      await load.stop();
    }
    // One kept-alive connection lived through all five swaps.
    expect([...keptAlivePorts]).toHaveLength(1);
    const s = load.stats;
    process.stdout.write(
      `hot swap x5 under load: sent ${s.sent}, ok ${s.ok}, failed ${s.failed}, h2 refused-and-retried ${s.retriedRefused}; swaps ${JSON.stringify(swaps.map((w) => ({ to: w.to, ms: w.ms, longLived: w.longLived.map((l) => `${l.kind} closed ${l.afterDrainMs} ms after drain began`) })))}\n`,
    );
    if (s.failed) process.stdout.write(`failed requests; the agent's and proxies' warnings:\n${agent.stderr().slice(-6000)}\n`);
    expect(s.errors).toEqual([]);
    expect(s.failed).toBe(0);
    expect(s.ok).toBe(s.sent);
    expect(s.sent).toBeGreaterThan(1000);
    const st = await agent.status();
    expect(st).toMatchObject({ runningVersion: '2.0.0', phase: 'Idle', ready: true, lastError: null, badVersions: [] });
    const metrics = (await agent.get('/metrics')).body;
    expect(metrics).toMatch(/octo_lego_swaps_total\{result="promoted"\} 5/);
    const passed = Number(/octo_lego_connection_handovers_total\{result="passed"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    process.stdout.write(`kept-alive connections passed to the new proxy over 5 swaps: ${passed}\n`);
    expect(passed).toBeGreaterThanOrEqual(5);
    expect(metrics).not.toMatch(/octo_lego_connection_handovers_total\{result="failed"\}/);
  }, 180_000);

  it('restarts a proxy killed with SIGKILL at once on the same sockets, and backs off a second crash', async () => {
    const load = new LoadGenerator({ port: agent.outboundPort, rps: 300, h1Connections: 8, h2Connections: 2 });
    load.start();
    const restarts: number[] = [];
    try {
      await new Promise((r) => setTimeout(r, 500));
      for (let i = 0; i < 2; i++) {
        const before = await agent.proxy();
        const t0 = performance.now();
        process.kill(before.pid!, 'SIGKILL');
        await agent.waitStatus('restarted and ready', (s) => s.ready && s.lastError?.reason === 'Crashed' && s.lastError.message.includes(`pid ${before.pid}`), 20_000);
        const after = await agent.proxy();
        expect(after.pid).not.toBe(before.pid);
        restarts.push(performance.now() - t0);
        // Nothing else serves meanwhile, so the restarted proxy does not warm up first.
        expect((await agent.get('/stats/prometheus')).body).not.toMatch(/^octo_proxy_warm_up_requests\{/m);
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      await load.stop();
    }
    const s = load.stats;
    process.stdout.write(`kill -9 x2 under load: restart to ready ${restarts.map((x) => `${x.toFixed(0)} ms`).join(', ')} (second one backed off); sent ${s.sent}, failed ${s.failed}: ${JSON.stringify(s.errors.slice(0, 5))}\n`);
    // Only what was in flight on the killed proxy (at most one per connection, a few h2 streams) may fail.
    expect(s.failed).toBeLessThanOrEqual(2 * 20);
    // The first restart is immediate (< 1 s on an idle machine; headroom for a busy one).
    expect(restarts[0]).toBeLessThan(2500);
    // The second crash in a row waits for the backoff (400 ms ± 50 % jitter) first.
    expect(restarts[1]!).toBeGreaterThan(200);
    expect((await agent.get('/metrics')).body).toMatch(/octo_lego_proxy_crashes_total 2/);
    expect((await get1(agent.outboundPort, '/after-crash')).body).toBe('ok /after-crash');
  }, 120_000);

  it('warms the new proxy up (HTTP/1.1 and h2c, privately) before connections move to it, apart from its traffic stats', async () => {
    const metric = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const served = (text: string) => [...text.matchAll(/^octo_proxy_requests_total\{[^}]*\} (\S+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
    const before = await agent.status();
    const to = before.runningVersion === '1.0.0' ? '2.0.0' : '1.0.0';
    // A WebSocket holds the old proxy in Draining long enough to be seen (until DRAIN_MS).
    const ws = await webSocket(agent.outboundPort);
    const t0 = Date.now();
    setTarget(to);
    let starting: AgentStatus | undefined;
    let draining: AgentStatus | undefined;
    await agent.waitStatus(`running ${to}`, (s) => {
      if (s.phase === 'Starting') starting ??= s;
      if (s.phase === 'Draining') draining ??= s;
      return s.runningVersion === to && s.phase === 'Idle';
    });
    await ws.closed;
    expect(starting).toBeDefined();
    expect(draining).toBeDefined();
    const m = (await agent.get('/stats/prometheus')).body;
    expect(m).toContain(`octo_build_info{component="proxy",version="${to}"} 1`);
    // Both protocols' paths ran, within the default bounds (400 round trips; the rounds in flight finish).
    const h1 = metric(m, 'octo_proxy_warm_up_requests\\{protocol="http1"\\}');
    const h2 = metric(m, 'octo_proxy_warm_up_requests\\{protocol="http2"\\}');
    expect(h1).toBeGreaterThan(0);
    expect(h2).toBeGreaterThan(0);
    expect(h1 + h2).toBeLessThanOrEqual(400 + 2 * 4 + 2 * 3);
    // It ended after the target was set and before the agent sent the old proxy its drain (the
    // status's lastChange of the first Draining snapshot seen is when that phase began, or later).
    const endMs = metric(m, 'octo_proxy_warm_up_end_timestamp_seconds') * 1000;
    expect(endMs).toBeGreaterThanOrEqual(t0);
    expect(endMs).toBeLessThanOrEqual(Date.parse(draining!.lastChange));
    expect(Date.parse(starting!.lastChange)).toBeLessThanOrEqual(Date.parse(draining!.lastChange));
    // None of it counts as traffic: the new proxy has served nothing yet; one request counts once.
    expect(served(m)).toBe(0);
    expect((await get1(agent.outboundPort, '/after-warm-up')).body).toBe('ok /after-warm-up');
    expect(served((await agent.get('/stats/prometheus')).body)).toBe(1);
  }, 60_000);
});
