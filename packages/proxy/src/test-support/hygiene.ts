import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { httpListener, routeConfig, staticCluster } from './resources.js';
import { startProxy } from './proxy.js';
import type { Proxy } from '../proxy.js';
import type { ListenerLimits } from '../data/listeners.js';

/**
 * Connection hygiene through real sockets (issue 17), for whichever downstream HTTP/1.1 server
 * the importing test file selected: a slowloris head is closed at `request_headers_timeout`, an
 * idle connection at `common_http_protocol_options.idle_timeout`, a slow body at
 * `request_timeout`, a busy kept-alive connection at `max_connection_duration`; the N+1th
 * connection of a listener is refused; the overload levels shed load in steps.
 */

/** An HCM listener with extra HttpConnectionManager fields. */
function listener(hcm: Record<string, unknown>, cluster: string): unknown {
  const l = httpListener('outbound', { route_config: routeConfig('r', [{ match: { prefix: '/' }, route: { cluster } }]) }) as {
    filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
  };
  Object.assign(l.filter_chains[0]!.filters[0]!.typed_config, hcm);
  return l;
}

interface Conn {
  socket: net.Socket;
  text: () => string;
  closed: Promise<number>;
  t0: number;
}
function connect(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let text = '';
    const socket = net.connect(port, '127.0.0.1');
    const closed = new Promise<number>((r) => socket.on('close', () => r(performance.now() - t0)));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, text: () => text, closed, t0 }));
    socket.once('error', reject);
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
const GET = 'GET / HTTP/1.1\r\nHost: svc\r\n\r\n';

