/**
 * The lean client: gRPC over `node:http2` by hand, for simulating thousands of sidecars on the
 * cores the control plane is measured on (bench/scale). A simulated sidecar needs one bidi stream
 * (ADS) and one unary call (Locate); grpc-js gives each a channel — resolver, load balancer,
 * subchannel, retry and keepalive machinery, a status object and Metadata per call — which at
 * 10,000 sidecars was more CPU in a pilot kill than the surviving pilot used. Here each call is
 * exactly what goes on the wire: its own HTTP/2 connection (as a real sidecar's; never shared, so
 * the server sees the same connections as with grpc-js), a POST with the gRPC headers, messages
 * with the 5-byte length prefix, and the status read from the trailers (or from a trailers-only
 * response). Not done: TLS, compression (none is offered, so none is sent), keepalive pings,
 * deadlines on the stream, retries, name resolution (an `address` is `host:port`).
 */
import * as http2 from 'node:http2';
import { status as grpcStatus } from '@grpc/grpc-js';
import { locateAttemptMs } from '@octo-mesh/contracts/locate.js';
import { LocateRequest, LocateResponse } from '@octo-mesh/proto';
import { Backoff, sleep } from '@octo-mesh/runtime';

const LOCATE = '/octo.mesh.v1.MetaServer/Locate';

/** A message with gRPC's length prefix (uncompressed). */
export function grpcFrame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Splits a byte stream into gRPC messages. Bytes of an incomplete message are kept and joined with
 * the next chunk (a response is usually one DATA frame, so mostly nothing is copied).
 */
export class FrameReader {
  private rest: Buffer | undefined;

  /** Adds bytes; calls `each` for every complete message. Throws on a compressed message (none was offered). */
  push(chunk: Buffer, each: (message: Buffer) => void): void {
    const b = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = undefined;
    let i = 0;
    while (b.length - i >= 5) {
      if (b[i] !== 0) throw new Error(`compressed gRPC message (flag ${b[i]}) not supported`);
      const len = b.readUInt32BE(i + 1);
      if (b.length - i - 5 < len) break;
      each(b.subarray(i + 5, i + 5 + len));
      i += 5 + len;
    }
    if (i < b.length) this.rest = b.subarray(i);
  }
}

/** The gRPC status of a finished call, from its trailers (or a trailers-only response's headers). */
export function statusOf(headers: http2.IncomingHttpHeaders | undefined): { code: number; details: string } | undefined {
  const code = headers?.['grpc-status'];
  if (code === undefined) return undefined;
  const raw = headers?.['grpc-message'];
  let details = typeof raw === 'string' ? raw : '';
  try {
    details = decodeURIComponent(details);
  } catch {
    // not percent-encoded after all: as it came
  }
  return { code: Number(code), details };
}

export interface LeanCallHandlers {
  /** The response headers arrived (the server's handler ran). */
  headers(): void;
  message(message: Buffer): void;
  /** Once, when the call is over: its gRPC status (UNAVAILABLE when the connection failed or no status came). Not after cancel(). */
  end(code: number, details: string): void;
}

export interface LeanCall {
  /** Writes one message (framed here). */
  write(message: Uint8Array): void;
  /** Half-closes: no more requests (the server may still answer and end the call). */
  halfClose(): void;
  /** Cancels (RST_STREAM CANCEL) and closes the connection (GOAWAY); no `end` follows. */
  cancel(): void;
}

const HEADERS = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' };

