/**
 * A strict fast path for the HTTP/1.1 message heads a sidecar sees nearly all the time: a whole
 * head in one read, HTTP/1.1, `content-length` framing (or no body), plain header fields. Parsing
 * those in JavaScript skips the llhttp binding's per-message cost (a C++ round trip per callback,
 * a native string per header name and value, a copied buffer per body piece), which measured
 * ~1.5 µs per response against ~0.7 µs here.
 *
 * It never decides a message is invalid: anything outside the subset — chunked or other
 * transfer codings, a missing length on a response, 1xx/204/304, HEAD, CONNECT, `Upgrade`,
 * `Expect`, HTTP/1.0, obs-fold, a bare CR or LF, a control character, a repeated
 * `content-length`, a repeated or listed request `host`, a head over 16 KiB or split across reads — returns `undefined`, and the
 * caller hands the message, from its first byte, to llhttp, which accepts or rejects it as it
 * always did. So the fast path accepts a subset of what llhttp accepts, with the same meaning
 * (RFC 9112 §2–§6); `h1-fast.test.ts` checks both against a table of messages.
 */

/** The largest head taken here; larger ones go to llhttp (Node's default limit is 16 KiB). */
export const MAX_FAST_HEAD = 16 * 1024;

/** RFC 9110 §5.6.2 tchar. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TCHAR[c.charCodeAt(0)] = 1;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/** Header fields by lower-case name, repeated ones combined (see `addHeader`). */
export type HeaderMap = Record<string, string | string[]>;

/**
 * Adds one field to a header map: a repeated `set-cookie` becomes a list, repeated `cookie`
 * values are joined with `; ` (RFC 9113 §8.2.3), any other repeated field with `, ` (RFC 9110 §5.3).
 */
export function addHeader(h: HeaderMap, k: string, v: string): void {
  const cur = h[k];
  if (cur === undefined) h[k] = v;
  else if (Array.isArray(cur)) cur.push(v);
  else h[k] = k === 'set-cookie' ? [cur, v] : `${cur}${k === 'cookie' ? '; ' : ', '}${v}`;
}

/** What both heads carry. */
interface FastHead {
  /** Offset just past the head's final CRLF CRLF. */
  end: number;
  /** The fields by lower-case name (for a response without the `skip` names). */
  headers: HeaderMap;
  /** The body's length (0 when the message has none). */
  contentLength: number;
  /** HTTP/1.1 persistence: no `close` connection option. */
  keepAlive: boolean;
}
export interface FastRequestHead extends FastHead {
  method: string;
  url: string;
  /** `[name, value, ...]` as received (names in their case, values without surrounding whitespace), as llhttp reports them. */
  rawHeaders: string[];
}
export interface FastResponseHead extends FastHead {
  status: number;
}

/** Methods taken here: llhttp's, minus CONNECT (tunnels go to llhttp and the upgrade path). */
let methods: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'PATCH']);
/** Narrows the request methods to those llhttp knows (`METHODS` from the binding). */
export function setFastMethods(known: readonly string[]): void {
  methods = new Set(known.filter((m) => m !== 'CONNECT'));
}

/**
 * Header fields from `s` (the head as latin1, from just after the start line's CRLF to the
 * blank line), added to `headers` (but not the names in `skip`) and appended to `raw`. Returns
 * the framing facts or undefined when a field is not plain (see above).
 */
