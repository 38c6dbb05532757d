import type { RetrySpec } from '../model.js';

/** How one upstream attempt ended. */
export type AttemptOutcome =
  | { kind: 'response'; status: number; grpcStatus?: number }
  | { kind: 'connect-failure' }
  | { kind: 'reset' }
  | { kind: 'timeout' };

const GRPC_CODES: Record<string, number> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

/** Whether `retry_on` covers this outcome (Envoy's semantics for each condition). */
export function isRetriable(spec: RetrySpec, o: AttemptOutcome): boolean {
  for (const cond of spec.retryOn) {
    switch (cond) {
      case '5xx':
        if (o.kind !== 'response' || o.status >= 500) return true;
        break;
      case 'gateway-error':
        if (o.kind !== 'response' || o.status === 502 || o.status === 503 || o.status === 504) return true;
        break;
      case 'reset':
        if (o.kind === 'reset' || o.kind === 'connect-failure') return true;
        break;
      case 'connect-failure':
        if (o.kind === 'connect-failure') return true;
        break;
      case 'refused-stream':
        if (o.kind === 'reset') return true;
        break;
      case 'retriable-4xx':
        if (o.kind === 'response' && o.status === 409) return true;
        break;
      case 'retriable-status-codes':
        if (o.kind === 'response' && spec.retriableStatusCodes.includes(o.status)) return true;
        break;
      default: {
        const code = GRPC_CODES[cond];
        if (code !== undefined && o.kind === 'response' && o.grpcStatus === code) return true;
      }
    }
  }
  return false;
}

/** Fully jittered exponential backoff: uniform in [0, min(max, base·2^retry)). */
export function retryDelayMs(spec: RetrySpec, retry: number, random: () => number = Math.random): number {
  const upper = Math.min(spec.maxIntervalMs, spec.baseIntervalMs * 2 ** retry);
  return Math.floor(random() * upper);
}
