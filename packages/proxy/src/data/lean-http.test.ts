import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { flushOut, heldWrites, sendLater } from './lean-http.js';

/** A connected pair on loopback: `a` is ours to write, `received` resolves with what `b` read until FIN. */
async function pair(): Promise<{ a: net.Socket; received: Promise<string>; close: () => void }> {
  let received!: Promise<string>;
  const server = net.createServer((b) => {
    received = new Promise((resolve) => {
      let s = '';
      b.on('data', (d: Buffer) => (s += d.toString('latin1')));
      b.on('end', () => resolve(s));
      b.on('close', () => resolve(s));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => a.once('connect', r));
  while (!received) await new Promise((r) => setImmediate(r));
  return { a, received, close: () => server.close() };
}

describe('held writes (sendLater / flushOut), always holding', () => {
  const threshold = heldWrites.threshold;
  beforeAll(() => void (heldWrites.threshold = 0));
  afterAll(() => void (heldWrites.threshold = threshold));

  it('go out in order, before any later direct write, strings as latin1', async () => {
    const { a, received, close } = await pair();
    sendLater(a, 'A');
    sendLater(a, Buffer.from('B'));
    expect(a.bytesWritten).toBe(0); // held until the end of this batch of events
    flushOut(a);
    a.write('C');
    sendLater(a, 'D\u00e9');
    sendLater(a, 'E');
    await new Promise((r) => setImmediate(r));
    flushOut(a); // nothing held any more: no effect
    a.end();
    expect(await received).toBe('ABCD\u00e9E');
    close();
  });

  it('are sent before the socket is ended, and dropped with a destroyed socket', async () => {
    const one = await pair();
    sendLater(one.a, 'last words');
    flushOut(one.a);
    one.a.end();
    expect(await one.received).toBe('last words');
    one.close();

    const two = await pair();
    sendLater(two.a, 'never');
    two.a.destroy();
    await new Promise((r) => setImmediate(r));
    expect(await two.received).toBe('');
    two.close();
  });
});

describe('held writes, as busy as the previous batch', () => {
  it('go out at once after a quiet batch, and are held after a busy one', async () => {
    const { a, received, close } = await pair();
    sendLater(a, 'w');
    await new Promise((r) => setImmediate(r)); // a batch with one write: the next is not held
    sendLater(a, 'q');
    expect(a.bytesWritten).toBe(2); // written at once
    for (let i = 1; i < heldWrites.threshold; i++) sendLater(a, 'q'); // this batch becomes busy
    await new Promise((r) => setImmediate(r));
    const before = a.bytesWritten;
    sendLater(a, 'h');
    expect(a.bytesWritten).toBe(before); // held: the previous batch was busy
    await new Promise((r) => setImmediate(r));
    expect(a.bytesWritten).toBe(before + 1);
    a.end();
    expect(await received).toBe(`w${'q'.repeat(heldWrites.threshold)}h`);
    close();
  });
});
