import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';

// The real executable as a child process: configuration errors, serving, SIGTERM.
const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const MAIN = join(ROOT, 'packages/pilot/dist/main.js');

function run(args: string[]) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, OCTO_LOG_LEVEL: 'info' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, out: () => stdout, err: () => stderr };
}

describe('octo-pilot executable', () => {
  beforeAll(() => {
    try {
      execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/pilot'], { cwd: ROOT, stdio: 'pipe' });
    } catch (err) {
      // tsc emits despite type errors in other packages; only a missing build is fatal here
      if (!existsSync(MAIN)) throw new Error(`cannot build pilot: ${(err as { stdout?: Buffer }).stdout?.toString() ?? err}`);
    }
  }, 120_000);

  it('refuses a bad flag with exit code 2 and a message naming the field', async () => {
    const p = run(['--xds-port', 'many']);
    expect(await p.exited).toBe(2);
    expect(p.err()).toMatch(/xdsPort: .*flag --xds-port/);
  });

  it.each([
    [['--meta-server-address', 'meta'], /metaServerAddress: must be host:port/],
    [['--meta-server-address', 'meta:15011'], /advertiseHost: required with metaServerAddress when xdsHost is a wildcard/],
    [['--meta-server-address', 'meta:15011', '--advertise-host', '10.0.0.7:15010'], /advertiseHost: must be a host name or IP address/],
  ])('refuses %j naming the field', async (args, message) => {
    const p = run(args);
    expect(await p.exited).toBe(2);
    expect(p.err()).toMatch(message);
  });

  it('serves health and metrics, and stops cleanly on SIGTERM', async () => {
    const p = run(['--xds-port', '0', '--admin-port', '0', '--xds-host', '127.0.0.1', '--admin-host', '127.0.0.1', '--pilot-id', 'p-test', '--shutdown-grace-seconds', '1']);
    const serving = await new Promise<{ xdsPort: number; adminPort: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pilot did not start: ${p.out()} ${p.err()}`)), 15_000);
      const check = () => {
        for (const line of p.out().split('\n')) {
          if (!line.includes('pilot serving')) continue;
          clearTimeout(timer);
          p.child.stdout.off('data', check);
          return resolve(JSON.parse(line) as { xdsPort: number; adminPort: number });
        }
      };
      p.child.stdout.on('data', check);
    });
    expect(serving.xdsPort).toBeGreaterThan(0);
    const base = `http://127.0.0.1:${serving.adminPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect(await (await fetch(`${base}/metrics`)).text()).toContain('octo_build_info{component="pilot"');
    expect(await (await fetch(`${base}/debug/syncz`)).json()).toEqual([]);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('"message":"stopped"');
  }, 30_000);
});
