import { Writable } from 'node:stream';
import { describe, expect, it } from '@jest/globals';
import { createLogger } from './logger.js';
import { GracefulShutdown } from './shutdown.js';

describe('GracefulShutdown', () => {
  it('runs hooks in reverse order once and exits 0; a failing hook makes the exit code 1', async () => {
    const lines: string[] = [];
    const logger = createLogger('t', 'info', new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }));
    const order: string[] = [];
    const exits: number[] = [];
    const s = new GracefulShutdown({ logger, exit: (c) => exits.push(c) })
      .add('first', () => void order.push('first'))
      .add('second', async () => void order.push('second'));
    await Promise.all([s.shutdown('test'), s.shutdown('again')]);
    expect(order).toEqual(['second', 'first']);
    expect(exits).toEqual([0]);

    const failing = new GracefulShutdown({ logger, exit: (c) => exits.push(c) }).add('bad', () => {
      throw new Error('boom');
    });
    await failing.shutdown('test');
    expect(exits).toEqual([0, 1]);
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.find((l) => l['hook'] === 'bad')).toMatchObject({ level: 'error', component: 't', error: 'boom' });
    expect(parsed[0]).toHaveProperty('time');
  });
});
