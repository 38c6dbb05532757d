import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Counter, createLogger, createMetricsRegistry, type Logger, type Registry } from '@octo-mesh/runtime';
import { gunzipSync } from 'node:zlib';
import { MANIFEST_PATH, ManifestSchema } from './manifest.js';
import { readTar } from './tar.js';
import { sha256File } from './signing.js';

export const DEFAULT_REPOSITORY_PORT = 15018;

export interface RepositoryOptions {
  /** Where packages are stored, one file per digest: `<dir>/<sha256>.tgz` (+ `.json` metadata). */
  dir: string;
  host?: string;
  /** Default 15018; 0 picks a free port. */
  port?: number;
  /** Uploads over this many bytes get 413. Default 64 MiB. */
  maxBytes?: number;
  logger?: Logger;
  registry?: Registry;
}

/** One stored package in the listing. */
export interface RepositoryEntry {
  sha256: string;
  size: number;
  /** From the package's manifest when it could be read at upload (informational; clients verify). */
  version: string | null;
  url: string;
}

const SHA_PATH = /^\/packages\/([0-9a-f]{64})$/;

/**
 * The proxy package repository: a content-addressed HTTP store. `PUT /packages/<sha256>` stores
 * a body whose sha256 is the name (re-hashed while it streams in: mismatch → 400, over the cap →
 * 413; written to a temporary file and renamed, so a reader never sees half a package);
 * `GET /packages/<sha256>` serves it (with `Range`); `GET /packages` lists what is stored;
 * plus `/healthz`, `/readyz`, `/metrics`. A stored digest is immutable: a second PUT of the same
 * bytes is a no-op (200).
 */
export class PackageRepository {
  private server: Server | undefined;
  readonly logger: Logger;
  readonly registry: Registry;
  private readonly requests: Counter<'method' | 'code'>;
  private readonly rejected: Counter<'reason'>;
  port = 0;

  constructor(private readonly opts: RepositoryOptions) {
    this.logger = opts.logger ?? createLogger('package-repository');
    this.registry = opts.registry ?? createMetricsRegistry('package-repository');
    this.requests = new Counter({ name: 'octo_package_repository_requests_total', help: 'Requests by method and status code.', labelNames: ['method', 'code'], registers: [this.registry] });
    this.rejected = new Counter({ name: 'octo_package_repository_uploads_rejected_total', help: 'Uploads refused, by reason.', labelNames: ['reason'], registers: [this.registry] });
  }

  get url(): string {
    return `http://${this.opts.host ?? '127.0.0.1'}:${this.port}`;
  }

