import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { describe, expect, it } from '@jest/globals';
import { deadline } from './timer-list.js';

describe('deadline', () => {
  it('fires after its duration, in order, and not once cancelled', async () => {
    const fired: string[] = [];
    const t0 = performance.now();
    const times: number[] = [];
    deadline(30, () => (fired.push('a'), times.push(performance.now() - t0)));
    const b = deadline(30, () => fired.push('b'));
    deadline(10, () => (fired.push('c'), times.push(performance.now() - t0)));
    deadline(30, () => fired.push('d'));
    b.cancel();
    b.cancel();
    await new Promise((r) => setTimeout(r, 60));
    expect(fired).toEqual(['c', 'a', 'd']);
    expect(times[0]).toBeGreaterThanOrEqual(9);
    expect(times[1]).toBeGreaterThanOrEqual(29);
  });

  it('keeps working after its list emptied, and a cancelled head does not delay the next', async () => {
    const fired: number[] = [];
    deadline(20, () => fired.push(1)).cancel();
    await new Promise((r) => setTimeout(r, 5));
    deadline(20, () => fired.push(2));
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toEqual([2]);
    deadline(20, () => fired.push(3));
    await new Promise((r) => setTimeout(r, 40));
    expect(fired).toEqual([2, 3]);
  });

  it('after a stall, reads what arrived in time before it runs a deadline that passed meanwhile', async () => {
    // Issue 18: a proxy preempted in a callback on a machine short of CPU comes back with its
    // deadlines past and the responses in its sockets; Node runs due timers before it polls. Here
    // the stall is a synchronous wait in the server's callback, after its answer is written: when
    // it ends, the deadline is past and the answer is in the client's socket, however slow the machine.
    const server = createServer((s) => s.on('data', () => stall(s)).on('error', () => undefined));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    client.on('error', () => undefined);
    const outcome = new Promise<string>((resolve) => {
      let t: { cancel(): void } | undefined;
      stall = (s: Socket) => {
        t = deadline(15, () => resolve('timed out'));
        s.write('answer');
        const until = performance.now() + 60;
        while (performance.now() < until); // the stall: the deadline passes, the answer waits in the socket
      };
      client.on('data', () => {
        t?.cancel();
        resolve('answered');
      });
    });
    client.write('request');
    try {
      expect(await outcome).toBe('answered');
    } finally {
      client.destroy();
      server.close();
    }
  });
});

let stall: (s: Socket) => void = () => undefined;
