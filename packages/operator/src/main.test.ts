// The octo-operator executable as a child process: a bad setting stops it with a message that
// names the field; SIGTERM stops it cleanly (exit 0) even while it is still waiting for the API
// server. Leadership hand-over on SIGTERM is proven on a real API server (e2e/k8s/operator-*).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { pushPackage } from '@octo-mesh/proxy-package';
import { freePort, waitFor } from '@octo-mesh/runtime';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const MAIN = join(ROOT, 'packages/operator/dist/main.js');

beforeAll(() => {
  // -p, not -b: only this package (its references' declarations are read, not rebuilt).
  execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'packages/operator'], { cwd: ROOT, stdio: 'pipe' });
}, 120_000);

function run(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, exited, output: () => out };
}

describe('octo-operator executable', () => {
  it('a bad setting stops it with exit 2 and names the field and where it came from', async () => {
    const p = run(['--admin-port', '70000'], { OCTO_OPERATOR_RENEW_DEADLINE_MS: '20000' });
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain('adminPort');
    expect(p.output()).toContain('flag --admin-port');
    const q = run([], { OCTO_OPERATOR_RENEW_DEADLINE_MS: '20000' });
    expect(await q.exited).toBe(2);
    expect(q.output()).toContain('renewDeadlineMs: must be shorter than leaseDurationMs');
  }, 30_000);

  it.each([
    // flags, what the message must say
    [['--repository-only'], 'repositoryDir: is required with repositoryOnly'],
    [['--repository-only', 'maybe', '--repository-dir', '/tmp/x'], 'repositoryOnly'],
    [['--repository-dir', '/tmp/x', '--repository-port', '70000'], 'repositoryPort'],
    [['--repository-dir', '/tmp/x', '--repository-port', '15014'], 'repositoryPort: must differ from adminPort'],
    [['--repository-dir', '/tmp/x', '--repository-max-bytes', '0'], 'repositoryMaxBytes'],
  ])('a bad repository setting %j stops it with exit 2: %s', async (args, message) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain(message);
  }, 30_000);

  it('--repository-only serves the package repository (push, get, list) and stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-operator-repo-'));
    const [admin, repo] = [await freePort(), await freePort()];
    // No kubeconfig and no dispatcher: this mode needs neither.
    const p = run(['--repository-only', '--repository-dir', join(dir, 'packages'), '--repository-port', String(repo), '--admin-port', String(admin)], { KUBECONFIG: join(dir, 'none') });
    try {
      await waitFor('readyz', () => fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.status, () => 0), (s) => s === 200, { timeoutMs: 15_000 });
      const file = join(dir, 'octo-proxy-9.9.9.tgz');
      writeFileSync(file, 'not really a package, but the repository stores bytes by digest');
      const { url, sha256 } = await pushPackage(`http://127.0.0.1:${repo}`, file);
      expect(url).toBe(`http://127.0.0.1:${repo}/packages/${sha256}`);
      expect(await (await fetch(url)).text()).toBe('not really a package, but the repository stores bytes by digest');
      const listed = (await (await fetch(`http://127.0.0.1:${repo}/packages`)).json()) as { packages: { sha256: string }[] };
      expect(listed.packages.map((x) => x.sha256)).toEqual([sha256]);
      // The repository's counters are on the operator's /metrics too.
      expect(await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()).toContain('octo_package_repository_requests_total{method="PUT",code="201"} 1');
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited).toBe(0);
  }, 30_000);

  it('SIGTERM stops it cleanly with exit 0', async () => {
    // An API server that is not there: the process serves /healthz and keeps retrying the list.
    const dir = mkdtempSync(join(tmpdir(), 'octo-operator-'));
    const dead = await freePort();
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:${dead}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: x\n`,
    );
    const port = await freePort();
    const p = run(['--admin-port', String(port), '--kubeconfig', kubeconfig]);
    await waitFor('healthz', () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status, () => 0), (s) => s === 200, { timeoutMs: 15_000 });
    try {
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(503);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited).toBe(0);
    expect(p.output()).toContain('"shutting down"');
  }, 30_000);
});
