/**
 * Just enough ASN.1 DER (ITU-T X.690) to write X.509 certificates and PKCS#10 requests and to
 * read them back: definite lengths only, one tag byte (every tag X.509 uses is < 31). Pure.
 */

/** Thrown when bytes are not the DER expected; `path` says where (e.g. `certificationRequestInfo.subjectPKInfo`). */
export class DerError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'DerError';
  }
}

// --- writing -------------------------------------------------------------------------------
function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
export const tlv = (tag: number, ...content: Buffer[]): Buffer => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
export const seq = (...c: Buffer[]) => tlv(0x30, ...c);
export const set = (...c: Buffer[]) => tlv(0x31, ...c);
/** `[n] EXPLICIT` (constructed, context-specific). */
export const explicit = (n: number, ...c: Buffer[]) => tlv(0xa0 + n, ...c);
export const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
export const octets = (b: Buffer) => tlv(0x04, b);
export const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
export const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
export const nul = () => Buffer.from([0x05, 0x00]);

/** A non-negative INTEGER from big-endian bytes (leading zeros trimmed, a 0 added when the high bit is set). */
export function integer(b: Buffer | number): Buffer {
  if (typeof b === 'number') {
    const bytes: number[] = [];
    for (let v = b; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    b = Buffer.from(bytes.length ? bytes : [0]);
  }
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

export function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a! * 40 + b!];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** UTCTime until 2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). Sub-second parts are dropped. */
export function time(d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}

/** The DER inside the first PEM block labelled `label`; undefined when there is none. */
export function unpem(label: string, text: string): Buffer | undefined {
  const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]*)-----END ${label}-----`).exec(text);
  return m ? Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64') : undefined;
}

/** Every PEM block labelled `label` in `text`, each re-emitted in canonical form. */
export function splitPem(label: string, text: string): string[] {
  const re = new RegExp(`-----BEGIN ${label}-----[A-Za-z0-9+/=\\s]*?-----END ${label}-----`, 'g');
  return [...text.matchAll(re)].map((m) => pem(label, unpem(label, m[0])!));
}

// --- reading -------------------------------------------------------------------------------
/** One decoded TLV: `raw` is the whole element (tag, length, content), `content` its value. */
export interface DerNode {
  tag: number;
  raw: Buffer;
  content: Buffer;
}

/** Reads one TLV at `offset` of `buf`; `path` names it in errors. */
export function readTlv(buf: Buffer, offset: number, path: string): DerNode {
  if (offset + 2 > buf.length) throw new DerError(path, 'truncated (no tag and length)');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError(path, `multi-byte tag 0x${tag.toString(16)} not supported`);
  let l = buf[offset + 1]!;
  let head = 2;
  if (l === 0x80) throw new DerError(path, 'indefinite length is not DER');
  if (l > 0x80) {
    const n = l & 0x7f;
    if (n > 4) throw new DerError(path, `length of ${n} bytes is too large`);
    if (offset + 2 + n > buf.length) throw new DerError(path, 'truncated length');
    l = 0;
    for (let i = 0; i < n; i++) l = l * 256 + buf[offset + 2 + i]!;
    head += n;
  }
  const end = offset + head + l;
  if (end > buf.length) throw new DerError(path, `length ${l} runs past the end of the data`);
  return { tag, raw: buf.subarray(offset, end), content: buf.subarray(offset + head, end) };
}

/** Decodes `buf` as exactly one element with tag `tag`. */
export function readOne(buf: Buffer, tag: number, path: string): DerNode {
  const n = readTlv(buf, 0, path);
  if (n.tag !== tag) throw new DerError(path, `expected tag 0x${tag.toString(16)}, found 0x${n.tag.toString(16)}`);
  if (n.raw.length !== buf.length) throw new DerError(path, `${buf.length - n.raw.length} trailing bytes`);
  return n;
}

/** The elements inside a constructed node (SEQUENCE, SET, [n]). */
export function children(node: DerNode, path: string): DerNode[] {
  const out: DerNode[] = [];
  for (let off = 0; off < node.content.length; ) {
    const c = readTlv(node.content, off, `${path}[${out.length}]`);
    out.push(c);
    off += c.raw.length;
  }
  return out;
}

/** The dotted form of an OBJECT IDENTIFIER node. */
export function readOid(node: DerNode, path: string): string {
  if (node.tag !== 0x06) throw new DerError(path, `expected an OBJECT IDENTIFIER, found tag 0x${node.tag.toString(16)}`);
  const b = node.content;
  if (b.length === 0) throw new DerError(path, 'empty OBJECT IDENTIFIER');
  const first = b[0]!;
  const parts = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

/** The bytes of a BIT STRING with no unused bits (keys, signatures). */
export function readBits(node: DerNode, path: string): Buffer {
  if (node.tag !== 0x03) throw new DerError(path, `expected a BIT STRING, found tag 0x${node.tag.toString(16)}`);
  if (node.content.length < 1 || node.content[0] !== 0) throw new DerError(path, 'BIT STRING with unused bits');
  return node.content.subarray(1);
}