/** `checkMs`: how late the server may notice a timeout (node:http checks its connections once a second). */
export function describeHygiene(server: string, checkMs: number): void {
  describe(`connection hygiene (${server} downstream server)`, () => {
    let upstream: http.Server;
    const seen = { bytes: 0 };
    let upPort = 0;
    const proxies: Proxy[] = [];
    const start = async (hcm: Record<string, unknown>, limits?: ListenerLimits) => {
      const p = await startProxy({ listeners: [listener(hcm, 'up')], clusters: [staticCluster('up', [upPort])] }, limits ? { limits } : {});
      proxies.push(p);
      return p;
    };
    beforeAll(async () => {
      upstream = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end('ok'));
      });
      upstream.on('connection', (s: net.Socket) => s.on('data', (d: Buffer) => (seen.bytes += d.length)));
      await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
      upPort = (upstream.address() as AddressInfo).port;
    });
    afterAll(async () => {
      for (const p of proxies) await p.stop(50);
      upstream.closeAllConnections();
      await new Promise((r) => upstream.close(r));
    });

    it('closes a slowloris head (a byte every 500 ms) at request_headers_timeout with 408; nothing goes upstream', async () => {
      const p = await start({ request_headers_timeout: '1.5s' });
      seen.bytes = 0;
      const c = await connect(p.port);
      let gone = false;
      void c.closed.then(() => (gone = true));
      // A head that never ends: each byte restarts no timer.
      const head = 'GET / HTTP/1.1\r\nHost: svc\r\nX-Slow: ' + 'a'.repeat(100);
      for (let i = 0; i < head.length && !gone; i++) {
        c.socket.write(head[i]!);
        await sleep(500);
      }
      const ms = await c.closed;
      expect(ms).toBeGreaterThanOrEqual(1400);
      expect(ms).toBeLessThan(1500 + checkMs + 2000); // headroom for timers late on a loaded machine
      expect(statuses(c.text())).toEqual([408]);
      expect(seen.bytes).toBe(0);
    });

    it('closes a slowloris of one byte every 5 s at the default request_headers_timeout (10 s)', async () => {
      const p = await start({});
      seen.bytes = 0;
      const c = await connect(p.port);
      let gone = false;
      void c.closed.then(() => (gone = true));
      const head = 'GET / HTTP/1.1\r\nHost: svc\r\nX-Slow: aaaaaaaaaa';
      for (let i = 0; i < head.length && !gone; i++) {
        c.socket.write(head[i]!);
        await Promise.race([sleep(5000), c.closed]);
      }
      const ms = await c.closed;
      expect(ms).toBeGreaterThanOrEqual(9900);
      expect(ms).toBeLessThan(10_000 + checkMs + 2500);
      expect(statuses(c.text())).toEqual([408]);
      expect(seen.bytes).toBe(0);
    }, 20_000);

    it('closes connections idle for common_http_protocol_options.idle_timeout: silent ones and kept-alive ones', async () => {
      const p = await start({ common_http_protocol_options: { idle_timeout: '0.6s' } });
      const silent = await connect(p.port);
      const kept = await connect(p.port);
      kept.socket.write(GET);
      await sleep(100);
      expect(statuses(kept.text())).toEqual([200]);
      const [a, b] = await Promise.all([silent.closed, kept.closed]);
      for (const ms of [a, b]) {
        expect(ms).toBeGreaterThanOrEqual(550);
        expect(ms).toBeLessThan(600 * 1.25 + checkMs + 2000);
      }
    });

    it('answers 408 and closes when a body is not received within request_timeout', async () => {
      const p = await start({ request_timeout: '0.5s' });
      const c = await connect(p.port);
      c.socket.write('POST / HTTP/1.1\r\nHost: svc\r\nContent-Length: 10\r\n\r\nab');
      const ms = await c.closed;
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(500 + checkMs + 2000);
      expect(statuses(c.text()).length).toBeLessThanOrEqual(1);
      if (server === 'lean') expect(statuses(c.text())).toEqual([408]);
    });

    it('ends a busy kept-alive connection after max_connection_duration, after a complete response', async () => {
      const p = await start({ common_http_protocol_options: { max_connection_duration: '0.5s' } });
      const c = await connect(p.port);
      let gone = false;
      void c.closed.then(() => (gone = true));
      let sent = 0;
      while (!gone && sent < 30) {
        c.socket.write(GET);
        sent++;
        await sleep(100);
      }
      const ms = await c.closed;
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(2500);
      // Every request written before the close was answered, the last with `connection: close`.
      expect(statuses(c.text()).every((s) => s === 200)).toBe(true);
      expect(c.text()).toMatch(/connection: close/i);
    });

    it('refuses the N+1th connection of a listener at its limit, and takes one again when one closes', async () => {
      const p = await start({}, { connectionsPerListener: 3 });
      const conns = await Promise.all([0, 1, 2].map(() => connect(p.port)));
      for (const c of conns) c.socket.write(GET);
      await sleep(100);
      for (const c of conns) expect(statuses(c.text())).toEqual([200]);
      const extra = await connect(p.port);
      extra.socket.write(GET);
      await extra.closed;
      expect(extra.text()).toBe('');
      // Counted per listener and reason, in /stats and /metrics alike.
      expect(await p.stats.text()).toContain('octo_proxy_downstream_connections_refused_total{listener=outbound,reason=connection_limit}: 1\n');
      expect(await p.registry.metrics()).toMatch(/^octo_proxy_downstream_connections_refused_total\{listener="outbound",reason="connection_limit"\} 1$/m);
      conns[0]!.socket.destroy();
      await conns[0]!.closed;
      await sleep(50);
      const again = await connect(p.port);
      again.socket.write(GET);
      await sleep(100);
      expect(statuses(again.text())).toEqual([200]);
      for (const c of [...conns, again]) c.socket.destroy();
    });

    it('sheds load in steps as overload pressure rises: stop accepting, no keep-alive, 503', async () => {
      let pressure = 0;
      const p = await start({}, { pressure: () => pressure, overloadIntervalMs: 20 });
      const kept = await connect(p.port);
      kept.socket.write(GET);
      await sleep(80);
      expect(statuses(kept.text())).toEqual([200]);
      // Level 1: a new connection is closed at accept; one already open is still served.
      pressure = 0.92;
      await sleep(80);
      const refused = await connect(p.port);
      refused.socket.write(GET);
      await refused.closed;
      expect(refused.text()).toBe('');
      expect(await p.stats.text()).toContain('octo_proxy_downstream_connections_refused_total{listener=outbound,reason=overload}: 1\n');
      expect(await p.registry.metrics()).toMatch(/^octo_proxy_downstream_connections_refused_total\{listener="outbound",reason="overload"\} 1$/m);
      kept.socket.write(GET);
      await sleep(80);
      expect(statuses(kept.text())).toEqual([200, 200]);
      // Level 3: 503 overloaded.
      pressure = 0.99;
      await sleep(80);
      kept.socket.write(GET);
      await sleep(80);
      expect(statuses(kept.text())).toEqual([200, 200, 503]);
      expect(kept.text()).toContain('x-octo-reason: overloaded');
      // Level 2: answered, then closed (keep-alive off).
      pressure = 0.96;
      await sleep(80);
      kept.socket.write(GET);
      await kept.closed;
      expect(statuses(kept.text())).toEqual([200, 200, 503, 200]);
      // Back to normal.
      pressure = 0.1;
      await sleep(80);
      const fine = await connect(p.port);
      fine.socket.write(GET);
      await sleep(80);
      expect(statuses(fine.text())).toEqual([200]);
      fine.socket.destroy();
    });
  });
}
