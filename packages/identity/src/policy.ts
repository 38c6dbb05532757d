/**
 * The CA's and the rotator's decisions as pure functions of their inputs (time passed in):
 * which lifetime a request gets, whether an identity may have a certificate, when to renew.
 */

/** Why the CA refuses a request: the HTTP status, a short reason for metrics, a message naming the field. */
export class CaRefusal extends Error {
  constructor(
    readonly status: 400 | 401 | 403,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'CaRefusal';
  }
}
export const isCaRefusal = (e: unknown): e is CaRefusal => e instanceof CaRefusal;

export interface TtlPolicy {
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  /** Shortest lifetime a client may ask for; default 1 s. */
  minTtlSeconds?: number;
}

/** The lifetime a request gets: `requested` when given and in range, else the default; out of range is a 400 naming `ttlSeconds`. */
export function chooseTtl(requested: unknown, p: TtlPolicy): number {
  if (requested === undefined || requested === null) return Math.min(p.defaultTtlSeconds, p.maxTtlSeconds);
  const min = p.minTtlSeconds ?? 1;
  if (typeof requested !== 'number' || !Number.isInteger(requested)) throw new CaRefusal(400, 'bad_ttl', `ttlSeconds: must be an integer number of seconds, got ${JSON.stringify(requested)}`);
  if (requested < min || requested > p.maxTtlSeconds) throw new CaRefusal(400, 'bad_ttl', `ttlSeconds: ${requested} is out of range [${min}, ${p.maxTtlSeconds}]`);
  return requested;
}

/** Whether a namespace may have certificates: `allowed` undefined or empty means every namespace. */
export function checkNamespace(namespace: string, allowed: readonly string[] | undefined): void {
  if (allowed?.length && !allowed.includes(namespace)) {
    throw new CaRefusal(403, 'namespace_not_allowed', `namespace ${JSON.stringify(namespace)} is not in allowedNamespaces (${allowed.join(', ')})`);
  }
}

/**
 * When to renew a certificate received at `receivedAt` that expires at `notAfter`: a random point
 * between 50 % and 70 % of the remaining lifetime (`random` in [0, 1)), so that workloads that
 * started together do not renew together. Measured from receipt, not notBefore (which is
 * back-dated for clock skew and would make short test lifetimes renew at once).
 */
export function renewalTime(receivedAt: number, notAfter: number, random: number): number {
  const life = Math.max(0, notAfter - receivedAt);
  return receivedAt + Math.round(life * (0.5 + 0.2 * random));
}

/** Leaf validity: `notBefore` back-dated for clock skew, `notAfter` = now + ttl. */
export function leafValidity(now: Date, ttlSeconds: number, backdateSeconds = 60): { notBefore: Date; notAfter: Date } {
  return { notBefore: new Date(now.getTime() - backdateSeconds * 1000), notAfter: new Date(now.getTime() + ttlSeconds * 1000) };
}
