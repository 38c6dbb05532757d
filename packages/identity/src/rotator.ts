/**
 * CertificateRotator: keeps one workload's certificate fresh (README, "Rotation on the workload
 * side"). First issuance with the bearer credential; renewals with the current certificate over
 * mTLS at a random point in 50–70 % of its lifetime; failures retried with exponential backoff
 * and jitter while the old certificate keeps serving until it expires. Each certificate is
 * published as files written atomically (temporary file, then rename), so a proxy watching the
 * SDS files never reads half a file.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Backoff, Counter, Gauge, recordError, sleep, type BackoffOptions, type Logger, type Registry } from '@octo-mesh/runtime';
import { CaRequestError, requestCertificate, type CaEndpoint } from './client.js';
import { createCsr } from './csr.js';
import { renewalTime } from './policy.js';
import { credentialFiles } from './sds.js';
import { newKeyPair } from './x509.js';

/** A certificate the rotator holds. */
export interface WorkloadCredential {
  spiffeId: string;
  certificateChain: string[];
  trustBundle: string[];
  keyPem: string;
  expiresAt: Date;
  receivedAt: Date;
  /** When the rotator plans to renew it. */
  renewAt: Date;
  serialNumber: string;
  /** How it was obtained. */
  via: 'credential' | 'renewal';
}

export interface CertificateRotatorOptions {
  /** The CA: URL, the roots its serving certificate chains to (the rotator adds the bundles it receives), server name. */
  ca: CaEndpoint;
  /** The bearer credential for first issuance (and when renewal by certificate is refused): a bootstrap token or a projected ServiceAccount token; read again at each use. */
  credential: () => string | Promise<string>;
  /** Directory the files are published in (created 0700 when absent); omit to keep the certificate in memory only. */
  dir?: string;
  ttlSeconds?: number;
  logger?: Logger;
  /** Metrics are registered here (shared by every rotator on the registry). */
  registry?: Registry;
  backoff?: BackoffOptions;
  /** Injected for tests: [0, 1). */
  random?: () => number;
  /** Called after each new certificate is published. */
  onRotated?: (c: WorkloadCredential) => void;
}

function metric<T>(registry: Registry | undefined, name: string, make: (registers: Registry[]) => T): T {
  const existing = registry?.getSingleMetric(name);
  return (existing as T | undefined) ?? make(registry ? [registry] : []);
}

/**
 * Emits `rotated` (WorkloadCredential) like `onRotated`. `start()` returns at once; `firstCertificate`
 * resolves with the first certificate. `ready` is true while a certificate valid at this moment is held.
 * `stop()` ends the loop; it waits for an exchange in flight (bounded by `ca.timeoutMs`) and discards its result.
 */
export class CertificateRotator extends EventEmitter {
  private cred: WorkloadCredential | undefined;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly backoff: Backoff;
  private readonly random: () => number;
  private readonly rotations: Counter<'result' | 'via'>;
  private readonly expiry: Gauge<'spiffe_id'>;
  private resolveFirst!: (c: WorkloadCredential) => void;
  /** Resolves with the first certificate obtained. */
  readonly firstCertificate: Promise<WorkloadCredential>;