/** Opens a gRPC call on a new HTTP/2 connection of its own to `address` (`host:port`). */
export function openLeanCall(address: string, path: string, h: LeanCallHandlers, extraHeaders: Record<string, string> = {}): LeanCall {
  const session = http2.connect(`http://${address}`);
  let over = false;
  let status: { code: number; details: string } | undefined;
  let failure = '';
  const finish = (code: number, details: string) => {
    if (over) return;
    over = true;
    session.close(); // GOAWAY, then the socket closes (as a grpc-js channel's close())
    h.end(code, details);
  };
  // A connection that fails (refused, reset) ends the call; the stream's 'close' then follows.
  session.on('error', (e) => (failure ||= `connection: ${e.message}`));
  session.on('close', () => finish(status?.code ?? grpcStatus.UNAVAILABLE, status?.details ?? (failure || 'connection closed')));
  const stream = session.request({ ...HEADERS, ':path': path, ...extraHeaders });
  const reader = new FrameReader();
  stream.on('response', (headers) => {
    status = statusOf(headers); // a trailers-only response: the status comes with the headers
    if (!status && headers[':status'] !== 200) status = { code: grpcStatus.UNKNOWN, details: `HTTP status ${headers[':status']}` };
    if (!over) h.headers();
  });
  stream.on('data', (chunk: Buffer) => {
    if (over) return;
    try {
      reader.push(chunk, (m) => !over && h.message(m));
    } catch (err) {
      status = { code: grpcStatus.INTERNAL, details: (err as Error).message };
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }
  });
  stream.on('trailers', (trailers) => (status = statusOf(trailers) ?? status));
  // The server's END_STREAM (after its trailers, or a trailers-only response) ends the call; the
  // stream itself closes only once this side ends too, which finish() does with the connection.
  stream.on('end', () => finish(status?.code ?? grpcStatus.UNAVAILABLE, status?.details ?? 'stream ended without a status'));
  stream.on('error', (e) => (failure ||= `stream: ${e.message}`));
  stream.on('close', () => finish(status?.code ?? grpcStatus.UNAVAILABLE, status?.details ?? (failure || `stream closed without a status (HTTP/2 code ${stream.rstCode})`)));
  return {
    write(message) {
      if (!over && stream.writable) stream.write(grpcFrame(message));
    },
    halfClose() {
      if (!over && stream.writable) stream.end();
    },
    cancel() {
      if (over) return;
      over = true;
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      session.close();
    },
  };
}

/** A failed unary call: the gRPC status code and details, as grpc-js's ServiceError carries them. */
export class LeanCallError extends Error {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${code} ${grpcStatus[code] ?? ''}: ${details}`);
  }
}

/** One unary call on a connection of its own, with a deadline (sent as grpc-timeout and enforced here). */
export function leanUnary(address: string, path: string, request: Uint8Array, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let response: Buffer | undefined;
    const timer = setTimeout(() => {
      call.cancel();
      reject(new LeanCallError(grpcStatus.DEADLINE_EXCEEDED, `Deadline exceeded after ${timeoutMs} ms`));
    }, timeoutMs);
    const call = openLeanCall(
      address,
      path,
      {
        headers() {},
        message(m) {
          response = Buffer.from(m);
        },
        end(code, details) {
          clearTimeout(timer);
          if (code !== grpcStatus.OK) reject(new LeanCallError(code, details));
          else if (!response) reject(new LeanCallError(grpcStatus.UNIMPLEMENTED, 'no response message'));
          else resolve(response);
        },
      },
      { 'grpc-timeout': `${Math.max(1, Math.ceil(timeoutMs))}m` },
    );
    call.write(request);
    call.halfClose();
  });
}

export interface LeanLocateOptions {
  metaAddress: string;
  nodeId: string;
  namespace: string;
  workload: string;
  unreachablePilotId?: string | undefined;
  timeoutMs: number;
}

/**
 * `locatePilot` (@octo-mesh/clients) over {@link leanUnary}: the same attempts (2, 4, 8 s), the
 * same jittered backoff between them, INVALID_ARGUMENT final, the caller's deadline over all.
 */
export async function leanLocate(opts: LeanLocateOptions): Promise<{ pilotId: string; xdsAddress: string }> {
  const request = LocateRequest.encode({ nodeId: opts.nodeId, namespace: opts.namespace, workload: opts.workload, unreachablePilotId: opts.unreachablePilotId ?? '' }).finish();
  const backoff = new Backoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 });
  const deadline = Date.now() + opts.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      const r = LocateResponse.decode(await leanUnary(opts.metaAddress, LOCATE, request, locateAttemptMs(attempt, 2000, deadline - Date.now())));
      return { pilotId: r.pilotId, xdsAddress: r.xdsAddress };
    } catch (err) {
      if (err instanceof LeanCallError && err.code === grpcStatus.INVALID_ARGUMENT) throw err;
      if (Date.now() >= deadline) throw err;
      await sleep(Math.min(backoff.next(), Math.max(0, deadline - Date.now())));
      if (Date.now() >= deadline) throw err;
    }
  }
}
