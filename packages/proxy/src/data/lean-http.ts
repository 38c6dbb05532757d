import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import { addHeader, setFastMethods } from './h1-fast.js';
import type { BodySource, Headers } from './upstream.js';
import { contained, type ContainedSide } from './contain.js';

/**
 * What the lean HTTP/1.1 client and server share: Node's llhttp binding (the parser `node:http`
 * is built on, reached through `_http_common`) and a small pausable body emitter that is much
 * cheaper per message than a `Readable`.
 */
export interface ParserCtor {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
}
export interface Parser {
  initialize(type: number, resource: object): void;
  execute(b: Buffer): number | Error;
  finish(): number | Error | undefined;
  close(): void;
  [k: number]: unknown;
}
/**
 * `_http_common` is Node's own (undocumented but long-stable) home of the parser binding. Should a
 * future Node drop it, LEAN_CODEC is false and both sides fall back to `node:http`.
 */
function loadBinding(): { HTTPParser: ParserCtor; methods: string[] } | undefined {
  try {
    const m = createRequire(import.meta.url)('_http_common') as { HTTPParser?: ParserCtor; methods?: string[] };
    return m.HTTPParser && m.methods && typeof m.HTTPParser.kOnHeadersComplete === 'number' && typeof m.HTTPParser.kOnMessageBegin === 'number' ? (m as { HTTPParser: ParserCtor; methods: string[] }) : undefined;
  } catch {
    return undefined;
  }
}
const binding = loadBinding();
export const LEAN_CODEC = binding !== undefined;
export const HTTPParser = binding?.HTTPParser as ParserCtor;
export const METHODS = binding?.methods ?? [];
if (binding) setFastMethods(METHODS);
/**
 * Whether common message heads skip llhttp (`h1-fast.ts`); `OCTO_PROXY_FAST_PARSE=0` sends every
 * message through llhttp, which is how the tests keep that path covered too.
 */
export const FAST_PARSE = LEAN_CODEC && process.env['OCTO_PROXY_FAST_PARSE'] !== '0';

/** Raw `[name, value, ...]` pairs to a header object (lower-case names, repeated values combined by `addHeader`), leaving out `skip`. */
export function toHeaders(raw: readonly string[], skip?: ReadonlySet<string>): Headers {
  const h: Headers = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (!skip?.has(k)) addHeader(h, k, raw[i + 1]!);
  }
  return h;
}

/** Flow control of the connection a body arrives on. */
export interface FlowControl {
  pause(): unknown;
  resume(): unknown;
  destroy(): unknown;
}

/**
 * A message body: `data` events start once a consumer listens (or resumes), chunks that arrive
 * before are queued and pause the connection; then `end` and `close`, or `error` and `close`.
 * Once the message is complete the connection is no longer touched (it may carry the next one).
 */
/** Queued bytes beyond which the connection stops reading (like a Readable's highWaterMark). */
const HIGH_WATER_MARK = 64 * 1024;

export class LeanBody extends EventEmitter implements BodySource {
  private queue: Buffer[] = [];
  private queued = 0;
  /** Whether this body stopped the connection's reading (each stop/start is a syscall). */
  private stopped = false;
  private flowing = false;
  private ended = false;
  private closed = false;
  destroyed = false;

  constructor(
    private readonly flow: FlowControl,
    /** Which connection the body arrives on (for contain.ts). */
    private readonly side: ContainedSide = 'upstream',
  ) {
    super();
  }

  override on(event: string | symbol, fn: (...a: any[]) => void): this {
    super.on(event, fn);
    if (event === 'data' && !this.flowing) this.resume();
    return this;
  }

  get complete(): boolean {
    return this.ended;
  }

  push(b: Buffer): void {
    if (this.closed) return;
    if (this.flowing && this.queue.length === 0) this.emit('data', b);
    else {
      this.queue.push(b);
      this.queued += b.length;
      if (this.queued > HIGH_WATER_MARK && !this.stopped) {
        this.stopped = true;
        this.flow.pause();
      }
    }
  }

  finish(): void {
    this.ended = true;
    if (this.flowing && this.queue.length === 0) this.done();
  }

  private done(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('end');
    this.emit('close');
  }

  fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.destroyed = true;
    if (this.listenerCount('error') > 0) this.emit('error', err);
    this.emit('close');
  }

  pause(): this {
    this.flowing = false;
    if (!this.ended && !this.stopped) {
      this.stopped = true;
      this.flow.pause();
    }
    return this;
  }

  resume(): this {
    if (this.flowing) return this;
    this.flowing = true;
    queueMicrotask(() => {
      try {
        while (this.flowing && this.queue.length) {
          const b = this.queue.shift()!;
          this.queued -= b.length;
          this.emit('data', b);
        }
      } catch (err) {
        // A consumer threw on queued bytes (outside the read callback, see contain.ts): the
        // connection they came on closes, and the process serves on.
        this.flowing = false;
        this.flow.destroy();
        contained(this.side, err);
        return;
      }
      if (!this.flowing) return;
      if (this.ended) this.done();
      else if (!this.destroyed && this.stopped) {
        this.stopped = false;
        this.flow.resume();
      }
    });
    return this;
  }

  /**
   * The whole body, when it has already arrived and nobody is reading it yet: hands over the
   * queued pieces and ends the body ('end', then 'close') at once. Otherwise undefined.
   */
  takeAll(): Buffer[] | undefined {
    if (!this.ended || this.closed || this.flowing || this.listenerCount('data') > 0) return undefined;
    const q = this.queue;
    this.queue = [];
    this.queued = 0;
    this.done();
    return q;
  }

  destroy(): this {
    if (this.closed) return this;
    this.destroyed = true;
    this.closed = true;
    if (!this.ended) this.flow.destroy();
    this.emit('close');
    return this;
  }
}

