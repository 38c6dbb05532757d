// The octo-injector executable as a child process: a bad setting stops it with exit 2 and a
// message naming the field; SIGTERM stops it cleanly (exit 0) while it is still retrying an API
// server that is not there (not ready meanwhile). Certificates, caBundle and admission on a real
// cluster: e2e/cluster-e2e/mesh.test.ts.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { freePort, waitFor } from '@octo-mesh/runtime';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = join(ROOT, 'packages/injector/dist/main.js');
const REQUIRED = ['--namespace', 'octo-system', '--service-name', 'inj', '--secret-name', 'inj-tls', '--webhook-config-name', 'inj', '--sidecar-image', 'sidecar:dev', '--meta-server-address', 'meta:15011'];

beforeAll(() => {
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'packages/injector'], { cwd: ROOT, stdio: 'pipe' });
}, 120_000);

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, output: () => out };
}

describe('octo-injector executable', () => {
  it.each([
    // args, env, what the message names
    [[...REQUIRED, '--webhook-port', '70000'], {}, 'webhookPort'],
    [[...REQUIRED], { OCTO_INJECTOR_SIDECAR_MEMORY_LIMIT: 'lots' }, 'sidecarMemoryLimit: must be a Kubernetes quantity'],
    [REQUIRED.filter((a, i, all) => a !== '--sidecar-image' && all[i - 1] !== '--sidecar-image'), {}, 'sidecarImage'],
  ])('a bad setting stops it with exit 2 naming the field (%j)', async (args, env, field) => {
    const p = run(args, env);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain(field);
  }, 30_000);

  it('SIGTERM stops it cleanly with exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-injector-'));
    const dead = await freePort();
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${dead}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n`,
    );
    const port = await freePort();
    const p = run([...REQUIRED, '--admin-port', String(port), '--webhook-port', String(await freePort()), '--host', '127.0.0.1', '--kubeconfig', kubeconfig]);
    await waitFor('healthz', () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0), (s) => s === 200, { timeoutMs: 15_000 });
    try {
      const r = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.text()).toContain('certificate');
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('"shutting down"');
  }, 30_000);
});
