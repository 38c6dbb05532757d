// HTTP/2 by ALPN (auto_config, what Pilot configures between sidecars) against HTTP/1.1 between
// two octo-proxies over mTLS (not a test; issue 21). Proxy A (outbound, a TLS cluster) → proxy B
// (STRICT inbound, DownstreamTlsContext offering h2 and http/1.1) → a plaintext app, all in this
// one process with the load generator, so the CPU figure is the whole chain's per request; the
// two modes alternate, ROUNDS times, each on fresh proxies.
//
//   npx tsc -b packages/proxy && node_modules/.bin/node bench/proxy-tls/alpn.mjs   # ROUNDS=3 N=4000 CONCURRENCY=50
//
// Per round and mode: requests/s, p50/p99 ms, process CPU ms per request, TLS connections B
// accepted. HTTP/1.1 opens one connection per concurrent request (each a handshake); HTTP/2 one.
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('../../packages/', import.meta.url).pathname;
const support = (f) => import(`${root}proxy/dist/test-support/${f}`);
const { Registry } = await import(`${root}runtime/dist/index.js`);
const { httpListener, routeConfig, staticCluster } = await support('resources.js');
const { startProxy } = await support('proxy.js');
const { TestPki, certificateSds, rootSds, sdsTlsContext, upstreamTransport, writeAtomic, inboundListener } = await support('pki.js');
const { httpUpstream } = await support('upstreams.js');

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const N = Number(process.env.N ?? 4000);
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 50);
const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

const pki = new TestPki();
const ca = pki.root('bench-root');
const sdsDir = (id) => {
  const d = mkdtempSync(join(tmpdir(), 'octo-alpn-'));
  writeAtomic(join(d, 'default.json'), certificateSds(pki.leaf(ca, `spiffe://cluster.local/ns/bench/sa/${id}`)));
  writeAtomic(join(d, 'ROOTCA.json'), rootSds([ca]));
  return d;
};
const dirA = sdsDir('a');
const dirB = sdsDir('b');

async function round(mode) {
  const app = await httpUpstream('app');
  const plain = httpListener('inbound', { route_config: routeConfig('in', [{ match: { prefix: '/' }, route: { cluster: 'app' } }]) });
  const registryB = new Registry();
  const b = await startProxy(
    { listeners: [inboundListener('inbound', plain, sdsTlsContext(dirB), 'STRICT')], clusters: [staticCluster('app', [app.port])] },
    { sockets: [{ name: 'inbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }], registry: registryB },
  );
  const auto = mode === 'h2' ? { typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, auto_config: { http_protocol_options: {}, http2_protocol_options: {} } } } } : {};
  const a = await startProxy(
    {
      listeners: [httpListener('outbound', { route_config: routeConfig('out', [{ match: { prefix: '/' }, route: { cluster: 'b' } }]) })],
      clusters: [staticCluster('b', [b.addresses.get('inbound').port], { ...upstreamTransport(sdsTlsContext(dirA, ['h2', 'http/1.1'], { prefix: 'spiffe://cluster.local/' })), ...auto })],
    },
    { registry: new Registry() },
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const one = () =>
    new Promise((resolve) => {
      const t = process.hrtime.bigint();
      const r = http.request({ port: a.port, host: '127.0.0.1', path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? Number(process.hrtime.bigint() - t) / 1e6 : -1));
      });
      r.on('error', () => resolve(-1));
      r.end();
    });
  for (let i = 0; i < 200; i++) await one(); // warm: certificates read, first connection made
  const lat = [];
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => { while (next++ < N) lat.push(await one()); }));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const handshakes = (await registryB.getMetricsAsJSON()).find((m) => m.name === 'octo_proxy_tls_handshakes_total')?.values.find((v) => v.labels.side === 'downstream' && v.labels.result === 'success')?.value ?? 0;
  await a.stop(100);
  await b.stop(100);
  await app.close();
  agent.destroy();
  const ok = lat.filter((x) => x >= 0).sort((x, y) => x - y);
  const q = (p) => ok[Math.floor(p * (ok.length - 1))].toFixed(1);
  return { mode, rps: Math.round(lat.length / seconds), p50: q(0.5), p99: q(0.99), cpuMsPerRequest: ((cpu.user + cpu.system) / 1000 / lat.length).toFixed(3), failed: lat.length - ok.length, tlsConnections: handshakes };
}

const rows = [];
for (let r = 0; r < ROUNDS; r++) for (const mode of r % 2 ? ['h2', 'http/1.1'] : ['http/1.1', 'h2']) rows.push({ round: r + 1, ...(await round(mode)) });
console.table(rows);
for (const mode of ['http/1.1', 'h2']) {
  const cpu = rows.filter((x) => x.mode === mode).map((x) => Number(x.cpuMsPerRequest)).sort((x, y) => x - y);
  console.log(`${mode}: median CPU ms per request ${cpu[Math.floor(cpu.length / 2)].toFixed(3)}`);
}
process.exit(0);
