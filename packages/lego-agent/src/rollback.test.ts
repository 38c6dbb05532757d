import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Cluster_LbPolicy, TYPE_URL, packAny } from '@octo-mesh/proto';
import { bundleProxy, makePackage } from '@octo-mesh/proxy-package/build.js';
import { PackageRepository } from '@octo-mesh/proxy-package';
import { createLogger } from '@octo-mesh/runtime';
import type { AgentReason } from './status.js';
import { startAds } from './test-support/ads.js';
import { buildAgent, get1, proxySection, startAgent, upstreams, type RunningAgent, type Upstreams } from './test-support/harness.js';

// Versions that start but must not take over: never ready, crashing within minReadySeconds,
// NACKing the config its pilot sends. Each is killed, the old proxy keeps serving (same pid,
// never stopped accepting), the status says why, and the version is not started again.
const dir = mkdtempSync(join(tmpdir(), 'octo-lego-rollback-'));
let up: Upstreams;
let repo: PackageRepository;
let agent: RunningAgent;
let xds: { port: number; close: () => void };
const targets: Record<string, { packageUrl: string; sha256: string }> = {};
const targetFile = join(dir, 'target.json');

describe('LEGO agent local rollback', () => {
  beforeAll(async () => {
    buildAgent();
    up = await upstreams();
    // A pilot whose clusters the proxy must NACK (an lb_policy it does not implement).
    xds = await startAds((t) =>
      t === TYPE_URL.cluster ? [packAny(TYPE_URL.cluster, Cluster.fromPartial({ name: 'maglev', lbPolicy: Cluster_LbPolicy.MAGLEV }))] : t === TYPE_URL.listener ? [] : undefined,
    );
    const bundle = await bundleProxy('1.0.0');
    mkdirSync(join(dir, 'boot'));
    writeFileSync(join(dir, 'boot', 'proxy.mjs'), bundle);
    repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, logger: createLogger('repo', 'error') });
    await repo.start();
    // Each bad version is the real proxy behind a small entry that sets it up to fail.
    const wrappers: Record<string, string> = {
      '3.0.0': `process.env.OCTO_PROXY_XDS_ADDRESS = '127.0.0.1:1';\nawait import('./proxy.mjs');\n`,
      '3.1.0': `setTimeout(() => process.exit(70), 2000);\nawait import('./proxy.mjs');\n`,
      '3.2.0': `process.env.OCTO_PROXY_XDS_ADDRESS = '127.0.0.1:${xds.port}';\nawait import('./proxy.mjs');\n`,
      // Wedged: its event loop stops for 6 s a second after it started, so /ready stops answering.
      // Wedges its event loop 1 s after it started serving (counted from its started message,
      // not from process start, so a slow start on a busy machine does not make it NotReady).
      '3.3.0': `const send = process.send.bind(process);\nprocess.send = (m, ...rest) => { if (m && m.type === 'octo.proxy.started') setTimeout(() => { const end = Date.now() + 6000; while (Date.now() < end); }, 1000); return send(m, ...rest); };\nawait import('./proxy.mjs');\n`,
    };
    for (const [version, wrapper] of Object.entries(wrappers)) {
      const p = await makePackage({ version, bundle, entry: 'entry.mjs', files: [{ path: 'entry.mjs', data: Buffer.from(wrapper) }] });
      await fetch(`${repo.url}/packages/${p.sha256}`, { method: 'PUT', body: p.bytes });
      targets[version] = { packageUrl: `${repo.url}/packages/${p.sha256}`, sha256: p.sha256 };
    }
    writeFileSync(targetFile, '{}');
    agent = await startAgent(dir, 'rollback', {
      proxyEntry: join(dir, 'boot', 'proxy.mjs'),
      targetFile,
      readyTimeoutMs: 4000,
      minReadySeconds: 4,
      proxy: proxySection(up.h1Port, up.h2Port),
    });
    await agent.waitStatus('ready', (s) => s.ready);
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await repo?.stop();
    await up?.close();
    xds?.close();
  });

  // columns: case, version, expected reason, a fragment of the message
  it.each<[string, string, AgentReason, string]>([
    ['a proxy that never becomes ready', '3.0.0', 'NotReady', 'not ready and synced within 4000 ms'],
    ['a proxy that crashes after 2 s, within minReadySeconds', '3.1.0', 'Crashed', 'code 70'],
    ['a proxy that NACKs its config', '3.2.0', 'Nacked', 'MAGLEV'],
    ['a proxy that stops answering its health probe', '3.3.0', 'HealthProbeFailed', 'health probes in a row'],
  ])('%s (%s) is rolled back, once', async (_name, version, reason, message) => {
    const before = await agent.proxy();
    const t0 = Date.now();
    writeFileSync(targetFile, JSON.stringify({ version, ...targets[version] }));
    const s = await agent.waitStatus(`rollback of ${version}`, (st) => st.lastError?.version === version && st.phase === 'Failed');
    expect(s.lastError).toMatchObject({ reason, version });
    expect(s.lastError!.message).toContain(message);
    expect(s).toMatchObject({ runningVersion: '1.0.0', ready: true, badVersions: expect.arrayContaining([{ version, sha256: targets[version]!.sha256, reason }]) });
    expect((await agent.proxy()).pid).toBe(before.pid);
    expect((await get1(agent.outboundPort, `/kept-${version}`)).body).toBe(`ok /kept-${version}`);
    process.stdout.write(`rollback ${version}: ${reason} after ${Date.now() - t0} ms\n`);
    // No retry loop: the same target again (the file rewritten) starts nothing.
    writeFileSync(targetFile, JSON.stringify({ ...targets[version], version }));
    await new Promise((r) => setTimeout(r, 1000));
    expect((await agent.get('/metrics')).body).toMatch(new RegExp(`octo_lego_swaps_total\\{result="${reason}"\\} 1\\n`));
    expect((await agent.status()).phase).toBe('Failed');
  }, 60_000);
});