/**
 * Reads of an accepted socket straight into a caller's buffer, past the Readable machinery —
 * what `net.connect({onread})` does for sockets we open, which `net.Server` does not offer for
 * the ones it accepts. It sets the same two (internal) socket fields the `onread` option sets;
 * they are found by their descriptions on a probe socket, and when that fails `readDirect`
 * returns false and the caller keeps using `data` events. Calling it again on a socket already
 * reading directly only replaces the callback. The buffer is reused by the next read: the
 * callback must be done with it when it returns. Returning false stops reading until `resume()`.
 */
const directKeys = ((): { buffer: symbol; callback: symbol } | undefined => {
  try {
    const buffer = Buffer.alloc(1);
    const callback = (): boolean => true;
    const probe = new net.Socket({ onread: { buffer, callback } });
    const syms = Object.getOwnPropertySymbols(probe) as (symbol & keyof net.Socket)[];
    const kb = syms.find((k) => k.description === 'kBuffer' && (probe[k] as unknown) === buffer);
    const kc = syms.find((k) => k.description === 'kBufferCb' && (probe[k] as unknown) === callback);
    const kg = syms.find((k) => k.description === 'kBufferGen' && probe[k] === null);
    probe.destroy();
    return kb && kc && kg ? { buffer: kb, callback: kc } : undefined;
  } catch {
    return undefined;
  }
})();

export function readDirect(socket: net.Socket, buffer: Buffer, callback: (n: number, buf: Buffer) => boolean): boolean {
  if (!directKeys) return false;
  const s = socket as unknown as Record<symbol, unknown> & { _handle?: { useUserBuffer?: (b: Buffer) => void } | null };
  if (s[directKeys.buffer]) {
    s[directKeys.callback] = callback;
    return true;
  }
  const handle = s._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function' || socket.destroyed) return false;
  s[directKeys.buffer] = buffer;
  s[directKeys.callback] = callback;
  handle.useUserBuffer(buffer);
  return true;
}

/** One read buffer for every downstream connection reading directly; reads are handled synchronously. */
export const DOWNSTREAM_READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Writes held to the end of the current batch of I/O events. Under load the event loop hands the
 * proxy dozens of readable connections at once, and handling each one writes to another process
 * (the upstream, the client) on another CPU; written at once, nearly every write finds its
 * reader asleep and pays for waking it (in a VM, an inter-processor interrupt and an exit).
 * Held until the batch is handled (one `setImmediate`), the writes of a batch go out back to
 * back and wake each reader about once. Only while busy: when the previous batch carried fewer
 * than `heldWrites.threshold` writes, they go out at once, so a lone request waits for nothing.
 * No bytes are added or reordered: a socket's held writes go out in order, before anything else
 * is written to it (`Outbox.flush`), and only writes that start a message with its first bytes or
 * complete it are held, so backpressure is seen by the writes after them.
 */
export const heldWrites = {
  /** Writes in one batch from which the next batch's writes are held (0: always hold). */
  threshold: 4,
};
const held: Outbox[] = [];
let batchArmed = false;
let batchWrites = 0;
let holding = false;

/**
 * A socket's held writes. Each connection we write to owns one, made with the connection: the
 * queue lives here and not on the socket, so every socket keeps the shape Node gave it (a
 * property added to some sockets only would make Node's write path see two kinds of socket, and
 * V8 throws away its optimised code each time the mix changes, e.g. from load to a quiet spell).
 */
export class Outbox {
  private queue: (Buffer | string)[] | undefined = undefined;
  constructor(readonly socket: net.Socket) {}

  /** Writes `d` (a string as latin1), or queues it to the end of this batch of events when busy. */
  later(d: Buffer | string): void {
    batchWrites++;
    if (!batchArmed) {
      batchArmed = true;
      setImmediate(endBatch);
    }
    const q = this.queue;
    if (q) q.push(d);
    else if (!holding && heldWrites.threshold > 0) {
      if (typeof d === 'string') this.socket.write(d, 'latin1');
      else this.socket.write(d);
    } else {
      this.queue = [d];
      held.push(this);
    }
  }

  /** Writes what is held now; call before writing to, ending or handing over the socket any other way. */
  flush(): void {
    const q = this.queue;
    if (!q) return;
    this.queue = undefined;
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return;
    if (q.length > 1) s.cork();
    for (const d of q) {
      if (typeof d === 'string') s.write(d, 'latin1');
      else s.write(d);
    }
    if (q.length > 1) s.uncork();
  }
}

function endBatch(): void {
  batchArmed = false;
  holding = batchWrites >= heldWrites.threshold;
  batchWrites = 0;
  for (let i = 0; i < held.length; i++) held[i]!.flush();
  held.length = 0;
}
