import { describe, expect, it } from '@jest/globals';
import { parseRequestHead, parseResponseHead, type FastRequestHead, type FastResponseHead } from './h1-fast.js';
import { HTTPParser, METHODS, toHeaders } from './lean-http.js';

// The fast path must take only what llhttp takes, with the same meaning. Every row is parsed by
// both: `fast` says whether the fast path takes it; when it does, llhttp must agree on every
// field; when llhttp rejects a message, the fast path must have left it alone.

interface Llhttp {
  ok: boolean;
  method?: number;
  url?: string;
  status?: number;
  rawHeaders?: string[];
  keepAlive?: boolean;
  body?: string;
}

function llhttp(kind: 'request' | 'response', text: string): Llhttp {
  const p = new HTTPParser();
  p.initialize(kind === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {});
  const out: Llhttp = { ok: false };
  let raw: string[] = [];
  let url = '';
  const body: Buffer[] = [];
  let complete = false;
  p[HTTPParser.kOnHeaders] = (h: string[], u: string) => {
    raw.push(...h);
    url += u;
  };
  p[HTTPParser.kOnHeadersComplete] = (_maj: number, _min: number, h: string[] | undefined, method: number, u: string | undefined, status: number, _msg: string, _upg: boolean, keepAlive: boolean) => {
    raw = h ? [...raw, ...h] : raw;
    Object.assign(out, { rawHeaders: raw, keepAlive, url: url + (u ?? ''), status, method });
    return 0;
  };
  p[HTTPParser.kOnBody] = (b: Buffer) => body.push(b);
  p[HTTPParser.kOnMessageComplete] = () => {
    complete = true;
  };
  const r = p.execute(Buffer.from(text, 'latin1'));
  out.ok = typeof r === 'number' && complete;
  out.body = Buffer.concat(body).toString('latin1');
  return out;
}

const CRLF = '\r\n';
const req = (...lines: string[]) => lines.join(CRLF) + CRLF + CRLF;

