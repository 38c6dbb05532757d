/**
 * What the SotW and delta streams share: identity, the callbacks, request serialisation and the
 * subscription to the node's snapshot.
 */
import { recordError } from '@octo-mesh/runtime';
import type { Node } from '@octo-mesh/proto';
import type { AdmissionTicket } from './admission.js';
import type { SnapshotCache } from '../xds/cache.js';
import type { Snapshot } from '../xds/snapshot.js';
import { PUSH_ORDER } from '../xds/snapshot.js';

export interface StreamInfo {
  readonly id: number;
  readonly kind: 'sotw' | 'delta';
  readonly peer: string;
  /** Set from the first request (which must carry it); later requests may omit it. */
  node?: Node;
  /** The names subscribed to per type, for the types subscribed by name (not wildcard). */
  namedSubscriptions?(): Iterable<readonly [typeUrl: string, names: ReadonlySet<string>]>;
}

/**
 * Hooks the ADS server calls; logging, metrics, sync status and Pilot's own bookkeeping hang off
 * them. All are synchronous except `onNode`; none may throw except `onNode`.
 */
export interface ServerCallbacks {
  onStreamOpen?(stream: StreamInfo): void;
  /**
   * The first request of a stream named its node. Pilot prepares the node's snapshot here; the
   * stream handles no request until the returned promise settles. Throwing (or rejecting) ends
   * the stream with INVALID_ARGUMENT and the error's message.
   */
  onNode?(stream: StreamInfo, node: Node): void | Promise<void>;
  /** Every request, after ACK/NACK bookkeeping. */
  onStreamRequest?(stream: StreamInfo, typeUrl: string, names: readonly string[]): void;
  onStreamResponse?(stream: StreamInfo, typeUrl: string, version: string, nonce: string, resourceNames: readonly string[]): void;
  /**
   * SotW: the first request for a type on this stream says the proxy already holds `version`
   * (the last it accepted, typically from before a reconnect). It is not sent that version again.
   */
  onResume?(stream: StreamInfo, typeUrl: string, version: string): void;
  /** The proxy accepted `version` of a type. */
  onAck?(stream: StreamInfo, typeUrl: string, version: string, nonce: string): void;
  /** The proxy rejected the response with `nonce`, which carried `version`; it keeps what it had. */
  onNack?(stream: StreamInfo, typeUrl: string, version: string, nonce: string, error: string): void;
  /**
   * Delta only: the type changed to `version` but nothing the proxy subscribed to did, so nothing
   * was sent — the proxy is as up to date as if it had ACKed `version`.
   */
  onUnchanged?(stream: StreamInfo, typeUrl: string, version: string): void;
  /**
   * The client asked for names its snapshot lacks — perhaps a service it did not declare
   * (on-demand). A returned promise holds the answer for that type until it settles (at most
   * {@link MISSING_WAIT_MS}): learning the names publishes a new snapshot, and answering before
   * it would tell the client they do not exist. The stream handles its next request meanwhile
   * only after the wait.
   */
  onMissingResources?(stream: StreamInfo, typeUrl: string, names: readonly string[]): void | Promise<void>;
  /**
   * The client stopped subscribing to `names` of a type (a SotW request that no longer lists
   * them, or delta's `resource_names_unsubscribe`); the stream's subscriptions already exclude
   * them. Pilot forgets a service it learned for the node once no subscribed name names it.
   */
  onUnsubscribe?(stream: StreamInfo, typeUrl: string, names: readonly string[]): void;
  onStreamClosed?(stream: StreamInfo): void;
}

/**
 * Bounds on what one stream may ask for. Every name a client subscribes to is state the pilot
 * keeps for that stream, and every name its snapshot lacks is a service the pilot may go and
 * fetch (on-demand learning): without bounds one client asking for 10,000 made-up names grew a
 * pilot by 550 MB. A stream over a bound ends with RESOURCE_EXHAUSTED naming it.
 */
