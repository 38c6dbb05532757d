// The sockets the agent holds: a Unix socket any uid in the pod can connect to (apps run as
// other users than the sidecar), whatever the process umask.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, linkSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from '@jest/globals';
import { ListeningSockets, UNIX_SOCKET_MODE } from './sockets.js';

describe('ListeningSockets', () => {
  const sockets = new ListeningSockets();
  const dirs: string[] = [];
  afterEach(() => {
    sockets.close();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'octo-sockets-'));
    dirs.push(d);
    return d;
  };

  it.each([
    // umask of the process when the agent binds
    ['022', 0o022],
    ['077', 0o077],
    ['000', 0o000],
  ])('creates the outbound Unix socket 0666 under umask %s', (_, umask) => {
    const path = join(dir(), 'outbound.sock');
    const old = process.umask(umask);
    try {
      sockets.bindUnix('outbound', 'outbound-unix', path);
    } finally {
      process.umask(old);
    }
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(UNIX_SOCKET_MODE);
    expect(UNIX_SOCKET_MODE).toBe(0o666);
  });

  it('replaces a stale socket file and stays 0666', () => {
    const path = join(dir(), 'outbound.sock');
    sockets.bindUnix('outbound', 'outbound-unix', path);
    sockets.close();
    sockets.bindUnix('outbound', 'outbound-unix', path);
    expect(statSync(path).mode & 0o777).toBe(0o666);
  });

  // Root can drop to another uid for the client, as an application container is another user.
  (process.getuid?.() === 0 ? it : it.skip)('lets a process of another uid connect once a child listens on it', async () => {
    const d = dir();
    chmodSync(d, 0o755);
    const path = join(d, 'outbound.sock');
    const held = sockets.bindUnix('outbound', 'outbound-unix', path);
    // What a proxy child does with the handle it gets: listen on it.
    const server = net.createServer((c) => c.end('hello from the sidecar\n'));
    await new Promise<void>((r) => server.listen(held.handle, r));
    // The client runs as uid 65534, which may not reach this node binary (a clean clone under a
    // 0700 temp directory): it gets its own link (or copy) of it in the 0755 directory.
    const bin = join(d, 'node');
    try {
      linkSync(process.execPath, bin);
    } catch {
      copyFileSync(process.execPath, bin);
      chmodSync(bin, 0o755);
    }
    try {
      const client = spawn(bin, ['-e', `require('net').connect(${JSON.stringify(path)}).on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.error(e.code); process.exit(3); })`], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      client.stdout.on('data', (c: Buffer) => (out += c.toString()));
      client.stderr.on('data', (c: Buffer) => (out += c.toString()));
      const code = await new Promise((resolve, reject) => {
        client.on('close', resolve);
        client.on('error', reject);
      });
      expect({ code, out }).toEqual({ code: 0, out: 'hello from the sidecar\n' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  }, 30_000);

  it('names the path when it cannot bind', () => {
    expect(() => sockets.bindUnix('outbound', 'outbound-unix', join(dir(), 'missing-dir', 'outbound.sock'))).toThrow(/cannot bind outbound on .*missing-dir/);
  });
});