const requests: [name: string, text: string, fast: boolean][] = [
  ['simple GET', req('GET / HTTP/1.1', 'Host: bench'), true],
  ['headers with OWS and mixed case', req('GET /a?b=c HTTP/1.1', 'Host: svc', 'X-A:   spaced  ', 'x-b:\tv', 'Accept: */*'), true],
  ['body by content-length', req('POST /p HTTP/1.1', 'host: h', 'content-length: 5') + 'hello', true],
  ['zero length body', req('PUT /p HTTP/1.1', 'host: h', 'Content-Length: 0'), true],
  ['connection close', req('GET / HTTP/1.1', 'host: h', 'Connection: close'), true],
  ['connection keep-alive, te', req('GET / HTTP/1.1', 'host: h', 'connection: keep-alive, TE', 'te: trailers'), true],
  ['repeated header', req('GET / HTTP/1.1', 'host: h', 'cookie: a=1', 'cookie: b=2'), true],
  ['obs-text in a value', req('GET / HTTP/1.1', 'host: h', 'x-name: caf\xe9'), true],
  ['empty value', req('GET / HTTP/1.1', 'host: h', 'x-empty:'), true],
  ['absolute-form target', req('GET http://reviews/x HTTP/1.1', 'host: reviews'), true],
  ['HEAD', req('HEAD /h HTTP/1.1', 'host: h'), true],
  ['chunked body → llhttp', req('POST / HTTP/1.1', 'host: h', 'transfer-encoding: chunked') + '5\r\nhello\r\n0\r\n\r\n', false],
  ['HTTP/1.0 → llhttp', req('GET / HTTP/1.0', 'host: h'), false],
  ['upgrade → llhttp', req('GET /ws HTTP/1.1', 'host: h', 'connection: upgrade', 'upgrade: websocket'), false],
  ['expect → llhttp', req('POST / HTTP/1.1', 'host: h', 'expect: 100-continue', 'content-length: 1') + 'x', false],
  ['CONNECT → llhttp', req('CONNECT h:443 HTTP/1.1', 'host: h:443'), false],
  ['unknown method → llhttp', req('BREW /pot HTTP/1.1', 'host: h'), false],
  ['obs-fold → llhttp', req('GET / HTTP/1.1', 'host: h', 'x-a: one', ' two'), false],
  ['space before colon → llhttp', req('GET / HTTP/1.1', 'host : h'), false],
  ['bare LF inside a value → llhttp', req('GET / HTTP/1.1', 'host: h', 'x-a: a\nb'), false],
  ['bare CR inside a value → llhttp', req('GET / HTTP/1.1', 'host: h', 'x-a: a\rb'), false],
  ['NUL in a value → llhttp', req('GET / HTTP/1.1', 'host: h', 'x-a: a\0b'), false],
  ['two content-lengths → llhttp', req('POST / HTTP/1.1', 'host: h', 'content-length: 1', 'content-length: 1') + 'x', false],
  ['content-length and chunked → llhttp', req('POST / HTTP/1.1', 'host: h', 'content-length: 3', 'transfer-encoding: chunked') + '0\r\n\r\n', false],
  ['signed content-length → llhttp', req('POST / HTTP/1.1', 'host: h', 'content-length: +1') + 'x', false],
  ['space in target → llhttp', req('GET /a b HTTP/1.1', 'host: h'), false],
  ['control char in target → llhttp', req('GET /a\x01b HTTP/1.1', 'host: h'), false],
  ['lower-case version → llhttp', req('GET / http/1.1', 'host: h'), false],
  ['two spaces after method → llhttp', req('GET  / HTTP/1.1', 'host: h'), false],
  ['no host → llhttp (which answers 400, h1-strict.ts)', req('GET / HTTP/1.1', 'x-a: b'), false],
  ['absolute-form without host → llhttp', req('GET http://reviews/x HTTP/1.1'), false],
  ['head not complete → llhttp', 'GET / HTTP/1.1\r\nhost: h\r\n', false],
  ['garbage → llhttp', 'NOT HTTP AT ALL\r\n\r\n', false],
  ['head over 16 KiB → llhttp', req('GET / HTTP/1.1', 'host: h', `x-big: ${'a'.repeat(17 * 1024)}`), false],
];

const res = (...lines: string[]) => lines.join(CRLF) + CRLF + CRLF;
const responses: [name: string, text: string, fast: boolean][] = [
  ['nginx 200', res('HTTP/1.1 200 OK', 'Server: nginx', 'Date: Fri, 27 Nov 2026 04:30:00 GMT', 'Content-Type: text/plain', 'Content-Length: 5', 'Connection: keep-alive') + 'hello', true],
  ['404 empty', res('HTTP/1.1 404 Not Found', 'content-length: 0'), true],
  ['503 with close', res('HTTP/1.1 503 Service Unavailable', 'content-length: 2', 'connection: close') + 'no', true],
  ['empty reason', res('HTTP/1.1 200 ', 'content-length: 0'), true],
  ['set-cookie twice', res('HTTP/1.1 200 OK', 'set-cookie: a=1', 'set-cookie: b=2', 'content-length: 0'), true],
  ['no reason, no space → llhttp', res('HTTP/1.1 200', 'content-length: 0'), false],
  ['chunked → llhttp', res('HTTP/1.1 200 OK', 'transfer-encoding: chunked') + '0\r\n\r\n', false],
  ['until close → llhttp', res('HTTP/1.1 200 OK', 'content-type: text/plain'), false],
  ['100 continue → llhttp', res('HTTP/1.1 100 Continue'), false],
  ['204 → llhttp', res('HTTP/1.1 204 No Content'), false],
  ['304 → llhttp', res('HTTP/1.1 304 Not Modified', 'content-length: 10'), false],
  ['HTTP/1.0 → llhttp', res('HTTP/1.0 200 OK', 'content-length: 0'), false],
  ['status 2 digits → llhttp', res('HTTP/1.1 20 OK', 'content-length: 0'), false],
  ['status 600 → llhttp', res('HTTP/1.1 600 Odd', 'content-length: 0'), false],
  ['connection upgrade → llhttp', res('HTTP/1.1 200 OK', 'connection: upgrade', 'content-length: 0'), false],
  ['control char in reason → llhttp', res('HTTP/1.1 200 O\x01K', 'content-length: 0'), false],
  ['bad header name → llhttp', res('HTTP/1.1 200 OK', 'bad name: x', 'content-length: 0'), false],
  ['two content-lengths → llhttp', res('HTTP/1.1 200 OK', 'content-length: 1', 'content-length: 2') + 'x', false],
];

