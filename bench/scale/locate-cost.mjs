#!/usr/bin/env node
// The meta server's CPU per Locate by how the caller connects (issue 20): grpc-js's locatePilot
// (@octo-mesh/clients: a channel per call, but through grpc-js's global subchannel pool, so the calls
// of one process share a connection), grpc-js with a connection of its own per call (local
// subchannel pool), and mock-sidecar's leanLocate (node:http2, a connection per call — as real
// sidecars, each its own process). A real meta server and one pilot (EmbeddedControlPlane), 3,000
// Locates in batches, each variant twice, alternating; the meta server's CPU from /proc and this
// process's own. Run under the bench lock:
//   flock /tmp/octo-bench.lock node_modules/.bin/node bench/scale/locate-cost.mjs [batch=50]
// Builds nothing: run `npx tsc -b packages/mock-sidecar` first.
import { readFileSync } from 'node:fs';
import { EmbeddedControlPlane, leanLocate } from '@octo-mesh/mock-sidecar';
import { locatePilot } from '@octo-mesh/clients';
import * as grpc from '@grpc/grpc-js';
import { LocateRequest } from '@octo-mesh/proto';
const root = new URL('../..', import.meta.url).pathname;
const cp = new EmbeddedControlPlane({ root, pilots: 1 });
await cp.start();
const meta = cp.components().find((c) => c.name === 'meta-server').pid;
const ticks = (pid) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return Number(f[11]) + Number(f[12]); };
const N = 3000;
const B = Number(process.argv[2] ?? 50);
const args = (i) => ({ nodeId: `n${i}.demo`, namespace: 'demo', workload: `w${i % 100}`, timeoutMs: 30000 });
const grpcjs = (i) => locatePilot({ ...args(i), metaAddress: `ipv4:${cp.metaAddress}` });
// grpc-js with a channel of its own per call that does not share its connection (local subchannel pool).
const own = (i) => new Promise((res, rej) => {
  const c = new grpc.Client(`ipv4:${cp.metaAddress}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  c.makeUnaryRequest('/octo.mesh.v1.MetaServer/Locate', (r) => Buffer.from(LocateRequest.encode(r).finish()), (b) => b, { ...args(i), unreachablePilotId: '' }, { deadline: Date.now() + 10000 }, (e, r) => {
    c.close();
    if (e) rej(e);
    else res(r);
  });
});
const lean = (i) => leanLocate({ ...args(i), metaAddress: cp.metaAddress });
try {
  for (const [name, f] of [['grpc-js locatePilot (shared subchannel)', grpcjs], ['grpc-js, connection per call', own], ['lean', lean], ['grpc-js locatePilot (shared subchannel)', grpcjs], ['grpc-js, connection per call', own], ['lean', lean]]) {
    const m0 = ticks(meta), c0 = process.cpuUsage(), t0 = performance.now();
    for (let i = 0; i < N; i += B) await Promise.all(Array.from({ length: B }, (_, k) => f(i + k)));
    await new Promise((r) => setTimeout(r, 300));
    const c1 = process.cpuUsage(c0);
    console.log(`${name}: meta server ${((ticks(meta) - m0) * 10 / N).toFixed(3)} ms/locate, client ${((c1.user + c1.system) / 1000 / N).toFixed(3)} ms/locate, wall ${(performance.now() - t0).toFixed(0)} ms (batches of ${B})`);
  }
} finally { await cp.stop(); }
