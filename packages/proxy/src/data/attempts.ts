import type { ClusterAction, RetrySpec, VirtualHostModel } from '../model.js';
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

/** Methods whose request may be sent again when a kept-alive connection turned out closed (as Go's http.Transport: RFC 9110 §9.2.1 safe methods). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

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

/**
 * Runs the attempts of one request and calls `done` once with what the client gets: an upstream
 * response (with the route timer, which still covers its body), a local reply, or nothing when
 * the client went away. Callbacks throughout, no promises: when the first attempt's response is
 * final, it is passed on in the same turn that read it.
 */
export function runAttempts(
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
  done: (c: Chosen) => void,
): void {
  new AttemptRun(ctx, cluster, vh.retry, action, upstreamReq, hashKey, tap, st, random, done).start(req);
}

class AttemptRun {
  private readonly retry: RetrySpec | undefined;
  private readonly maxAttempts: number;
  private attempt = 0;
  private routeTimedOut = false;
  private downstreamGone = false;
  private current: Attempt | undefined;
  private host: Host | undefined;
  private routeTimer: Deadline | undefined;
  private perTry: Deadline | undefined;
  private perTryFired = false;
  /** The cluster's `max_stream_duration` for the attempt in progress (covers its response body too). */
  private maxStream: Deadline | undefined;
  private maxStreamFired = false;
  /** A retry's backoff in progress. */
  private backoff: NodeJS.Timeout | undefined;
  private last: { status: number; reason: string } = { status: 503, reason: 'no-healthy-upstream' };
  /** The last failed attempt's own reason (an upstream TLS refusal names Envoy's), if it had one. */
  private failReason: string | undefined;
  /** The host of the previous attempt: a retry prefers another. */
  private prev: Host | undefined;
  /** This request holds one of the circuit breaker's retry slots (from backoff to outcome). */
  private holdingRetry = false;
  /**
   * The last retriable upstream response, kept unread until a retry really goes out: when the
   * retry budget or buffer says no, it is what the client gets (as Envoy does).
   */
  private pending: UpstreamResponse | undefined;
  private finished = false;
  /** A request re-sent once because its kept-alive connection was found closed (see AttemptError.staleConnection). */
  private staleResent = false;

  constructor(
    private readonly ctx: HttpContext,
    private readonly cluster: ClusterRuntime,
    vhRetry: RetrySpec | undefined,
    private readonly action: ClusterAction,
    private readonly upstreamReq: Parameters<typeof startAttempt>[2],
    private readonly hashKey: number | undefined,
    private readonly tap: BodyTap,
    private readonly st: RequestState,
    private readonly random: () => number,
    private readonly done: (c: Chosen) => void,
  ) {
    this.retry = action.retry ?? vhRetry;
    this.maxAttempts = 1 + (this.retry?.numRetries ?? 0);
  }

  start(req: DownstreamRequest): void {
    if (this.action.timeoutMs > 0) this.routeTimer = deadline(this.action.timeoutMs, this.onRouteTimeout);
    // 'aborted' comes at most once: a plain listener does.
    req.on('aborted', () => {
      this.downstreamGone = true;
      this.current?.abort();
    });
    this.launch();
  }

  /** The route timeout covers everything, the response body too (it is handed on with the response). */
  private readonly onRouteTimeout = (): void => {
    this.routeTimedOut = true;
    this.current?.abort();
    if (this.backoff) {
      clearTimeout(this.backoff);
      this.backoff = undefined;
      this.exhausted();
    }
  };

  /** Starts the next attempt on a host, unless there is none to try. */
  private launch(fresh = false): void {
    const host = this.cluster.hosts.choose(this.hashKey, this.prev);
    if (!host) {
      this.last = { status: 503, reason: 'no-healthy-upstream' };
      return this.exhausted();
    }
    this.prev = host;
    this.host = host;
    this.st.host = host;
    this.st.attempts++;
    host.active++;
    const a = startAttempt(this.cluster, host, fresh ? { ...this.upstreamReq, fresh } : this.upstreamReq);
    this.current = a;
    this.tap.attach(a);
    this.perTryFired = false;
    const maxMs = this.cluster.model.upstreamTimeouts.maxStreamMs;
    if (maxMs > 0)
      this.maxStream = deadline(maxMs, () => {
        this.maxStreamFired = true;
        a.abort();
      });
    const retry = this.retry;
    if (retry && retry.perTryTimeoutMs > 0)
      this.perTry = deadline(retry.perTryTimeoutMs, () => {
        this.perTryFired = true;
        a.abort();
      });
    a.settle(this.onSettled);
  }

