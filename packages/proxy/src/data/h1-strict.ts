/**
 * Request framing rules that llhttp (and so `node:http`) leaves to the application, checked on a
 * request head before anything of it goes upstream. A proxy that forwards a message whose length
 * it and the upstream could read differently is how requests are smuggled, so these answer 400
 * and close, as nginx does (RFC 9112 §3.2, §6.1, §6.3):
 *
 * - exactly one `Host` field with one value (a second field, or a list, is ambiguous about which
 *   virtual host — and so which route and which upstream — the request is for); none at all in
 *   an HTTP/1.1 request is a 400 too (§3.2: "A server MUST respond with a 400 … to any HTTP/1.1
 *   request message that lacks a Host header field"), even in absolute-form; HTTP/1.0 may omit it;
 * - `Transfer-Encoding` only in HTTP/1.1, and with `chunked` as its final coding (any other final
 *   coding leaves the body's end unknown; llhttp rejects some such heads only after they were
 *   reported, which the servers handle by not dispatching a request until its read is parsed).
 *
 * Content-Length and Transfer-Encoding together, repeated or malformed Content-Length, and
 * malformed chunks are llhttp's to reject (it does, strictly); `smuggling.test.ts` holds the
 * whole table for both servers.
 */
export function requestFramingError(rawHeaders: readonly string[], httpVersionMinor: number): string | undefined {
  let hosts = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (++hosts > 1) return 'more than one Host field';
      if (rawHeaders[i + 1]!.includes(',')) return 'a Host field with several values';
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (httpVersionMinor < 1) return 'Transfer-Encoding in an HTTP/1.0 request';
      const v = rawHeaders[i + 1]!;
      const last = v.slice(v.lastIndexOf(',') + 1).trim().toLowerCase();
      if (last !== 'chunked') return 'Transfer-Encoding whose final coding is not chunked';
    }
  }
  if (hosts === 0 && httpVersionMinor >= 1) return 'no Host field in an HTTP/1.1 request';
  return undefined;
}
