import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import tls from 'node:tls';
import { X509Certificate, createHash } from 'node:crypto';
import { recordError, type Logger } from '@octo-mesh/runtime';
import type { DataSourceModel, SanMatcherModel, SdsRef, SecretModel, TlsCertificateModel, TlsContextModel, ValidationModel } from '../model.js';
import { parseSdsFile, sdsRefs } from '../translate/tls.js';
import type { ProxyStats } from '../stats.js';
import { stringMatches } from './router.js';
import type { AttemptError } from './upstream.js';

/**
 * TLS at run time: SDS secrets read from files and watched, and the `tls.SecureContext` of each
 * TLS context in the model, rebuilt when a secret it uses changes. A new context serves new
 * connections; connections already open keep theirs (Envoy does the same on an SDS update).
 */


/** The URI and DNS SANs of a peer certificate (`subjectaltname` as Node prints it). */
export function subjectAltNames(subjectaltname: string | undefined): { URI: string[]; DNS: string[] } {
  const out = { URI: [] as string[], DNS: [] as string[] };
  for (const part of (subjectaltname ?? '').split(', ')) {
    if (part.startsWith('URI:')) out.URI.push(part.slice(4));
    else if (part.startsWith('DNS:')) out.DNS.push(part.slice(4));
  }
  return out;
}

/** Envoy's rule: with matchers, one of them must match one SAN of its type; without, any certificate passes. */
export function sansMatch(matchers: readonly SanMatcherModel[], subjectaltname: string | undefined): boolean {
  if (matchers.length === 0) return true;
  const sans = subjectAltNames(subjectaltname);
  return matchers.some((m) => sans[m.type].some((s) => stringMatches(m.match, s)));
}

/** OpenSSL verification codes that mean "the chain did not verify" (Envoy: ssl.fail_verify_error). */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
  'INVALID_PURPOSE',
]);

export const SAN_MISMATCH = 'ERR_OCTO_TLS_SAN_MISMATCH';

/** Why an upstream TLS connection failed (its handshake), kept for the attempt that used it. */
export const tlsErrors = new WeakMap<object, AttemptError>();
export function tlsFailure(s: object): AttemptError | undefined {
  return tlsErrors.get(s);
}

/**
 * Added to a cluster's connect timeout for a TLS connection, whose handshake (two signatures and
 * a chain verification on this event loop) must also finish in it: Envoy counts the handshake in
 * `connect_timeout` too, but finishes it in about a millisecond; here, on a busy machine, a
 * handshake behind other work took over a second (Pilot's clusters allow 1 s) and failed requests.
 */
export const TLS_HANDSHAKE_ALLOWANCE_MS = 5000;

/**
 * Why a TLS handshake failed, in Envoy's stat names: `fail_verify_san` (the peer's SANs match no
 * matcher), `fail_verify_error` (the chain does not verify: wrong root, expired, ...),
 * `fail_verify_no_cert` (no client certificate where one is required), else `connection_error`.
 */
export function handshakeFailure(err: Error & { code?: string }): 'fail_verify_san' | 'fail_verify_error' | 'fail_verify_no_cert' | 'connection_error' {
  const code = err.code ?? '';
  if (code === SAN_MISMATCH) return 'fail_verify_san';
  if (VERIFY_CODES.has(code) || /certificate verify failed|CERTIFICATE_VERIFY_FAILED|unknown ca|certificate expired|bad certificate/i.test(err.message)) return 'fail_verify_error';
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|certificate required/i.test(err.message)) return 'fail_verify_no_cert';
  return 'connection_error';
}

/** A secret file's state, for `/config_dump` and readiness. */
export interface SdsFileStatus {
  path: string;
  /** `version_info` of the last good file, or its content hash when it has none. */
  version: string | null;
  secrets: string[];
  loadedAt: string | null;
  /** The last read's error, while the last good secrets stay in force. */
  error: string | null;
}

interface SdsFile {
  path: string;
  secrets: Map<string, SecretModel>;
  version: string | null;
  loadedAt: string | null;
  error: string | null;
  /** Bumped on every accepted change: contexts built from an older generation are rebuilt. */
  generation: number;
  /** Hash of the content in force. */
  digest?: string;
}

/**
 * SDS from files (`sds_config.path_config_source.path`): each file is read when first
 * referenced and again when it changes. The directory is watched rather than the file, because
 * the writers of these files (the CertificateRotator, Kubernetes secret volumes) replace them by
 * rename, which a watch on the file itself loses. A change is read after a short debounce. A
 * file that does not parse keeps the last good secrets in force, is logged and counted (the
 * SDS counterpart of a NACK).
 */