export interface StreamLimits {
  /** Names subscribed to per type (a sidecar's clusters and load assignments: a few per dependency). */
  namesPerType: number;
  /** Distinct names missing from the snapshot a stream may ask for over its life (learned on demand). */
  missingNames: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { namesPerType: 10_000, missingNames: 1_000 };

/** gRPC RESOURCE_EXHAUSTED. */
const RESOURCE_EXHAUSTED = 8;

/** Longest a response waits for on-demand learning (a mesh source that does not answer must not stall the stream). */
export const MISSING_WAIT_MS = 2000;

/**
 * Waits for `p`, at most `ms`; never rejects: the response goes out either way. Learning logs
 * its own failures; a rejection seen here is still counted (octo_errors_total{where}).
 */
export async function boundedWait(p: void | Promise<void>, ms = MISSING_WAIT_MS): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  const settled = p.then(undefined, (err: unknown) => recordError(undefined, 'on-demand learning before a response', err));
  await Promise.race([settled, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}

/** Order in which types are considered on a snapshot change: known types first, then the rest. */
export function pushOrder(types: Iterable<string>): string[] {
  const all = [...types];
  return [...PUSH_ORDER.filter((t) => all.includes(t)), ...all.filter((t) => !PUSH_ORDER.includes(t)).sort()];
}

export abstract class AdsStream implements StreamInfo {
  node?: Node;
  private queue: Promise<void>;
  private unsubscribe: (() => void) | undefined;
  protected closed = false;
  private nonceCounter = 0;
  /** Set by the server before the first request. */
  limits: StreamLimits = DEFAULT_STREAM_LIMITS;
  /** Names this stream asked for that its snapshot lacked (bounded by `limits.missingNames`). */
  private missingSeen: Set<string> | undefined;

  constructor(
    readonly id: number,
    readonly kind: 'sotw' | 'delta',
    readonly peer: string,
    protected readonly cache: SnapshotCache,
    protected readonly callbacks: ServerCallbacks,
    private readonly admission: AdmissionTicket,
    private readonly fail: (code: number, message: string) => void,
  ) {
    this.queue = admission.admitted;
  }

  get nodeId(): string {
    return this.node?.id ?? '';
  }

  /** Queues a request; requests are handled one at a time, in order (a handler's promise is awaited). */
  enqueue(node: Node | undefined, handle: () => void | Promise<void>): void {
    this.queue = this.queue
      .then(async () => {
        if (this.closed) return;
        if (!this.node) {
          if (!node?.id) throw Object.assign(new Error('the first request of a stream must carry node.id'), { code: 3 });
          this.node = node;
          try {
            await this.callbacks.onNode?.(this, node);
          } catch (err) {
            throw Object.assign(new Error((err as Error).message), { code: 3 });
          }
          if (this.closed) return;
          this.unsubscribe = this.cache.subscribe(node.id, (s) => this.onSnapshot(s));
        }
        await handle();
        // Set up: the node is placed and its first request answered; admission may let the next stream in.
        this.admission.done();
      })
      .catch((err: Error & { code?: number }) => {
        this.admission.done();
        if (this.closed) return;
        this.fail(err.code ?? 13, err.message);
        this.close();
      });
  }

  /** Throws RESOURCE_EXHAUSTED when a type's subscription grows past the limit. */
  protected checkSubscribed(typeUrl: string, count: number): void {
    if (count > this.limits.namesPerType)
      throw Object.assign(new Error(`${typeUrl}: ${count} resource names subscribed; at most ${this.limits.namesPerType} per type`), { code: RESOURCE_EXHAUSTED });
  }

  /**
   * Counts names the snapshot lacks before they are learned on demand; throws RESOURCE_EXHAUSTED
   * past the stream's limit (a client naming services that do not exist would otherwise have the
   * pilot fetch and track each one).
   */
  protected checkMissing(typeUrl: string, missing: readonly string[]): void {
    const seen = (this.missingSeen ??= new Set());
    for (const n of missing) {
      seen.add(n);
      if (seen.size > this.limits.missingNames)
        throw Object.assign(new Error(`${typeUrl}: more than ${this.limits.missingNames} resource names this pilot does not have were asked for on this stream`), { code: RESOURCE_EXHAUSTED });
    }
  }

  protected nextNonce(): string {
    return (++this.nonceCounter).toString(36);
  }

  protected snapshot(): Snapshot | undefined {
    return this.cache.getSnapshot(this.nodeId);
  }

  protected abstract onSnapshot(snapshot: Snapshot): void;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.admission.done();
    this.missingSeen = undefined;
    this.unsubscribe?.();
    this.callbacks.onStreamClosed?.(this);
  }
}