  private readonly onSettled = (res: UpstreamResponse | undefined, err: AttemptError | undefined): void => {
    this.perTry?.cancel();
    this.perTry = undefined;
    const host = this.host!;
    let outcome: AttemptOutcome;
    if (res) {
      const gs = res.headers['grpc-status'];
      outcome = { kind: 'response', status: res.status, ...(gs !== undefined ? { grpcStatus: Number(gs) } : {}) };
      // Every body emits 'close' once, after 'end' (Readable's autoDestroy, LeanBody) or alone when cut.
      const maxStream = this.maxStream;
      if (maxStream)
        res.body.on('close', () => {
          host.active--;
          maxStream.cancel();
        });
      else res.body.on('close', () => host.active--);
    } else {
      this.maxStream?.cancel();
      if (err?.staleConnection && !this.staleResent && !this.perTryFired && !this.routeTimedOut && !this.downstreamGone && this.tap.replayable && SAFE_METHODS.has(this.upstreamReq.method)) {
        // The upstream's idle close crossed our reuse: the request never reached it. Sent again
        // at once on a new connection, once; neither a retry of the policy nor a host failure.
        this.staleResent = true;
        host.active--;
        this.st.attempts--;
        this.ctx.stats.staleConnectionRetries.inc({ cluster: this.cluster.model.name });
        this.prev = undefined;
        return this.launch(true);
      }
      outcome = this.perTryFired || this.routeTimedOut ? { kind: 'timeout' } : { kind: err instanceof AttemptError ? err.kind : 'reset' };
      this.failReason = err instanceof AttemptError ? err.reason : undefined;
      host.active--;
    }
    this.cluster.report(host, hostResult(outcome));
    this.releaseRetry();
    if (this.downstreamGone) {
      res?.body.destroy();
      return this.finish(undefined);
    }
    if (this.routeTimedOut) {
      res?.body.destroy();
      return this.finish({ local: { status: 504, reason: 'upstream-timeout' } });
    }
    if (this.maxStreamFired && !res) {
      // Envoy's router: 504 once the request was received in full, else 408; never retried.
      return this.finish({ local: { status: this.tap.ended ? 504 : 408, reason: 'upstream-max-stream-duration' } });
    }
    const retry = this.retry;
    const retriable = retry !== undefined && this.attempt + 1 < this.maxAttempts && isRetriable(retry, outcome);
    if (res && !retriable) return this.chosen(res);
    if (res) this.pending = res;
    else
      this.last =
        outcome.kind === 'timeout'
          ? { status: 504, reason: 'upstream-per-try-timeout' }
          : outcome.kind === 'connect-failure'
            ? { status: 503, reason: this.failReason ?? 'upstream-connect-failure' }
            : { status: 503, reason: 'upstream-reset' };
    this.attempt++;
    this.retryOrStop();
  };

  /** Another attempt when the policy, the body buffer and the retry budget allow one, after a backoff. */
  private retryOrStop(): void {
    const retry = this.retry;
    if (this.attempt >= this.maxAttempts || !retry || !this.tap.replayable || !this.cluster.tryRetry()) return this.exhausted();
    this.holdingRetry = true;
    this.pending?.body.resume();
    this.pending = undefined;
    this.ctx.stats.retries.inc({ cluster: this.cluster.model.name });
    this.backoff = setTimeout(() => {
      this.backoff = undefined;
      if (this.routeTimedOut || this.downstreamGone) return this.exhausted();
      this.launch();
    }, retryDelayMs(retry, this.attempt - 1, this.random));
  }

  private releaseRetry(): void {
    if (this.holdingRetry) {
      this.cluster.activeRetries--;
      this.holdingRetry = false;
    }
  }

  /** No more attempts: the last retriable response if one is held, else a local reply. */
  private exhausted(): void {
    this.releaseRetry();
    if (this.pending && !this.routeTimedOut) return this.chosen(this.pending);
    this.pending?.body.destroy();
    if (this.routeTimedOut) return this.finish({ local: { status: 504, reason: 'upstream-timeout' } });
    this.finish({ local: this.last });
  }

  private chosen(res: UpstreamResponse): void {
    this.tap.release();
    if (this.finished) return;
    this.finished = true;
    this.done({ res, timer: this.routeTimer });
  }

  private finish(c: Chosen): void {
    if (this.finished) return;
    this.finished = true;
    this.routeTimer?.cancel();
    this.done(c);
  }
}

function hostResult(o: AttemptOutcome): HostResult {
  if (o.kind !== 'response') return 'local-failure';
  if (o.status === 502 || o.status === 503 || o.status === 504) return 'gateway-error';
  if (o.status >= 500) return 'error-5xx';
  return 'success';
}

