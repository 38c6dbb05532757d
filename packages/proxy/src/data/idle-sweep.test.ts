import { describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { IdleSweep, type Sweepable } from './idle-sweep.js';
import { LeanConnection } from './h1-server.js';

function member(idle = true): Sweepable & { expired: boolean; idle: boolean } {
  return {
    lastTick: 0,
    idle,
    expired: false,
    expire() {
      this.expired = true;
    },
  };
}

describe('IdleSweep', () => {
  // Four ticks per timeout: idle for more than four whole ticks closes, activity restarts the count.
  it.each([
    { name: 'idle through 4 ticks stays', ticks: 4, touchAt: undefined, busy: false, expired: false },
    { name: 'idle through 5 ticks closes', ticks: 5, touchAt: undefined, busy: false, expired: true },
    { name: 'activity at tick 3 restarts the count', ticks: 7, touchAt: 3, busy: false, expired: false },
    { name: 'activity at tick 3, then idle to tick 8, closes', ticks: 8, touchAt: 3, busy: false, expired: true },
    { name: 'a request in progress is never closed', ticks: 20, touchAt: undefined, busy: true, expired: false },
  ])('$name', ({ ticks, touchAt, busy, expired }) => {
    const sweep = new IdleSweep(60_000);
    const m = member(!busy);
    sweep.add(m);
    for (let i = 1; i <= ticks; i++) {
      sweep.sweep();
      if (i === touchAt) m.lastTick = sweep.tick;
    }
    expect(m.expired).toBe(expired);
    sweep.delete(m);
  });
});

describe('downstream idle timeout', () => {
  it('closes a kept-alive connection idle for the timeout, not one waiting for its response', async () => {
    const timeoutMs = 200;
    const server = net.createServer((socket) => {
      new LeanConnection(
        socket,
        {
          onRequest: (req, res) => {
            // /slow answers after 3 timeouts: the connection is busy meanwhile, not idle.
            setTimeout(() => res.end('ok'), req.url === '/slow' ? 3 * timeoutMs : 0);
          },
          onUpgrade: (_req, s) => s.destroy(),
        },
        { idleMs: timeoutMs },
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const open = (path: string) =>
      new Promise<{ answered: number; closed: number }>((resolve) => {
        const t0 = performance.now();
        let answered = -1;
        const s = net.connect(port, '127.0.0.1', () => s.write(`GET ${path} HTTP/1.1\r\nhost: x\r\n\r\n`));
        s.on('data', (d: Buffer) => {
          if (d.toString('latin1').startsWith('HTTP/1.1 200')) answered = performance.now() - t0;
        });
        s.on('error', () => undefined);
        s.on('close', () => resolve({ answered, closed: performance.now() - t0 }));
      });
    const [fast, slow] = await Promise.all([open('/'), open('/slow')]);
    server.close();
    // Answered at once, then closed between 1x and 1.25x the timeout (plus scheduling slack).
    expect(fast.answered).toBeGreaterThanOrEqual(0);
    expect(fast.closed).toBeGreaterThanOrEqual(timeoutMs - 5);
    expect(fast.closed).toBeLessThan(2 * timeoutMs);
    // Kept through its 600 ms wait, answered, then closed once idle for the timeout.
    expect(slow.answered).toBeGreaterThanOrEqual(3 * timeoutMs - 5);
    expect(slow.closed - slow.answered).toBeGreaterThanOrEqual(timeoutMs - 60);
  });
});
