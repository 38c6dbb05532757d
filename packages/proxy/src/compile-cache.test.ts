import { beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { oneRouteBootstrap } from './test-support/resources.js';

/** Bytes of all files under a directory. */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  return n;
}

// Node writes its compile cache only on a normal exit; the proxy writes it once started, so a
// proxy that is killed (or crashes) still leaves the next start a warm cache (docs/footprint.md round 6).
describe('octo-proxy compile cache', () => {
  const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
  beforeAll(() => void execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/proxy'], { cwd: ROOT }), 120_000);

  it('is written once the proxy started, though it is then killed with SIGKILL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-compile-cache-'));
    const file = join(dir, 'bootstrap.json');
    const cache = join(dir, 'cache');
    writeFileSync(file, oneRouteBootstrap());
    const child = spawn(process.execPath, [join(ROOT, 'packages/proxy/dist/main.js'), '--config', file], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, NODE_COMPILE_CACHE: cache } });
    const exited = new Promise((r) => child.once('exit', r));
    const adminPort = await new Promise<number>((resolve, reject) => {
      child.on('message', (m: { type?: string; adminPort?: number }) => m.type === 'octo.proxy.started' && resolve(m.adminPort!));
      child.once('exit', (code) => reject(new Error(`proxy exited ${code}`)));
    });
    // The flush runs synchronously right after the 'started' message is sent, so a request the
    // proxy answers after that message was answered after the flush.
    expect((await fetch(`http://127.0.0.1:${adminPort}/ready`)).status).toBe(200);
    child.kill('SIGKILL');
    await exited;
    // Hundreds of KiB for the proxy's modules; without the flush the directory stays (nearly) empty.
    expect(bytesUnder(cache)).toBeGreaterThan(100_000);
  }, 30_000);
});