export class SecretStore {
  private readonly files = new Map<string, SdsFile>();
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly logger: Logger,
    private readonly stats: ProxyStats,
    private readonly debounceMs = 50,
  ) {}

  /** Calls `fn` after any secret changed. */
  onChange(fn: () => void): void {
    this.listeners.add(fn);
  }

  /** Starts reading and watching the files `refs` name (idempotent). */
  watch(refs: readonly SdsRef[]): void {
    for (const r of refs) {
      if (this.files.has(r.path)) continue;
      this.files.set(r.path, { path: r.path, secrets: new Map(), version: null, loadedAt: null, error: null, generation: 0 });
      this.watchDir(dirname(r.path));
      this.load(r.path);
    }
  }

  private watchDir(dir: string): void {
    if (this.watchers.has(dir)) return;
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        for (const f of this.files.values()) if (dirname(f.path) === dir && (!name || name === basename(f.path))) this.schedule(f.path);
      });
      w.on('error', (err) => recordError(this.logger, 'watching an SDS directory', err, { dir }, 'warn'));
      this.watchers.set(dir, w);
    } catch (err) {
      // The directory may not exist yet: the secret stays warming, and the file is polled until it does.
      recordError(this.logger, 'watching an SDS directory', err, { dir }, 'warn');
      this.stats.sdsUpdates.inc({ result: 'error' });
      const t = setTimeout(() => {
        this.timers.delete(`dir:${dir}`);
        this.watchDir(dir);
        for (const f of this.files.values()) if (dirname(f.path) === dir) this.load(f.path);
      }, 1000);
      t.unref();
      this.timers.set(`dir:${dir}`, t);
    }
  }

  private schedule(path: string): void {
    clearTimeout(this.timers.get(path));
    const t = setTimeout(() => {
      this.timers.delete(path);
      this.load(path);
    }, this.debounceMs);
    t.unref();
    this.timers.set(path, t);
  }

  /** Reads one file now (also what the watcher does after a change). */
  load(path: string): void {
    const f = this.files.get(path);
    if (!f) return;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      // A file renamed over is briefly absent for some writers: the next event reads it.
      f.error = `cannot read: ${e.code ?? e.message}`;
      this.stats.sdsUpdates.inc({ result: 'error' });
      this.logger.warn('SDS file unreadable; the last good secrets stay in force', { path, error: f.error, secrets: [...f.secrets.keys()] });
      return;
    }
    const r = parseSdsFile(text, path);
    if (!r.ok) {
      f.error = r.error;
      this.stats.sdsUpdates.inc({ result: 'rejected' });
      this.logger.error('SDS file rejected; the last good secrets stay in force', { path, error: r.error, version: f.version });
      return;
    }
    // Certificates and keys are checked now, so a bad PEM is refused here rather than at the next handshake.
    for (const s of r.value.secrets) {
      const problem = checkSecret(s);
      if (problem) {
        f.error = `secret ${JSON.stringify(s.name)}: ${problem}`;
        this.stats.sdsUpdates.inc({ result: 'rejected' });
        this.logger.error('SDS file rejected; the last good secrets stay in force', { path, error: f.error, version: f.version });
        return;
      }
    }
    // Unchanged content (a watch event for a neighbour, a touch) changes nothing; a changed one
    // is taken even when its version_info is the same.
    const digest = hash(text);
    if (digest === f.digest) {
      f.error = null;
      return;
    }
    f.digest = digest;
    const version = r.value.version || `sha256:${digest}`;
    f.secrets = new Map(r.value.secrets.map((s) => [s.name, s]));
    f.version = version;
    f.loadedAt = new Date().toISOString();
    f.error = null;
    f.generation++;
    this.stats.sdsUpdates.inc({ result: 'accepted' });
    this.logger.info('SDS file loaded', { path, version, secrets: [...f.secrets.keys()] });
    for (const fn of this.listeners) fn();
  }

  get(ref: SdsRef): SecretModel | undefined {
    return this.files.get(ref.path)?.secrets.get(ref.name);
  }

  generation(path: string): number {
    return this.files.get(path)?.generation ?? -1;
  }

  status(): SdsFileStatus[] {
    return [...this.files.values()].map((f) => ({ path: f.path, version: f.version, secrets: [...f.secrets.keys()], loadedAt: f.loadedAt, error: f.error }));
  }

  close(): void {
    for (const w of this.watchers.values()) w.close();
    for (const t of this.timers.values()) clearTimeout(t);
    this.watchers.clear();
    this.timers.clear();
  }
}

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