  async start(): Promise<number> {
    await mkdir(this.opts.dir, { recursive: true });
    this.server = createServer((req, res) => {
      res.on('finish', () => this.requests.inc({ method: req.method ?? '', code: String(res.statusCode) }));
      this.handle(req, res).catch((err: Error) => {
        this.logger.error('request failed', { method: req.method, url: req.url, error: err.stack });
        if (!res.headersSent) this.send(res, 500, { error: err.message });
        else res.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.opts.port ?? DEFAULT_REPOSITORY_PORT, this.opts.host ?? '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.logger.info('package repository listening', { port: this.port, dir: this.opts.dir });
    return this.port;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
    const text = typeof body === 'string' ? body : `${JSON.stringify(body, null, 2)}\n`;
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private file(sha: string): string {
    return join(this.opts.dir, `${sha}.tgz`);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://repo').pathname;
    if (path === '/healthz') return this.send(res, 200, 'ok\n', 'text/plain');
    if (path === '/readyz') return this.send(res, this.server?.listening ? 200 : 503, this.server?.listening ? 'ok\n' : 'not ready\n', 'text/plain');
    if (path === '/metrics') return this.send(res, 200, await this.registry.metrics(), this.registry.contentType);
    if (path === '/packages' && req.method === 'GET') return this.send(res, 200, { packages: await this.list() });
    const m = SHA_PATH.exec(path);
    if (!m) return this.send(res, 404, { error: `no route ${path}` });
    const sha = m[1]!;
    if (req.method === 'PUT') return this.put(sha, req, res);
    if (req.method === 'GET' || req.method === 'HEAD') return this.get(sha, req, res);
    return this.send(res, 405, { error: `${req.method} not allowed` });
  }

  private async put(sha: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const max = this.opts.maxBytes ?? 64 * 1024 * 1024;
    const announced = Number(req.headers['content-length'] ?? NaN);
    const refuse = (status: number, reason: string, message: string, extra: object = {}) => {
      this.rejected.inc({ reason });
      this.logger.warn('upload refused', { sha256: sha, reason, message });
      res.setHeader('connection', 'close');
      this.send(res, status, { error: message, reason, ...extra });
      req.resume();
    };
    if (announced > max) return refuse(413, 'TooLarge', `package is ${announced} bytes, the limit is ${max}`);
    const tmp = join(this.opts.dir, `.upload-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    const out = createWriteStream(tmp, { flags: 'wx' });
    let size = 0;
    let over = false;
    await new Promise<void>((resolve, reject) => {
      req.on('data', (c: Buffer) => {
        if (over) return;
        size += c.length;
        if (size > max) {
          over = true;
          req.unpipe(out);
          return;
        }
        hash.update(c);
        if (!out.write(c)) {
          req.pause();
          out.once('drain', () => req.resume());
        }
      });
      req.on('end', () => out.end(resolve));
      req.on('error', reject);
      out.on('error', reject);
    }).catch(async (err: Error) => {
      await rm(tmp, { force: true });
      throw err;
    });
    if (over) {
      await rm(tmp, { force: true });
      return refuse(413, 'TooLarge', `package over the limit of ${max} bytes`);
    }
    const actual = hash.digest('hex');
    if (actual !== sha) {
      await rm(tmp, { force: true });
      return refuse(400, 'DigestMismatch', `body sha256 is ${actual}, the path names ${sha}`, { expected: sha, actual });
    }
    const existed = await stat(this.file(sha)).then(
      () => true,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        return false;
      },
    );
    await rename(tmp, this.file(sha));
    await writeFile(join(this.opts.dir, `${sha}.json`), JSON.stringify({ version: await this.versionOf(sha) }));
    this.logger.info('package stored', { sha256: sha, size, existed });
    return this.send(res, existed ? 200 : 201, { sha256: sha, size, url: `${this.url}/packages/${sha}` });
  }

  /** The manifest's version, for the listing only (clients verify what they download themselves). */
  private async versionOf(sha: string): Promise<string | null> {
    try {
      const tar = gunzipSync(await readFile(this.file(sha)), { maxOutputLength: 512 * 1024 * 1024 });
      const manifest = readTar(tar, { maxTotalBytes: 512 * 1024 * 1024 }).find((f) => f.path === MANIFEST_PATH);
      return manifest ? ManifestSchema.parse(JSON.parse(manifest.data.toString('utf8'))).version : null;
    } catch (err) {
      this.logger.info('stored package has no readable manifest', { sha256: sha, error: (err as Error).message });
      return null;
    }
  }

  private async get(sha: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const file = this.file(sha);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return this.send(res, 404, { error: `no package ${sha}` });
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(String(req.headers.range ?? ''));
    let start = 0;
    let end = size - 1;
    if (req.headers.range) {
      if (!range) return this.send(res, 416, { error: 'unsupported range' });
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
      if (start >= size || start > end) {
        res.writeHead(416, { 'content-range': `bytes */${size}` });
        return void res.end();
      }
    }
    const headers = { 'content-type': 'application/gzip', 'content-length': end - start + 1, 'accept-ranges': 'bytes', etag: `"${sha}"` };
    if (req.headers.range) res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${size}` });
    else res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file, { start, end })
      .on('error', (err) => {
        this.logger.error('read failed', { sha256: sha, error: err.message });
        res.destroy(err);
      })
      .pipe(res);
  }

  async list(): Promise<RepositoryEntry[]> {
    const out: RepositoryEntry[] = [];
    for (const n of (await readdir(this.opts.dir)).sort()) {
      const m = /^([0-9a-f]{64})\.tgz$/.exec(n);
      if (!m) continue;
      const sha = m[1]!;
      const size = (await stat(join(this.opts.dir, n))).size;
      let version: string | null = null;
      try {
        version = (JSON.parse(await readFile(join(this.opts.dir, `${sha}.json`), 'utf8')) as { version: string | null }).version;
      } catch (err) {
        this.logger.debug('no metadata for package', { sha256: sha, error: (err as Error).message });
      }
      out.push({ sha256: sha, size, version, url: `${this.url}/packages/${sha}` });
    }
    return out;
  }
}

/** What `octoctl package push FILE` calls: uploads to the repository; returns where and what. */
export async function pushPackage(repoUrl: string, file: string): Promise<{ url: string; sha256: string }> {
  const sha256 = await sha256File(file);
  const url = `${repoUrl.replace(/\/+$/, '')}/packages/${sha256}`;
  const res = await fetch(url, { method: 'PUT', body: await readFile(file), headers: { 'content-type': 'application/gzip' } });
  if (!res.ok) throw new Error(`push ${file} to ${url}: HTTP ${res.status}: ${await res.text()}`);
  return { url, sha256 };
}