  constructor(private readonly opts: CertificateRotatorOptions) {
    super();
    this.random = opts.random ?? Math.random;
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 30_000, jitter: 0.5 }, this.random);
    this.firstCertificate = new Promise((r) => (this.resolveFirst = r));
    this.rotations = metric(opts.registry, 'octo_identity_rotations_total', (registers) => new Counter({ name: 'octo_identity_rotations_total', help: 'Certificate requests made by a rotator, by result (ok, refused, failed) and how (credential, renewal).', labelNames: ['result', 'via'], registers }));
    this.expiry = metric(opts.registry, 'octo_identity_certificate_expiry_seconds', (registers) => new Gauge({ name: 'octo_identity_certificate_expiry_seconds', help: 'Unix time at which the certificate a rotator holds expires.', labelNames: ['spiffe_id'], registers }));
  }

  get ready(): boolean {
    return !!this.cred && this.cred.expiresAt.getTime() > Date.now();
  }

  get current(): WorkloadCredential | undefined {
    return this.cred;
  }

  start(): this {
    this.loop ??= this.run();
    return this;
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('rotator stopped'));
    await this.loop;
  }

  /** Obtains and publishes one new certificate now (what the loop does at each renewal time). */
  async rotateOnce(): Promise<WorkloadCredential> {
    const now = Date.now();
    const held = this.cred && this.cred.expiresAt.getTime() > now ? this.cred : undefined;
    const { privateKey } = newKeyPair();
    const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const csrPem = createCsr(privateKey);
    const ca: CaEndpoint = { ...this.opts.ca, trustBundle: [...new Set([...this.opts.ca.trustBundle, ...(this.cred?.trustBundle ?? [])])] };
    const ask = async (via: WorkloadCredential['via']) => {
      try {
        const r = await requestCertificate(ca, {
          csrPem,
          ...(this.opts.ttlSeconds ? { ttlSeconds: this.opts.ttlSeconds } : {}),
          ...(via === 'renewal' ? { clientCert: { certPem: held!.certificateChain.join(''), keyPem: held!.keyPem } } : { token: await this.opts.credential() }),
        });
        this.rotations.inc({ result: 'ok', via });
        return { r, via };
      } catch (err) {
        this.rotations.inc({ result: err instanceof CaRequestError && err.status >= 400 && err.status < 500 ? 'refused' : 'failed', via });
        throw err;
      }
    };
    let got: Awaited<ReturnType<typeof ask>>;
    if (held) {
      try {
        got = await ask('renewal');
      } catch (err) {
        // A certificate the CA no longer accepts (e.g. its root was removed): fall back to the credential.
        if (!(err instanceof CaRequestError && err.status === 401)) throw err;
        recordError(this.opts.logger, 'identity renewal by certificate', err, { spiffeId: held.spiffeId, fallback: 'credential' });
        got = await ask('credential');
      }
    } else got = await ask('credential');
    if (this.abort.signal.aborted) throw this.abort.signal.reason;
    const receivedAt = Date.now();
    const expiresAt = new Date(got.r.expiresAt);
    const c: WorkloadCredential = {
      spiffeId: got.r.spiffeId,
      certificateChain: got.r.certificateChain,
      trustBundle: got.r.trustBundle,
      keyPem,
      expiresAt,
      receivedAt: new Date(receivedAt),
      renewAt: new Date(renewalTime(receivedAt, expiresAt.getTime(), this.random())),
      serialNumber: new X509Certificate(got.r.certificateChain[0]!).serialNumber,
      via: got.via,
    };
    if (this.opts.dir) await publish(this.opts.dir, c);
    this.cred = c;
    this.expiry.set({ spiffe_id: c.spiffeId }, Math.floor(expiresAt.getTime() / 1000));
    this.opts.logger?.info('certificate rotated', { spiffeId: c.spiffeId, serialNumber: c.serialNumber, expiresAt: c.expiresAt.toISOString(), renewAt: c.renewAt.toISOString(), via: c.via });
    this.opts.onRotated?.(c);
    this.emit('rotated', c);
    this.resolveFirst(c);
    return c;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      let delay: number;
      try {
        const c = await this.rotateOnce();
        this.backoff.reset();
        delay = Math.max(0, c.renewAt.getTime() - Date.now());
      } catch (err) {
        if (signal.aborted) break;
        delay = this.backoff.next();
        // Never sleep past the held certificate's expiry without trying again.
        if (this.cred) delay = Math.min(delay, Math.max(100, this.cred.expiresAt.getTime() - Date.now()));
        recordError(this.opts.logger, 'identity rotation', err, { spiffeId: this.cred?.spiffeId, retryInMs: delay, holding: this.ready ? this.cred!.serialNumber : 'no valid certificate' });
      }
      try {
        await sleep(delay, signal);
      } catch {
        break; // stopped
      }
    }
  }
}

/**
 * A credential read from a file at each use, e.g. a projected ServiceAccount token (the kubelet
 * rewrites it before it expires) or a bootstrap token file. Surrounding whitespace is dropped.
 */
export function credentialFromFile(path: string): () => Promise<string> {
  return async () => {
    const t = (await readFile(path, 'utf8')).trim();
    if (!t) throw new Error(`credential file ${path} is empty`);
    return t;
  };
}

/** Writes the files of `c` into `dir`, each atomically; the trust bundle before the certificate, so a new leaf is never served before its root is trusted. */
export async function publish(dir: string, c: Pick<WorkloadCredential, 'certificateChain' | 'trustBundle' | 'keyPem' | 'serialNumber'>): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = credentialFiles(c);
  for (const name of ['root-cert.pem', 'ROOTCA.json', 'key.pem', 'cert-chain.pem', 'default.json']) {
    await writeAtomically(join(dir, name), files[name]!.content, files[name]!.mode);
  }
}

/** Write to a temporary file beside `path`, then rename over it (atomic on one file system). */
export async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, content, { mode });
    await rename(tmp, path);
  } catch (err) {
    // The write's own error is what matters and is rethrown; the temporary file may not exist.
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
