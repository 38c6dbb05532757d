/**
 * A deterministic tar writer for image layers (POSIX ustar, pax records for long names).
 * Same entries in → same bytes out: entries are sorted by path, every missing parent
 * directory is added, and mtime, owner and names are fixed. Layers never need a reader here
 * (containerd unpacks them), so there is none.
 */

/** One file system object in a layer. Paths are absolute-less (`usr/bin/node`). */
export interface LayerEntry {
  path: string;
  /** 'file' (default when `data` is set), 'dir', or 'symlink' (with `target`). */
  type?: 'file' | 'dir' | 'symlink';
  data?: Buffer;
  target?: string;
  /** Default 0o644 for files, 0o755 for directories, 0o777 for symlinks. */
  mode?: number;
  /** Owner; default root (0:0). */
  uid?: number;
  gid?: number;
}

/** Every entry's mtime: 2000-01-01T00:00:00Z (a constant, so rebuilding gives the same digest). */
export const LAYER_MTIME = 946_684_800;

const BLOCK = 512;
const octal = (n: number, width: number) => n.toString(8).padStart(width - 1, '0') + '\0';

function normalise(path: string): string {
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0 || parts.includes('..')) throw new Error(`layer path ${JSON.stringify(path)} is not a relative path inside the image`);
  return parts.join('/');
}

function header(name: string, e: LayerEntry, size: number, type: string): Buffer {
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode ?? (type === '5' ? 0o755 : type === '2' ? 0o777 : 0o644), 8), 100, 'ascii');
  h.write(octal(e.uid ?? 0, 8), 108, 'ascii');
  h.write(octal(e.gid ?? 0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(LAYER_MTIME, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write(type, 156, 'ascii');
  if (e.target) h.write(e.target, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

function pax(name: string, key: string, value: string): Buffer[] {
  const rec = ` ${key}=${value}\n`;
  let len = rec.length + 1;
  while (`${len}${rec}`.length !== len) len = `${len}${rec}`.length;
  const data = Buffer.from(`${len}${rec}`);
  return [header(`PaxHeaders/${name.slice(0, 80)}`, { path: name }, data.length, 'x'), data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK)];
}

/** The layer's tar bytes (uncompressed). Duplicate paths are an error. */
export function writeLayer(entries: readonly LayerEntry[]): Buffer {
  const byPath = new Map<string, LayerEntry>();
  for (const e of entries) {
    const path = normalise(e.path);
    if (byPath.has(path)) throw new Error(`layer path ${path} given twice`);
    byPath.set(path, e);
    // Parent directories first, owned by root, unless given explicitly.
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!byPath.has(dir) && !entries.some((x) => normalise(x.path) === dir)) byPath.set(dir, { path: dir, type: 'dir' });
    }
  }
  const out: Buffer[] = [];
  for (const path of [...byPath.keys()].sort()) {
    const e = byPath.get(path)!;
    const type = e.type ?? (e.data ? 'file' : 'dir');
    const flag = type === 'dir' ? '5' : type === 'symlink' ? '2' : '0';
    const name = type === 'dir' ? `${path}/` : path;
    if (Buffer.byteLength(name) > 100) out.push(...pax(name, 'path', name));
    if (e.target && Buffer.byteLength(e.target) > 100) out.push(...pax(name, 'linkpath', e.target));
    const data = type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    out.push(header(name, e, data.length, flag), data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  out.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(out);
}
