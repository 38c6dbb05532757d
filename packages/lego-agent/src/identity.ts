/**
 * The workload's certificate, obtained from the mesh CA and kept fresh by a `CertificateRotator`
 * (packages/identity, "Rotation on the workload side"): files published in `certDir`, which the
 * proxy watches itself. Here: reading the CA settings' files, whether the agent may call itself
 * ready as far as its identity goes, and what the status reports.
 */
import { CertificateRotator, credentialFromFile, type CertificateRotatorOptions, type WorkloadCredential } from '@octo-mesh/identity';
import type { Logger, Registry } from '@octo-mesh/runtime';
import { sleep } from '@octo-mesh/runtime/backoff.js';
import { Gauge } from '@octo-mesh/runtime/metrics.js';
import type { CaSettings } from './config.js';
import type { AgentIdentityStatus } from './status.js';

export { parseTrustBundle, readTrustBundleFile } from '@octo-mesh/identity';

/** What readiness is decided from: the certificate held (if any) and the last attempt's error. */
export interface IdentityState {
  held: { spiffeId: string; serialNumber: string; expiresAt: Date } | undefined;
  lastError: { message: string; at: Date } | null;
}

/**
 * Why the agent is not ready as far as its identity goes, or null when it holds a certificate
 * valid at `now`. Like Istio's sidecar, the agent is not ready without a valid certificate: a
 * peer in STRICT mode would refuse it, so Services should not send it traffic.
 */
export function identityNotReady(s: IdentityState, now: number, caUrl: string): string | null {
  const last = s.lastError ? `; last attempt (${s.lastError.at.toISOString()}) failed: ${s.lastError.message}` : '';
  if (!s.held) return `no certificate yet from ${caUrl}${last || ' (first request under way)'}`;
  if (s.held.expiresAt.getTime() <= now) return `certificate ${s.held.serialNumber} of ${s.held.spiffeId} expired at ${s.held.expiresAt.toISOString()}${last}`;
  return null;
}

/** The status part (`AgentStatus.identity`) of an identity state at `now`. */
export function identityStatus(s: IdentityState & { renewAt: Date | undefined }, now: number): AgentIdentityStatus {
  return {
    spiffeId: s.held?.spiffeId ?? null,
    serialNumber: s.held?.serialNumber ?? null,
    expiresAt: s.held?.expiresAt.toISOString() ?? null,
    renewAt: s.renewAt?.toISOString() ?? null,
    ready: !!s.held && s.held.expiresAt.getTime() > now,
    lastError: s.lastError ? { message: s.lastError.message, at: s.lastError.at.toISOString() } : null,
  };
}

/** A rotator that reports each failed attempt (the base class logs and counts failures, but keeps them to itself). */
class ObservedRotator extends CertificateRotator {
  constructor(
    opts: CertificateRotatorOptions,
    private readonly onFailure: (err: unknown) => void,
  ) {
    super(opts);
  }

  override async rotateOnce(): Promise<WorkloadCredential> {
    try {
      return await super.rotateOnce();
    } catch (err) {
      this.onFailure(err);
      throw err;
    }
  }
}

export interface AgentIdentityOptions {
  settings: CaSettings;
  /** The CA's roots, from `caTrustBundleFile` (see `readTrustBundleFile`). */
  trustBundle: string[];
  logger: Logger;
  registry: Registry;
  /** Called whenever the status changes (a certificate, a failed attempt, an expiry). */
  onChange: (s: AgentIdentityStatus) => void;
}

/**
 * The agent's identity: one CertificateRotator publishing into `certDir`, its failures kept for
 * the status and `/readyz`, and a timer that marks the status at the held certificate's expiry
 * (time alone changes readiness then). `status` and `notReady()` answer from the same snapshot,
 * taken at each change, so `/readyz` and `/status` never disagree. Metrics: the rotator's
 * `octo_identity_*` on the agent's registry, and `octo_lego_identity_ready`.
 */
export class AgentIdentity {
  private readonly rotator: ObservedRotator;
  private state: IdentityState & { renewAt: Date | undefined } = { held: undefined, lastError: null, renewAt: undefined };
  private snapshot: AgentIdentityStatus;
  private expiryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly readyGauge: Gauge;

  constructor(private readonly opts: AgentIdentityOptions) {
    const s = opts.settings;
    this.readyGauge = new Gauge({ name: 'octo_lego_identity_ready', help: '1 while the agent holds a workload certificate valid now.', registers: [opts.registry] });
    this.rotator = new ObservedRotator(
      {
        ca: { url: s.caUrl, trustBundle: opts.trustBundle },
        credential: credentialFromFile(s.caTokenFile),
        dir: s.certDir,
        ...(s.certTtlSeconds ? { ttlSeconds: s.certTtlSeconds } : {}),
        logger: opts.logger,
        registry: opts.registry,
        backoff: { initialMs: 500, maxMs: s.caRetryMaxMs, jitter: 0.5 },
        onRotated: (c) => this.onRotated(c),
      },
      (err) => this.onFailure(err),
    );
    this.snapshot = identityStatus(this.state, Date.now());
  }

  /** Starts the rotator (returns at once). */
  start(): this {
    this.rotator.start();
    return this;
  }

  /** Resolves true once the first certificate is published, false when `ms` passed first. */
  async waitFirst(ms: number): Promise<boolean> {
    const timeout = new AbortController();
    try {
      return await Promise.race([this.rotator.firstCertificate.then(() => true), sleep(ms, timeout.signal).then(() => false)]);
    } finally {
      timeout.abort();
    }
  }

  get status(): AgentIdentityStatus {
    return this.snapshot;
  }

  /** Null when a valid certificate is held; else why not (for `/readyz`). */
  notReady(): string | null {
    if (this.snapshot.ready) return null;
    return identityNotReady(this.state, Date.now(), this.opts.settings.caUrl) ?? 'certificate expired';
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.expiryTimer);
    // A request to the CA in flight is abandoned (its answer discarded), not awaited for its full timeout.
    const abandoned = new AbortController();
    await Promise.race([this.rotator.stop(), sleep(1000, abandoned.signal).catch(() => undefined)]);
    abandoned.abort();
  }

  private onRotated(c: WorkloadCredential): void {
    this.state = { held: { spiffeId: c.spiffeId, serialNumber: c.serialNumber, expiresAt: c.expiresAt }, lastError: null, renewAt: c.renewAt };
    this.changed();
    this.armExpiry();
  }

  /** Readiness ends with the certificate's lifetime even when nothing else happens: a timer at the expiry (re-armed if it fires early or the wait exceeds what setTimeout takes). */
  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    const held = this.state.held;
    if (!held || this.stopped) return;
    const left = held.expiresAt.getTime() - Date.now();
    if (left <= 0) return this.changed();
    this.expiryTimer = setTimeout(() => this.armExpiry(), Math.min(2 ** 31 - 1, left + 10));
    this.expiryTimer.unref();
  }

  private onFailure(err: unknown): void {
    if (this.stopped) return;
    // The rotator logged and counted the failure (octo_identity_rotations_total, octo_errors_total{where="identity rotation"}).
    this.state = { ...this.state, lastError: { message: err instanceof Error ? err.message : String(err), at: new Date() } };
    this.changed();
  }

  private changed(): void {
    this.snapshot = identityStatus(this.state, Date.now());
    this.readyGauge.set(this.snapshot.ready ? 1 : 0);
    this.opts.onChange(this.snapshot);
  }
}
