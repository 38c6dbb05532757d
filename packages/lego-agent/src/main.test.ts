import { beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRoot } from '@octo-mesh/identity';
import { bundleProxy } from '@octo-mesh/proxy-package/build.js';
import { AGENT_MAIN, alive, buildAgent, get1, proxySection, startAgent, upstreams } from './test-support/harness.js';

// The executable: a bad setting stops it naming the field; SIGTERM drains the proxy, then exits.
const dir = mkdtempSync(join(tmpdir(), 'octo-lego-main-'));

function runBad(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [AGENT_MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let stderr = '';
    c.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code, stderr }));
  });
}

describe('octo-lego-agent executable', () => {
  beforeAll(async () => {
    buildAgent();
    mkdirSync(join(dir, 'boot'));
    writeFileSync(join(dir, 'boot', 'proxy.mjs'), await bundleProxy('1.0.0'));
    writeFileSync(join(dir, 'ca.pem'), createRoot({ trustDomain: 'cluster.local', now: new Date() }).certPem);
    writeFileSync(join(dir, 'token'), 'a-token\n');
  }, 120_000);

  it.each([
    [['--admin-port', '99999'], {}, 'adminPort', 'flag --admin-port'],
    [[], { OCTO_AGENT_MIN_READY_SECONDS: 'soon' }, 'minReadySeconds', 'env OCTO_AGENT_MIN_READY_SECONDS'],
    [['--no-such-setting', 'x'], {}, 'noSuchSetting', ''],
    [['--trusted-keys', '/nonexistent.pem', '--state-dir', dir], {}, 'trustedKeys', ''],
    // A Service named octo-agent-admin collides with a field (the injector passes ports as flags).
    [[], { OCTO_AGENT_ADMIN_PORT: 'tcp://10.0.0.9:80' }, 'adminPort', 'service link of a Service named "octo-agent-admin"'],
    // The mesh CA's settings: all or none, an https URL, files that are there.
    [['--ca-url', 'http://127.0.0.1:15016', '--ca-trust-bundle-file', join(dir, 'ca.pem'), '--ca-token-file', join(dir, 'token')], {}, 'caUrl: must be an https:// URL', 'flag --ca-url'],
    [['--ca-url', 'https://127.0.0.1:15016', '--ca-trust-bundle-file', join(dir, 'ca.pem')], {}, 'caTokenFile: required with caUrl', ''],
    [['--ca-token-file', join(dir, 'token')], {}, 'caUrl: required with caTokenFile', ''],
    [['--ca-url', 'https://127.0.0.1:15016', '--ca-trust-bundle-file', join(dir, 'nonexistent.pem'), '--ca-token-file', join(dir, 'token'), '--state-dir', dir], {}, 'caTrustBundleFile: cannot read', 'nonexistent.pem'],
    [['--ca-url', 'https://127.0.0.1:15016', '--ca-trust-bundle-file', join(dir, 'token'), '--ca-token-file', join(dir, 'token'), '--state-dir', dir], {}, 'caTrustBundleFile', 'no PEM certificate'],
    [['--ca-url', 'https://127.0.0.1:15016', '--ca-trust-bundle-file', join(dir, 'ca.pem'), '--ca-token-file', join(dir, 'no-token'), '--state-dir', dir], {}, 'caTokenFile: cannot read', 'no-token'],
    // Inline roots (as the injector passes them in the env): parsed at start like the file.
    [['--ca-url', 'https://127.0.0.1:15016', '--ca-token-file', join(dir, 'token'), '--state-dir', dir], { OCTO_AGENT_CA_TRUST_BUNDLE: 'not a PEM' }, 'caTrustBundle:', 'no PEM certificate'],
  ])('refuses %j %j naming the field (exit 2)', async (args, env, field, source) => {
    const r = await runBad(args as string[], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(field);
    expect(r.stderr).toContain(source);
  });

  // Kubernetes service links of Services in the app's namespace named like ours: the agent and
  // its proxy children ignore what names none of their fields, and the child's ports the agent
  // owns are flags, which win over OCTO_PROXY_*_PORT links.
  it('starts and serves with the service-link env of Services named octo-agent, octo-proxy, octo-proxy-admin, octo-proxy-inbound', async () => {
    const up = await upstreams();
    const links: Record<string, string> = {};
    for (const [svc, ip] of [['OCTO_AGENT', '10.0.0.1'], ['OCTO_PROXY', '10.0.0.2'], ['OCTO_PROXY_ADMIN', '10.0.0.3'], ['OCTO_PROXY_INBOUND', '10.0.0.4'], ['OCTO_PROXY_OUTBOUND', '10.0.0.5']] as const) {
      Object.assign(links, {
        [`${svc}_SERVICE_HOST`]: ip,
        [`${svc}_SERVICE_PORT`]: '80',
        [`${svc}_SERVICE_PORT_HTTP`]: '80',
        [`${svc}_PORT`]: `tcp://${ip}:80`,
        [`${svc}_PORT_80_TCP`]: `tcp://${ip}:80`,
        [`${svc}_PORT_80_TCP_PROTO`]: 'tcp',
        [`${svc}_PORT_80_TCP_PORT`]: '80',
        [`${svc}_PORT_80_TCP_ADDR`]: ip,
      });
    }
    const agent = await startAgent(dir, 'links', { proxyEntry: join(dir, 'boot', 'proxy.mjs'), proxy: proxySection(up.h1Port, up.h2Port) }, links);
    try {
      await agent.waitStatus('ready', (s) => s.ready);
      expect((await get1(agent.outboundPort, '/hello')).body).toBe('ok /hello');
      expect((await agent.proxy()).adminPort).not.toBe(80);
    } finally {
      await agent.stop();
      await up.close();
    }
  }, 60_000);

  it('on SIGTERM drains the proxy (in-flight requests finish), then exits 0 with no child left', async () => {
    const up = await upstreams();
    const agent = await startAgent(dir, 'term', { proxyEntry: join(dir, 'boot', 'proxy.mjs'), drainTimeoutMs: 3000, proxy: proxySection(up.h1Port, up.h2Port) });
    try {
      await agent.waitStatus('ready', (s) => s.ready);
      const { pid } = await agent.proxy();
      const slow = get1(agent.outboundPort, '/slow');
      await new Promise((r) => setTimeout(r, 150));
      agent.child.kill('SIGTERM');
      expect((await slow).body).toBe('ok /slow');
      expect(await agent.exited).toBe(0);
      expect(alive(pid!)).toBe(false);
    } finally {
      await agent.stop();
      await up.close();
    }
  }, 60_000);
});
