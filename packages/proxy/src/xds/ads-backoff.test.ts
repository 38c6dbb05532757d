// Issue 18: after both pilots were killed and restarted, one sidecar took 60 s to be SYNCED again
// (it sat in a 28 s reconnect wait). The xDS backoff is capped at a few seconds, and a pilot's
// return — the meta server naming a live pilot again — starts it over.
import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { Node } from '@octo-mesh/proto';
import { backoffDelay, createLogger, freePort } from '@octo-mesh/runtime';
import { AdsClient, DEFAULT_XDS_BACKOFF } from './ads-client.js';
import { ConfigStore } from './config-store.js';

describe('xDS reconnect backoff', () => {
  it('never waits more than 5 s, however long the pilots were gone', () => {
    for (const attempt of [0, 5, 10, 50]) expect(backoffDelay(attempt, DEFAULT_XDS_BACKOFF, () => 0)).toBeLessThanOrEqual(5000);
    expect(backoffDelay(50, DEFAULT_XDS_BACKOFF, () => 1)).toBeGreaterThanOrEqual(2500); // jitter keeps spreading a fleet
  });

  it('starts over when the meta server names a live pilot again after failing to', async () => {
    const delays: { message: string; delayMs: number }[] = [];
    const logger = createLogger('t', 'warn', new Writable({
      write: (c: Buffer, _e, cb) => {
        const l = JSON.parse(c.toString()) as { message: string; delayMs?: number };
        if (l.delayMs !== undefined) delays.push({ message: l.message, delayMs: l.delayMs });
        cb();
      },
    }));
    const dead = `127.0.0.1:${await freePort()}`; // a pilot address nothing listens on
    let locates = 0;
    const client = new AdsClient({
      node: Node.fromPartial({ id: 'sidecar-b' }),
      mode: 'sotw',
      store: new ConfigStore(),
      onUpdate: () => {},
      logger,
      backoff: { initialMs: 50, maxMs: 60_000, jitter: 0 },
      locate: async () => {
        if (++locates <= 4) throw new Error('no live pilot');
        return { pilotId: 'pilot-a', xdsAddress: dead };
      },
    });
    client.start();
    try {
      const deadline = Date.now() + 10_000;
      while (!delays.some((d) => d.message.startsWith('xDS stream closed')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    } finally {
      client.stop();
    }
    // 50, 100, 200, 400 ms while no pilot was live; then a pilot is named: the next wait starts
    // from 50 ms again instead of 800.
    expect(delays.map((d) => d.delayMs)).toEqual([50, 100, 200, 400, 50]);
  }, 20_000);
});