function fields(s: string, from: number, headers: HeaderMap, raw: string[] | undefined, skip: ReadonlySet<string> | undefined, request: boolean): { contentLength: number; keepAlive: boolean } | undefined {
  let contentLength = -1;
  let keepAlive = true;
  let hostSeen = false;
  let pos = from;
  const end = s.length;
  while (pos < end) {
    let eol = s.indexOf('\r\n', pos);
    if (eol < 0) eol = end;
    // name: 1*tchar, directly followed by ':' (no whitespace before the colon, RFC 9112 §5.1)
    let p = pos;
    while (p < eol) {
      const c = s.charCodeAt(p);
      if (c >= 128 || TCHAR[c] !== 1) break;
      p++;
    }
    if (p === pos || s.charCodeAt(p) !== 58) return undefined;
    const nameEnd = p;
    // value: OWS field-value OWS; field-value chars are VCHAR, SP, HTAB, obs-text
    let v0 = p + 1;
    while (v0 < eol && (s.charCodeAt(v0) === 32 || s.charCodeAt(v0) === 9)) v0++;
    let v1 = eol;
    while (v1 > v0 && (s.charCodeAt(v1 - 1) === 32 || s.charCodeAt(v1 - 1) === 9)) v1--;
    for (let q = v0; q < v1; q++) {
      const c = s.charCodeAt(q);
      if ((c < 32 && c !== 9) || c === 127) return undefined;
    }
    const name = s.slice(pos, nameEnd);
    const value = s.slice(v0, v1);
    const lower = name.toLowerCase();
    const len = nameEnd - pos;
    // Only a few names change framing; compare by length first.
    if (len === 14 || len === 17 || len === 10 || len === 7 || len === 6 || len === 4) {
      if (lower === 'host') {
        // A second Host field or a list of hosts: llhttp's path rejects the request (h1-strict.ts).
        if (request && (hostSeen || value.includes(','))) return undefined;
        hostSeen = true;
      } else if (lower === 'content-length') {
        if (contentLength >= 0 || value.length === 0 || value.length > 15) return undefined;
        for (let q = 0; q < value.length; q++) {
          const c = value.charCodeAt(q);
          if (c < 48 || c > 57) return undefined;
        }
        contentLength = Number(value);
      } else if (lower === 'transfer-encoding' || lower === 'upgrade' || (request && lower === 'expect')) {
        return undefined;
      } else if (lower === 'connection') {
        for (const t of value.split(',')) {
          const o = t.trim().toLowerCase();
          if (o === 'close') keepAlive = false;
          else if (o === 'upgrade') return undefined;
        }
      }
    }
    raw?.push(name, value);
    if (!skip?.has(lower)) addHeader(headers, lower, value);
    pos = eol + 2;
  }
  // An HTTP/1.1 request without Host: llhttp's path answers 400 (h1-strict.ts).
  if (request && !hostSeen) return undefined;
  return { contentLength, keepAlive };
}

/** The head ending in `b` at or after `start`, as latin1 text without its blank line; undefined when not whole here. */
function headText(b: Buffer, start: number): { s: string; end: number } | undefined {
  const i = b.indexOf(CRLFCRLF, start);
  if (i < 0 || i - start > MAX_FAST_HEAD) return undefined;
  return { s: b.toString('latin1', start, i + 2), end: i + 4 };
}

/** A request head at `start` of `b`, or undefined (llhttp takes the message). */
export function parseRequestHead(b: Buffer, start: number): FastRequestHead | undefined {
  const h = headText(b, start);
  if (!h) return undefined;
  const s = h.s;
  const eol = s.indexOf('\r\n');
  const sp1 = s.indexOf(' ');
  if (sp1 <= 0 || sp1 > eol) return undefined;
  const sp2 = s.indexOf(' ', sp1 + 1);
  // request-line = method SP request-target SP HTTP/1.1 (RFC 9112 §3)
  if (sp2 !== eol - 9 || sp2 === sp1 + 1 || s.slice(sp2 + 1, eol) !== 'HTTP/1.1') return undefined;
  const method = s.slice(0, sp1);
  if (!methods.has(method)) return undefined;
  for (let q = sp1 + 1; q < sp2; q++) {
    const c = s.charCodeAt(q);
    if (c <= 32 || c >= 127) return undefined;
  }
  const raw: string[] = [];
  const headers: HeaderMap = {};
  const f = fields(s, eol + 2, headers, raw, undefined, true);
  if (!f) return undefined;
  return { method, url: s.slice(sp1 + 1, sp2), headers, rawHeaders: raw, contentLength: f.contentLength < 0 ? 0 : f.contentLength, keepAlive: f.keepAlive, end: h.end };
}

/**
 * A response head at `start` of `b` (its fields without the names in `skip`), or undefined
 * (llhttp takes the message). Only final
 * responses with a body of known length: 1xx, 204 and 304 (no body by definition), and responses
 * framed by chunking or by the connection's close, go to llhttp. A response to HEAD must not
 * come here either: the caller knows the request, this function does not.
 */
export function parseResponseHead(b: Buffer, start: number, skip?: ReadonlySet<string>): FastResponseHead | undefined {
  const h = headText(b, start);
  if (!h) return undefined;
  const s = h.s;
  const eol = s.indexOf('\r\n');
  // status-line = HTTP/1.1 SP 3DIGIT SP [ reason-phrase ] (RFC 9112 §4)
  if (eol < 12 || !s.startsWith('HTTP/1.1 ') || s.charCodeAt(12) !== 32) return undefined;
  let status = 0;
  for (let q = 9; q < 12; q++) {
    const c = s.charCodeAt(q);
    if (c < 48 || c > 57) return undefined;
    status = status * 10 + (c - 48);
  }
  if (status < 200 || status === 204 || status === 304 || status > 599) return undefined;
  for (let q = 13; q < eol; q++) {
    const c = s.charCodeAt(q);
    if ((c < 32 && c !== 9) || c === 127) return undefined;
  }
  const headers: HeaderMap = {};
  const f = fields(s, eol + 2, headers, undefined, skip, false);
  if (!f || f.contentLength < 0) return undefined;
  return { status, headers, contentLength: f.contentLength, keepAlive: f.keepAlive, end: h.end };
}
