/**
 * A state-of-the-world ADS stream (StreamAggregatedResources).
 *
 * Per type the stream keeps one response in flight: a new version is sent only after the proxy
 * answered the previous one (ACK or NACK), which is both flow control and what makes change→ACK
 * measurable. A request whose nonce is not the last one sent for its type is stale — the proxy
 * had not yet seen our latest response when it wrote it — and is ignored, as the xDS protocol
 * asks. A NACKed version is never sent again; the next different version is.
 */
import type { DiscoveryRequest } from '@octo-mesh/proto';
import type { Snapshot, TypeSnapshot } from '../xds/snapshot.js';
import { sotwResponse, type Encoded } from './encode.js';
import { AdsStream, boundedWait, pushOrder } from './stream.js';

interface TypeState {
  /** undefined = wildcard (everything the snapshot has of the type). */
  names: Set<string> | undefined;
  /** Version last sent, or the version the proxy said it had when it (re)connected. */
  sentVersion: string;
  nonce: string;
  /** A response is in flight: wait for its ACK/NACK before sending another. */
  inFlight: boolean;
  nackedVersion?: string;
  /** Names were added since the last response: send even if the version is unchanged. */
  namesAdded: boolean;
  /** Named subscriptions: name → resource version in the last response. */
  wireResources?: Map<string, string>;
  /** The last response was NACKed. */
  rejected?: boolean;
}

export class SotwStream extends AdsStream {
  private readonly types = new Map<string, TypeState>();
  write: (r: Encoded) => void = () => {};

  handleRequest(req: DiscoveryRequest): void {
    this.enqueue(req.node, () => this.process(req));
  }

  private process(req: DiscoveryRequest): void | Promise<void> {
    const typeUrl = req.typeUrl;
    if (!typeUrl) return; // an ADS request must name its type; nothing to answer
    let st = this.types.get(typeUrl);
    // What was subscribed before this request (a request without a nonce starts the type over,
    // but names it no longer lists are still unsubscribed).
    const before = st?.names;
    let first = false;
    if (req.responseNonce) {
      if (!st || req.responseNonce !== st.nonce) return; // stale
      if (st.inFlight) {
        st.inFlight = false;
        st.rejected = !!req.errorDetail;
        if (req.errorDetail) {
          st.nackedVersion = st.sentVersion;
          this.callbacks.onNack?.(this, typeUrl, st.sentVersion, req.responseNonce, req.errorDetail.message || `code ${req.errorDetail.code}`);
        } else {
          this.callbacks.onAck?.(this, typeUrl, req.versionInfo, req.responseNonce);
        }
      }
      // else: a follow-up to a response already answered (a subscription change): no new ACK/NACK
    } else if (!st || !st.inFlight) {
      // A first request for the type, perhaps on a new stream after a reconnect: the proxy
      // tells us which version it already has, and it is not sent that version again.
      st = { names: undefined, sentVersion: req.versionInfo, nonce: '', inFlight: false, namesAdded: false };
      this.types.set(typeUrl, st);
      first = true;
    } else {
      return; // a request without nonce while a response is in flight: wait for its answer
    }
    // '*' subscribes to everything; an empty list keeps a wildcard subscription (legacy
    // wildcard) but empties a named one.
    const asked = req.resourceNames;
    this.checkSubscribed(typeUrl, asked.length);
    const next = asked.includes('*') ? undefined : asked.length === 0 ? (st.names === undefined ? undefined : new Set<string>()) : new Set(asked);
    if (!first && (next === undefined ? st.names !== undefined : [...next].some((n) => !st.names?.has(n)))) st.namesAdded = true;
    const dropped = before && next ? [...before].filter((n) => !next.has(n)) : undefined;
    st.names = next;
    if (dropped?.length) this.callbacks.onUnsubscribe?.(this, typeUrl, dropped);
    if (first && req.versionInfo) this.callbacks.onResume?.(this, typeUrl, req.versionInfo);
    this.callbacks.onStreamRequest?.(this, typeUrl, req.resourceNames);
    const snapshot = this.snapshot();
    if (next && snapshot) {
      const have = snapshot.get(typeUrl)?.resources;
      const missing = [...next].filter((n) => !have?.has(n));
      this.checkMissing(typeUrl, missing);
      const learning = missing.length ? this.callbacks.onMissingResources?.(this, typeUrl, missing) : undefined;
      if (learning) return boundedWait(learning).then(() => this.respond(typeUrl));
    }
    this.respond(typeUrl);
  }

  *namedSubscriptions(): Iterable<readonly [string, ReadonlySet<string>]> {
    for (const [t, st] of this.types) if (st.names) yield [t, st.names];
  }

  protected onSnapshot(_snapshot: Snapshot): void {
    for (const t of pushOrder(this.types.keys())) this.respond(t);
  }

  private respond(typeUrl: string): void {
    const st = this.types.get(typeUrl);
    const snapshot = this.snapshot();
    if (!st || !snapshot || st.inFlight || this.closed) return;
    const ts = snapshot.get(typeUrl);
    if (!ts) return; // not a type this pilot serves the node (yet)
    const changed = ts.version !== st.sentVersion && ts.version !== st.nackedVersion;
    if (!changed && !st.namesAdded) return;
    if (st.names && !st.namesAdded && st.wireResources && sameResources(ts, st.names, st.wireResources)) {
      // A named subscription (EDS, RDS) whose resources did not change — the type changed
      // elsewhere: nothing to send. The proxy is as current as if it had this version, unless
      // it rejected what it has, which is then exactly what would be sent again.
      st.sentVersion = ts.version;
      if (!st.rejected) this.callbacks.onUnchanged?.(this, typeUrl, ts.version);
      return;
    }
    const nonce = this.nextNonce();
    this.write(sotwResponse(ts, nonce, st.names));
    st.sentVersion = ts.version;
    st.nonce = nonce;
    st.inFlight = true;
    st.namesAdded = false;
    const names = st.names ? [...st.names].filter((n) => ts.resources.has(n)) : [...ts.resources.keys()];
    st.wireResources = st.names ? new Map(names.map((n) => [n, ts.resources.get(n)!.version])) : undefined;
    this.callbacks.onStreamResponse?.(this, typeUrl, ts.version, nonce, names);
  }
}

/** Whether the subscribed resources are exactly those (same versions, none added or gone) sent last. */
function sameResources(ts: TypeSnapshot, names: ReadonlySet<string>, sent: ReadonlyMap<string, string>): boolean {
  for (const n of names) if (ts.resources.get(n)?.version !== sent.get(n)) return false;
  return true;
}
