// The environment a proxy child is forked with: two malloc arenas unless the agent's environment
// says otherwise (docs/footprint.md, round 5). A real fork of a small entry that reports its env.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { createLogger } from '@octo-mesh/runtime';
import { PROXY_CHILD_ENV, ProxyChild } from './child.js';
import { ListeningSockets } from './sockets.js';

const quiet = createLogger('agent', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
const dir = mkdtempSync(join(tmpdir(), 'octo-child-env-'));
const entry = join(dir, 'entry.cjs');
writeFileSync(entry, "require('node:fs').writeFileSync(process.argv[2], JSON.stringify({ arenas: process.env.MALLOC_ARENA_MAX ?? null, other: process.env.OCTO_TEST_MARK ?? null }));\n");

async function envOfChild(env: NodeJS.ProcessEnv | undefined): Promise<{ arenas: string | null; other: string | null }> {
  const out = join(dir, `env-${Math.random().toString(36).slice(2)}.json`);
  const c = new ProxyChild({ entry, args: [out], sockets: new ListeningSockets(), logger: quiet, version: 'test', sha256: '', ...(env ? { env } : {}) });
  expect(await c.exit).toEqual({ code: 0, signal: null });
  return JSON.parse(readFileSync(out, 'utf8')) as { arenas: string | null; other: string | null };
}

describe('ProxyChild environment', () => {
  // env given to the child, MALLOC_ARENA_MAX it sees, the other variable it sees
  it.each<[string, NodeJS.ProcessEnv, string, string | null]>([
    ['the agent\'s env, no arena setting: two arenas', { PATH: process.env.PATH, OCTO_TEST_MARK: 'kept' }, PROXY_CHILD_ENV.MALLOC_ARENA_MAX!, 'kept'],
    ['an arena setting in the agent\'s env wins', { PATH: process.env.PATH, MALLOC_ARENA_MAX: '4' }, '4', null],
  ])('%s', async (_name, env, arenas, other) => {
    expect(await envOfChild(env)).toEqual({ arenas, other });
  });

  it('without env, the child gets the agent\'s process env plus two arenas', async () => {
    expect((await envOfChild(undefined)).arenas).toBe(process.env.MALLOC_ARENA_MAX ?? '2');
  });
});