function read(d: DataSourceModel): string {
  return 'inline' in d ? d.inline : readFileSync(d.filename, 'utf8');
}

/** Why a secret cannot be used (unparsable PEM, key not matching), or undefined. */
function checkSecret(s: SecretModel): string | undefined {
  try {
    if (s.kind === 'tls_certificate') tls.createSecureContext(certOptions(s.certificate));
    else if (s.validation.trustedCa) tls.createSecureContext({ ca: read(s.validation.trustedCa) });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

function certOptions(c: TlsCertificateModel): tls.SecureContextOptions {
  return { cert: read(c.certificateChain), key: read(c.privateKey.value) };
}

/** A TLS context ready for connections: what `tls.TLSSocket` / `tls.connect` take. */
export interface ReadyTls {
  secureContext: tls.SecureContext;
  /** What it was made from (a `tls.Server` for downstream connections is made from these). */
  options: tls.SecureContextOptions;
  /** Whether the peer's certificate is verified against a trust bundle. */
  verify: boolean;
  sans: SanMatcherModel[];
  alpn: string[];
  /** Serial number of our certificate (hex), for logs and tests. */
  serial: string | undefined;
}

/** Why a TLS context cannot serve yet: the secrets it waits for (Envoy: warming). */
export interface WarmingTls {
  warming: string;
}

/**
 * Resolves model TLS contexts into SecureContexts, cached per context until a secret it reads
 * changes. Called per connection: a cache hit is a map lookup and a generation compare.
 */
export class TlsContexts {
  private readonly cache = new WeakMap<TlsContextModel, { key: string; value: ReadyTls | WarmingTls }>();

  constructor(
    readonly secrets: SecretStore,
    private readonly logger: Logger,
  ) {}

  resolve(t: TlsContextModel): ReadyTls | WarmingTls {
    const refs = sdsRefs(t);
    let key = '';
    for (const r of refs) key += `${this.secrets.generation(r.path)},`;
    const hit = this.cache.get(t);
    if (hit && hit.key === key) return hit.value;
    if (!hit) this.secrets.watch(refs);
    const value = this.build(t);
    this.cache.set(t, { key, value });
    return value;
  }

  private build(t: TlsContextModel): ReadyTls | WarmingTls {
    const missing: string[] = [];
    let cert: TlsCertificateModel | undefined;
    if (t.certificate?.kind === 'inline') cert = t.certificate.value;
    else if (t.certificate?.kind === 'sds') {
      const s = this.secrets.get(t.certificate.ref);
      if (s?.kind === 'tls_certificate') cert = s.certificate;
      else missing.push(`${t.certificate.ref.name} (tls_certificate in ${t.certificate.ref.path})`);
    }
    let validation: ValidationModel | undefined = t.validation?.inline;
    if (t.validation?.sds) {
      const s = this.secrets.get(t.validation.sds);
      if (s?.kind === 'validation_context')
        // combined_validation_context: the dynamic context's singular fields win, lists add up (Envoy's MergeFrom).
        validation = { ...(s.validation.trustedCa ? { trustedCa: s.validation.trustedCa } : validation?.trustedCa ? { trustedCa: validation.trustedCa } : {}), sans: [...(validation?.sans ?? []), ...s.validation.sans] };
      else missing.push(`${t.validation.sds.name} (validation_context in ${t.validation.sds.path})`);
    }
    if (missing.length) return { warming: `waiting for SDS secrets: ${missing.join(', ')}` };
    try {
      const opts: tls.SecureContextOptions = { ...(cert ? certOptions(cert) : {}), ...(validation?.trustedCa ? { ca: read(validation.trustedCa) } : {}) };
      const secureContext = tls.createSecureContext(opts);
      const serial = typeof opts.cert === 'string' ? new X509Certificate(opts.cert).serialNumber : undefined;
      return { secureContext, options: opts, verify: validation !== undefined, sans: validation?.sans ?? [], alpn: t.alpn, serial };
    } catch (err) {
      recordError(this.logger, 'building a TLS context', err, {}, 'error');
      return { warming: `TLS context unusable: ${(err as Error).message}` };
    }
  }
}

export const isWarming = (r: ReadyTls | WarmingTls): r is WarmingTls => 'warming' in r;
