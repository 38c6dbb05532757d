import { PackageError } from './errors.js';

/**
 * A small tar codec (POSIX ustar, with pax extended headers for long paths), written for proxy
 * packages: the writer is deterministic (entries sorted, fixed mtime/uid/gid/mode), the reader
 * refuses anything that could write outside the target directory or is not a plain file or
 * directory. No dependency; pure functions over buffers.
 */

/** One archive entry. `type` and `linkname` exist so tests can write hostile archives. */
export interface TarEntry {
  path: string;
  data?: Buffer;
  /** '0' file (default), '5' directory, or anything else (links, devices) for tests. */
  type?: string;
  linkname?: string;
  mode?: number;
}

const BLOCK = 512;
/** Every entry's mtime: 2000-01-01T00:00:00Z, so the same files give the same bytes. */
export const FIXED_MTIME = 946_684_800;

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(path: string, size: number, type: string, mode: number, linkname = ''): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(path, 0, 100, 'utf8');
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(FIXED_MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  h.write(linkname, 157, 100, 'utf8');
  h.write('ustar\u000000', 257, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function pad(n: number): Buffer {
  const r = n % BLOCK;
  return Buffer.alloc(r === 0 ? 0 : BLOCK - r);
}

/** A pax record `"<len> path=<value>\n"`, whose length counts itself. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Writes a tar archive; entries are sorted by path so the bytes depend only on the contents. */
export function writeTar(entries: readonly TarEntry[]): Buffer {
  const out: Buffer[] = [];
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const type = e.type ?? '0';
    const data = type === '0' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    const mode = e.mode ?? (type === '5' ? 0o755 : 0o644);
    let name = e.path;
    if (Buffer.byteLength(name) > 100) {
      const pax = Buffer.from(paxRecord('path', name));
      out.push(header('PaxHeader', pax.length, 'x', 0o644), pax, pad(pax.length));
      name = name.slice(0, 99);
    }
    out.push(header(name, data.length, type, mode, e.linkname), data, pad(data.length));
  }
  out.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(out);
}

export interface ReadLimits {
  /** Sum of all file sizes, bytes. */
  maxTotalBytes: number;
  maxEntries?: number;
}

/** A file read from an archive, at a path that is safe to join under a directory. */
export interface TarFile {
  path: string;
  data: Buffer;
  /** Whether any execute bit was set (kept as 0o755 on unpack; everything else is 0o644). */
  executable: boolean;
}

function field(h: Buffer, off: number, len: number): string {
  const s = h.subarray(off, off + len);
  const end = s.indexOf(0);
  return s.subarray(0, end < 0 ? len : end).toString('utf8');
}

function num(h: Buffer, off: number, len: number, what: string): number {
  if (h[off]! & 0x80) throw new PackageError('UnsafeArchive', `${what}: base-256 numbers are not accepted`);
  const s = field(h, off, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new PackageError('UnsafeArchive', `${what}: not an octal number`);
  return parseInt(s, 8);
}

/**
 * Checks a path from an archive and returns it normalised (no `./`, no trailing `/`). Refused:
 * absolute paths, `..` segments, backslashes, NUL, empty names.
 */
export function safePath(p: string): string {
  if (p.startsWith('/') || /^[a-zA-Z]:/.test(p)) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(p)}: absolute path`);
  if (p.includes('\\') || p.includes('\0')) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(p)}: backslash or NUL in path`);
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.some((s) => s === '..')) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(p)}: ".." in path`);
  if (parts.length === 0) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(p)}: empty path`);
  return parts.join('/');
}

function paxPath(data: Buffer): string | undefined {
  let path: string | undefined;
  let i = 0;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp < 0) break;
    const len = parseInt(data.subarray(i, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) throw new PackageError('UnsafeArchive', 'malformed pax header');
    const rec = data.subarray(sp + 1, i + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    const key = rec.slice(0, eq);
    if (key === 'path') path = rec.slice(eq + 1);
    else if (key === 'linkpath' || key === 'size') throw new PackageError('UnsafeArchive', `pax ${key} is not accepted`);
    i += len;
  }
  return path;
}

/**
 * Reads a whole tar archive. Only regular files and directories are accepted: symlinks,
 * hardlinks, devices, FIFOs and unknown types are refused (`UnsafeArchive`), as are unsafe paths
 * (see {@link safePath}), duplicate paths, bad checksums and truncation; contents over the limits
 * are refused as `TooLarge`. Directories are implied by the files' paths and not returned.
 */
export function readTar(buf: Buffer, limits: ReadLimits): TarFile[] {
  const files: TarFile[] = [];
  const seen = new Set<string>();
  let total = 0;
  let off = 0;
  let longPath: string | undefined;
  let entries = 0;
  for (;;) {
    if (off + BLOCK > buf.length) throw new PackageError('UnsafeArchive', 'truncated archive (no end-of-archive marker)');
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) break;
    if (++entries > (limits.maxEntries ?? 10_000)) throw new PackageError('TooLarge', `more than ${limits.maxEntries ?? 10_000} entries`);
    const stored = num(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== stored) throw new PackageError('UnsafeArchive', `entry at byte ${off}: bad header checksum`);
    const size = num(h, 124, 12, 'size');
    const type = String.fromCharCode(h[156]!) === '\0' ? '0' : String.fromCharCode(h[156]!);
    const prefix = field(h, 345, 155);
    const raw = longPath ?? (prefix ? `${prefix}/${field(h, 0, 100)}` : field(h, 0, 100));
    longPath = undefined;
    const dataStart = off + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > buf.length) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(raw)}: truncated data`);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (type === 'x') {
      if (size > 64 * 1024) throw new PackageError('UnsafeArchive', 'pax header too large');
      longPath = paxPath(buf.subarray(dataStart, dataEnd));
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing we use
    if (type === '1' || type === '2') throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(raw)}: ${type === '1' ? 'hard link' : 'symbolic link'} to ${JSON.stringify(field(h, 157, 100))} (links are not accepted)`);
    if (type === '5') {
      safePath(raw);
      continue;
    }
    if (type !== '0' && type !== '7') throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(raw)}: type ${JSON.stringify(type)} is not a regular file or directory`);
    const path = safePath(raw);
    if (seen.has(path)) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(path)}: duplicate path`);
    seen.add(path);
    total += size;
    if (total > limits.maxTotalBytes) throw new PackageError('TooLarge', `contents over ${limits.maxTotalBytes} bytes`);
    const mode = num(h, 100, 8, 'mode');
    files.push({ path, data: Buffer.from(buf.subarray(dataStart, dataEnd)), executable: (mode & 0o111) !== 0 });
  }
  // A file whose path is also a directory of another file cannot be unpacked: refuse it here.
  for (const f of files) {
    const parts = f.path.split('/');
    for (let i = 1; i < parts.length; i++) if (seen.has(parts.slice(0, i).join('/'))) throw new PackageError('UnsafeArchive', `entry ${JSON.stringify(f.path)}: a parent is a file`);
  }
  return files;
}