function expectSame(kind: 'request' | 'response', fast: FastRequestHead | FastResponseHead, ll: Llhttp, text: string): void {
  expect(ll.ok).toBe(true);
  expect(fast.headers).toEqual(toHeaders(ll.rawHeaders!));
  expect(fast.keepAlive).toBe(ll.keepAlive);
  if (kind === 'request') {
    const f = fast as FastRequestHead;
    expect(f.rawHeaders).toEqual(ll.rawHeaders);
    expect(f.url).toBe(ll.url);
    expect(f.method).toBe(METHODS[Number(ll.method)]);
  } else expect((fast as FastResponseHead).status).toBe(ll.status);
  // The body the fast path would count off is the body llhttp reports.
  const bytes = Buffer.from(text, 'latin1');
  expect(bytes.subarray(fast.end, fast.end + fast.contentLength).toString('latin1')).toBe(ll.body);
  expect(fast.end + fast.contentLength).toBe(bytes.length);
}

describe('HTTP/1.1 fast path heads', () => {
  it.each(requests)('request: %s', (_name, text, fast) => {
    const f = parseRequestHead(Buffer.from(text, 'latin1'), 0);
    const ll = llhttp('request', text);
    if (!fast) {
      expect(f).toBeUndefined();
      return;
    }
    expect(f).toBeDefined();
    expectSame('request', f!, ll, text);
  });

  it.each(responses)('response: %s', (_name, text, fast) => {
    const f = parseResponseHead(Buffer.from(text, 'latin1'), 0);
    const ll = llhttp('response', text);
    if (!fast) {
      expect(f).toBeUndefined();
      return;
    }
    expect(f).toBeDefined();
    expectSame('response', f!, ll, text);
  });

  it('parses heads at an offset, as pipelined messages arrive', () => {
    const one = req('GET /1 HTTP/1.1', 'host: h');
    const two = req('POST /2 HTTP/1.1', 'host: h', 'content-length: 3') + 'abc';
    const b = Buffer.from(one + two, 'latin1');
    const a = parseRequestHead(b, 0)!;
    expect(a.url).toBe('/1');
    const c = parseRequestHead(b, a.end)!;
    expect([c.method, c.url, c.contentLength, c.end + c.contentLength]).toEqual(['POST', '/2', 3, b.length]);
  });

  it('combines repeated fields and leaves out the names it is told to skip', () => {
    const text = res('HTTP/1.1 200 OK', 'Set-Cookie: a=1', 'set-cookie: b=2', 'Vary: a', 'vary: b', 'Connection: keep-alive', 'Keep-Alive: timeout=5', 'content-length: 0');
    const h = parseResponseHead(Buffer.from(text, 'latin1'), 0, new Set(['connection', 'keep-alive']));
    expect(h?.headers).toEqual({ 'set-cookie': ['a=1', 'b=2'], vary: 'a, b', 'content-length': '0' });
    const r = parseRequestHead(Buffer.from(req('GET / HTTP/1.1', 'Host: h', 'Cookie: a=1', 'cookie: b=2'), 'latin1'), 0);
    expect(r?.headers).toEqual({ host: 'h', cookie: 'a=1; b=2' });
  });

  it('every row llhttp rejects is left to llhttp', () => {
    for (const [name, text] of requests) if (!llhttp('request', text).ok) expect([name, parseRequestHead(Buffer.from(text, 'latin1'), 0)]).toEqual([name, undefined]);
    for (const [name, text] of responses) if (!llhttp('response', text).ok) expect([name, parseResponseHead(Buffer.from(text, 'latin1'), 0)]).toEqual([name, undefined]);
  });
});
