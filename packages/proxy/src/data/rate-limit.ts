import type { RateLimitSpec } from '../model.js';

/**
 * A token bucket refilled `tokensPerFill` every `fillIntervalMs`, holding at most `maxTokens`;
 * it starts full. Refill is computed lazily from the clock, so no timer runs.
 */
export class TokenBucket {
  private tokens: number;
  private lastFill: number;
  constructor(
    private readonly spec: RateLimitSpec,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = spec.maxTokens;
    this.lastFill = now();
  }

  /** Takes one token; false when the bucket is empty. */
  take(): boolean {
    const t = this.now();
    const fills = Math.floor((t - this.lastFill) / this.spec.fillIntervalMs);
    if (fills > 0) {
      this.tokens = Math.min(this.spec.maxTokens, this.tokens + fills * this.spec.tokensPerFill);
      this.lastFill += fills * this.spec.fillIntervalMs;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  get available(): number {
    return this.tokens;
  }
}

/**
 * One bucket per rate-limit spec in force. A spec object lives as long as the config that holds
 * it, so a config update that changes the limit starts a fresh, full bucket.
 */
export class RateLimiter {
  private readonly buckets = new WeakMap<RateLimitSpec, TokenBucket>();
  constructor(
    private readonly random: () => number = Math.random,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when the request may pass (filter disabled for it, a token taken, or not enforced). */
  allow(spec: RateLimitSpec): boolean {
    if (spec.enabled < 1 && this.random() >= spec.enabled) return true;
    let b = this.buckets.get(spec);
    if (!b) this.buckets.set(spec, (b = new TokenBucket(spec, this.now)));
    if (b.take()) return true;
    return spec.enforced < 1 && this.random() >= spec.enforced;
  }
}
