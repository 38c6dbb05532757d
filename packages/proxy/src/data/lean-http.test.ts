import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { heldWrites, Outbox } from './lean-http.js';

/** A connected pair on loopback: `a` is ours to write, `received` resolves with what `b` read until FIN. */
async function pair(): Promise<{ a: net.Socket; out: Outbox; received: Promise<string>; close: () => void }> {
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
  return { a, out: new Outbox(a), received, close: () => server.close() };
}

describe('held writes (Outbox), always holding', () => {
  const threshold = heldWrites.threshold;
  beforeAll(() => void (heldWrites.threshold = 0));
  afterAll(() => void (heldWrites.threshold = threshold));

  it('go out in order, before any later direct write, strings as latin1', async () => {
    const { a, out, received, close } = await pair();
    out.later('A');
    out.later(Buffer.from('B'));
    expect(a.bytesWritten).toBe(0); // held until the end of this batch of events
    out.flush();
    a.write('C');
    out.later('D\u00e9');
    out.later('E');
    await new Promise((r) => setImmediate(r));
    out.flush(); // nothing held any more: no effect
    a.end();
    expect(await received).toBe('ABCD\u00e9E');
    close();
  });

  it('leave the socket as Node made it (no property of ours on it)', async () => {
    const { a, out, received, close } = await pair();
    const keys = (): (string | symbol)[] => Reflect.ownKeys(a);
    const before = keys();
    out.later('x');
    expect(keys()).toEqual(before);
    out.flush();
    a.end();
    expect(await received).toBe('x');
    close();
  });

  it('are sent before the socket is ended, and dropped with a destroyed socket', async () => {
    const one = await pair();
    one.out.later('last words');
    one.out.flush();
    one.a.end();
    expect(await one.received).toBe('last words');
    one.close();

    const two = await pair();
    two.out.later('never');
    two.a.destroy();
    await new Promise((r) => setImmediate(r));
    expect(await two.received).toBe('');
    two.close();
  });
});

describe('held writes, as busy as the previous batch', () => {
  it('go out at once after a quiet batch, and are held after a busy one', async () => {
    const { a, out, received, close } = await pair();
    out.later('w');
    await new Promise((r) => setImmediate(r)); // a batch with one write: the next is not held
    out.later('q');
    expect(a.bytesWritten).toBe(2); // written at once
    for (let i = 1; i < heldWrites.threshold; i++) out.later('q'); // this batch becomes busy
    await new Promise((r) => setImmediate(r));
    const before = a.bytesWritten;
    out.later('h');
    expect(a.bytesWritten).toBe(before); // held: the previous batch was busy
    await new Promise((r) => setImmediate(r));
    expect(a.bytesWritten).toBe(before + 1);
    a.end();
    expect(await received).toBe(`w${'q'.repeat(heldWrites.threshold)}h`);
    close();
  });
});
