import http2 from 'node:http2';
import type { HttpTimeouts } from '../model.js';
import { REASON_HEADER, grpcStatusFor } from './http-proxy.js';
import { deadline, type Deadline } from './timer-list.js';

/**
 * Connection and stream bounds of one downstream HTTP/2 session, from the listener's
 * HttpConnectionManager (Envoy's fields and semantics, defaults in the README's *Connection
 * hygiene*; 0 disables each):
 *
 * - `common_http_protocol_options.idle_timeout`: a session without an open stream for this long
 *   is closed (GOAWAY; nothing is in flight). Envoy: "the period in which there are no active
 *   requests or streams", independent of TCP-level activity (PING frames do not reset it).
 * - `common_http_protocol_options.max_connection_duration`: GOAWAY, the open streams finish, then
 *   the session closes (Envoy's drain sequence).
 * - `stream_idle_timeout`: a stream without a frame in either direction for this long ends
 *   (checked from `stream_idle_timeout` after the stream began: it ends 1×–2× the timeout after
 *   its last frame; Envoy's is exact).
 * - `common_http_protocol_options.max_stream_duration`: a stream open this long ends.
 *
 * A stream that ends so gets `408` with `x-octo-reason: stream-idle-timeout` /
 * `max-stream-duration` (a trailers-only gRPC error for gRPC requests) when no response head was
 * sent yet — as Envoy answers 408 for `stream_idle_timeout` — and is then reset (RST_STREAM, which
 * also tells a client still sending its body to stop, RFC 9113 §8.1); with a response under way
 * it is only reset. Either way the proxy's handling of that request sees its downstream go and
 * abandons the upstream attempt.
 */
export function boundH2Session(session: http2.ServerHttp2Session, t: HttpTimeouts): void {
  sessionTimeouts.set(session, t);
  const { idleMs, maxConnectionMs } = t;
  if (idleMs <= 0 && maxConnectionMs <= 0) return;
  const close = () => {
    if (!session.closed && !session.destroyed) session.close();
  };
  let open = 0;
  let idle: Deadline | undefined = idleMs > 0 ? deadline(idleMs, close) : undefined;
  const life = maxConnectionMs > 0 ? deadline(maxConnectionMs, close) : undefined;
  // One listener function per session, not a closure per stream ('close' comes once per stream).
  const onStreamClose = () => {
    if (--open === 0 && idleMs > 0 && !session.closed && !session.destroyed) idle = deadline(idleMs, close);
  };
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    open++;
    if (idle) {
      idle.cancel();
      idle = undefined;
    }
    stream.on('close', onStreamClose);
  });
  session.once('close', () => {
    idle?.cancel();
    life?.cancel();
  });
}

const sessionTimeouts = new WeakMap<http2.Http2Session, HttpTimeouts>();

/**
 * The stream bounds of one request on a session {@link boundH2Session} saw (`req` of the
 * compatibility API, before the request is handed to the data path).
 */
export function boundH2Stream(req: http2.Http2ServerRequest): void {
  const stream = req.stream;
  const t = sessionTimeouts.get(stream.session!);
  if (!t || (t.streamIdleMs <= 0 && t.maxStreamMs <= 0)) return;
  const grpc = String(req.headers['content-type'] ?? '').startsWith('application/grpc');
  const end = (reason: string) => endStream(req, grpc, reason);
  // Stream idleness in two steps, so that the streams that end sooner (nearly all) cost one entry
  // in a timer list and no Node timer refreshed on every frame: after `streamIdleMs` a stream
  // still open starts Node's activity timeout, which ends it once it has been idle that long — so
  // an idle stream ends between 1× and 2× `stream_idle_timeout` after its last frame.
  const idle = t.streamIdleMs > 0 ? deadline(t.streamIdleMs, () => stream.setTimeout(t.streamIdleMs, () => end('stream-idle-timeout'))) : undefined;
  const max = t.maxStreamMs > 0 ? deadline(t.maxStreamMs, () => end('max-stream-duration')) : undefined;
  if (idle || max)
    stream.on('close', () => {
      idle?.cancel();
      max?.cancel();
    });
}

function endStream(req: http2.Http2ServerRequest, grpc: boolean, reason: string): void {
  const stream = req.stream;
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(http2.constants.NGHTTP2_CANCEL);
    return;
  }
  // The data path's signal that the client went away (it abandons the upstream attempt and writes
  // nothing more); the answer below is then the stream's only one.
  req.emit('aborted');
  // The response ends the stream; the reset that follows (NO_ERROR) closes the request side too.
  const reset = () => {
    if (!stream.destroyed && !stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  };
  if (grpc) {
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatusFor(408)), 'grpc-message': reason, [REASON_HEADER]: reason },
      { endStream: true },
    );
    setImmediate(reset);
    return;
  }
  const text = `${reason}\n`;
  stream.respond({ ':status': 408, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text), [REASON_HEADER]: reason });
  stream.end(text, reset);
}
