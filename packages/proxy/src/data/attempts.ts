import type { ClusterAction, VirtualHostModel } from '../model.js';
import type { ClusterRuntime } from './cluster-manager.js';
import type { DownstreamRequest, HttpContext, RequestState } from './http-proxy.js';
import type { Host } from './load-balancer.js';
import type { HostResult } from './outlier.js';
import { isRetriable, retryDelayMs, type AttemptOutcome } from './retry.js';
import { AttemptError, startAttempt, type Attempt, type UpstreamResponse } from './upstream.js';
import { deadline, type Deadline } from './timer-list.js';

/**
 * The upstream side of one HTTP request: attempts with per-try and route timeouts, retries with
 * jittered backoff under the circuit breaker's retry budget, a retry preferring another host,
 * and outlier detection fed with every attempt's outcome.
 */

/** Request bodies up to this size are kept so that a retry can resend them. */
const RETRY_BUFFER_LIMIT = 1 << 20;

/** Buffers the request body while a retry may still need it, and feeds it to each attempt. */
export class BodyTap {
  private chunks: Buffer[] = [];
  private size = 0;
  ended = false;
  overflowed = false;
  private sink: Attempt | undefined;

  constructor(private readonly req: DownstreamRequest) {
    if ((req as { empty?: boolean }).empty === true) {
      // A request known to have no body: nothing to listen for or keep.
      this.ended = true;
      return;
    }
    req.on('data', (c: Buffer) => {
      if (!this.overflowed) {
        this.size += c.length;
        if (this.size > RETRY_BUFFER_LIMIT) {
          this.overflowed = true;
          this.chunks = [];
        } else this.chunks.push(c);
      }
      if (this.sink && !this.sink.body.write(c)) {
        req.pause();
        this.sink.body.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      this.ended = true;
      this.sink?.body.end();
    });
  }

  /** True when the body sent so far can be replayed. */
  get replayable(): boolean {
    return !this.overflowed;
  }

  attach(a: Attempt): void {
    this.sink = a;
    a.body.on('error', () => undefined);
    for (const c of this.chunks) a.body.write(c);
    if (this.ended) a.body.end();
  }

  release(): void {
    this.chunks = [];
    this.overflowed = true;
  }
}

export type Chosen = { res: UpstreamResponse; timer: Deadline | undefined } | { local: { status: number; reason: string } } | undefined;

export async function runAttempts(
  ctx: HttpContext,
  cluster: ClusterRuntime,
  vh: VirtualHostModel,
  action: ClusterAction,
  upstreamReq: Parameters<typeof startAttempt>[2],
  hashKey: number | undefined,
  tap: BodyTap,
  st: RequestState,
  random: () => number,
  req: DownstreamRequest,
): Promise<Chosen> {
  const retry = action.retry ?? vh.retry;
  const maxAttempts = 1 + (retry?.numRetries ?? 0);
  let routeTimedOut = false;
  let current: Attempt | undefined;
  let routeTimer: Deadline | undefined;
  let wake: (() => void) | undefined;
  if (action.timeoutMs > 0) {
    routeTimer = deadline(action.timeoutMs, () => {
      routeTimedOut = true;
      current?.abort();
      wake?.();
    });
  }
  let downstreamGone = false;
  // 'aborted' comes at most once: a plain listener does.
  req.on('aborted', () => {
    downstreamGone = true;
    current?.abort();
  });
  let last: { status: number; reason: string } = { status: 503, reason: 'no-healthy-upstream' };
  let prev: Host | undefined;
  let holdingRetry = false;
  // The last retriable upstream response, kept unread until a retry really goes out: when the
  // retry budget or buffer says no, it is what the client gets (as Envoy does).
  let pending: UpstreamResponse | undefined;
  const chosen = (res: UpstreamResponse): Chosen => {
    tap.release();
    return { res, timer: routeTimer };
  };
  try {
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (attempt > 0) {
        if (!retry || !tap.replayable || !cluster.tryRetry()) {
          if (pending) return chosen(pending);
          break;
        }
        holdingRetry = true;
        pending?.body.resume();
        pending = undefined;
        ctx.stats.retries.inc({ cluster: cluster.model.name });
        await new Promise<void>((r) => {
          const t = setTimeout(r, retryDelayMs(retry, attempt - 1, random));
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = undefined;
        if (routeTimedOut || downstreamGone) break;
      }
      const host = cluster.hosts.choose(hashKey, prev);
      if (!host) {
        last = { status: 503, reason: 'no-healthy-upstream' };
        break;
      }
      prev = host;
      st.host = host;
      st.attempts++;
      host.active++;
      const a = startAttempt(cluster, host, upstreamReq);
      current = a;
      tap.attach(a);
      let perTry: Deadline | undefined;
      let perTryFired = false;
      if (retry && retry.perTryTimeoutMs > 0)
        perTry = deadline(retry.perTryTimeoutMs, () => {
          perTryFired = true;
          a.abort();
        });
      let outcome: AttemptOutcome;
      let res: UpstreamResponse | undefined;
      try {
        res = await a.response;
        const gs = res.headers['grpc-status'];
        outcome = { kind: 'response', status: res.status, ...(gs !== undefined ? { grpcStatus: Number(gs) } : {}) };
      } catch (err) {
        outcome = perTryFired || routeTimedOut ? { kind: 'timeout' } : { kind: err instanceof AttemptError ? err.kind : 'reset' };
      } finally {
        perTry?.cancel();
      }
      let counted = true;
      const onDone = () => {
        if (counted) host.active--;
        counted = false;
      };
      // Every body emits 'close' after 'end' (Readable's autoDestroy, LeanBody), or alone when cut.
      if (res) res.body.on('close', onDone);
      else onDone();
      cluster.report(host, hostResult(outcome));
      if (holdingRetry) {
        cluster.activeRetries--;
        holdingRetry = false;
      }
      if (downstreamGone) {
        res?.body.destroy();
        return undefined;
      }
      if (routeTimedOut) {
        res?.body.destroy();
        return { local: { status: 504, reason: 'upstream-timeout' } };
      }
      const retriable = retry !== undefined && attempt + 1 < maxAttempts && isRetriable(retry, outcome);
      if (res && !retriable) return chosen(res);
      if (res) {
        pending = res;
        continue;
      }
      last =
        outcome.kind === 'timeout'
          ? { status: 504, reason: 'upstream-per-try-timeout' }
          : outcome.kind === 'connect-failure'
            ? { status: 503, reason: 'upstream-connect-failure' }
            : { status: 503, reason: 'upstream-reset' };
    }
  } finally {
    if (holdingRetry) cluster.activeRetries--;
    wake = undefined;
  }
  if (pending && !routeTimedOut) return chosen(pending);
  pending?.body.destroy();
  routeTimer?.cancel();
  if (routeTimedOut) return { local: { status: 504, reason: 'upstream-timeout' } };
  return { local: last };
}

function hostResult(o: AttemptOutcome): HostResult {
  if (o.kind !== 'response') return 'local-failure';
  if (o.status === 502 || o.status === 503 || o.status === 504) return 'gateway-error';
  if (o.status >= 500) return 'error-5xx';
  return 'success';
}

