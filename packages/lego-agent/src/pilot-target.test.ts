import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TYPE_URL, UpgradeTarget, packAny } from '@octo-mesh/proto';
import { bundleProxy, makePackage } from '@octo-mesh/proxy-package/build.js';
import { PackageRepository } from '@octo-mesh/proxy-package';
import { createLogger } from '@octo-mesh/runtime';
import { startAds } from './test-support/ads.js';
import { buildAgent, startAgent, type RunningAgent } from './test-support/harness.js';

// The mesh path: the target comes from the control plane as an OCTO UpgradeTarget on the proxy's
// ADS stream, the proxy forwards it over IPC, and the agent upgrades to it.
const dir = mkdtempSync(join(tmpdir(), 'octo-lego-pilot-'));
let repo: PackageRepository;
let agent: RunningAgent;
let ads: { port: number; close: () => void };
let sha256 = '';

describe('LEGO agent following its pilot', () => {
  beforeAll(async () => {
    buildAgent();
    const [b1, b2] = await Promise.all([bundleProxy('1.0.0'), bundleProxy('2.0.0')]);
    mkdirSync(join(dir, 'boot'));
    writeFileSync(join(dir, 'boot', 'proxy.mjs'), b1);
    repo = new PackageRepository({ dir: join(dir, 'repo'), port: 0, logger: createLogger('repo', 'error') });
    await repo.start();
    const p = await makePackage({ version: '2.0.0', bundle: b2 });
    await fetch(`${repo.url}/packages/${p.sha256}`, { method: 'PUT', body: p.bytes });
    sha256 = p.sha256;
    const target = UpgradeTarget.fromPartial({ version: '2.0.0', packageUrl: `${repo.url}/packages/${p.sha256}`, sha256: p.sha256, rollout: 'default/proxy-v2', generation: 3 });
    ads = await startAds((t) => (t === TYPE_URL.cluster || t === TYPE_URL.listener ? [] : t === TYPE_URL.upgradeTarget ? [packAny(TYPE_URL.upgradeTarget, target)] : undefined));
    agent = await startAgent(dir, 'pilot', {
      proxyEntry: join(dir, 'boot', 'proxy.mjs'),
      minReadySeconds: 0.2,
      proxy: { nodeId: 'sidecar~pilot-test', xdsAddress: `127.0.0.1:${ads.port}`, accessLog: 'off', v8Helpers: 'normal', logLevel: 'warn' },
    });
  }, 120_000);

  afterAll(async () => {
    await agent?.stop();
    await repo?.stop();
    ads?.close();
  });

  it('upgrades to the UpgradeTarget its proxy received over ADS and reports it', async () => {
    const s = await agent.waitStatus('running 2.0.0', (st) => st.runningVersion === '2.0.0' && st.phase === 'Idle' && st.ready);
    expect(s.target).toEqual({ version: '2.0.0', sha256, rollout: 'default/proxy-v2', generation: 3 });
    expect(s.lastError).toBeNull();
    // The new proxy got the same target from the pilot: it is running it, so nothing more happens.
    const dump = JSON.parse((await agent.get('/config_dump')).body) as { node: { metadata: { proxy_version: string } }; sync: { synced: boolean } };
    expect(dump.node.metadata.proxy_version).toBe('2.0.0');
    expect(dump.sync.synced).toBe(true);
  }, 60_000);
});
