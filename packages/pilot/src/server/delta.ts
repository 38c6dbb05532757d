/**
 * An incremental ADS stream (DeltaAggregatedResources).
 *
 * Per type the stream tracks what the proxy has (name → version, seeded from
 * `initial_resource_versions` on reconnect) and sends only the difference: resources whose
 * version differs, and `removed_resources` for names it has that the snapshot no longer holds
 * (or that it subscribed to and do not exist). Subscription changes are applied from every
 * request, stale or not; ACK/NACK only from a request carrying the last nonce. As in SotW one
 * response per type is in flight, and a NACKed type version is not sent again.
 */
import type { DeltaDiscoveryRequest } from '@octo-mesh/proto';
import type { XdsResource } from '../xds/resource.js';
import type { Snapshot } from '../xds/snapshot.js';
import { deltaResponse, type Encoded } from './encode.js';
import { AdsStream, boundedWait, pushOrder } from './stream.js';

/** Marks a name the proxy was told does not exist. */
const ABSENT = '';

interface TypeState {
  wildcard: boolean;
  names: Set<string>;
  /** What the proxy has: name → version (ABSENT: told it does not exist). */
  known: Map<string, string>;
  nonce: string;
  inFlight: boolean;
  sentVersion: string;
  nackedVersion?: string;
  /** Nothing sent yet: the first response goes out even when empty, so the proxy is not left waiting. */
  fresh: boolean;
}

export class DeltaStream extends AdsStream {
  private readonly types = new Map<string, TypeState>();
  write: (r: Encoded) => void = () => {};

  handleRequest(req: DeltaDiscoveryRequest): void {
    this.enqueue(req.node, () => this.process(req));
  }

  private process(req: DeltaDiscoveryRequest): void | Promise<void> {
    const typeUrl = req.typeUrl;
    if (!typeUrl) return;
    let st = this.types.get(typeUrl);
    if (!st) {
      st = {
        wildcard: req.resourceNamesSubscribe.length === 0 || req.resourceNamesSubscribe.includes('*'),
        names: new Set(),
        known: new Map(Object.entries(req.initialResourceVersions)),
        nonce: '',
        inFlight: false,
        sentVersion: '',
        fresh: true,
      };
      this.types.set(typeUrl, st);
    }
    if (req.responseNonce && req.responseNonce === st.nonce && st.inFlight) {
      st.inFlight = false;
      if (req.errorDetail) {
        st.nackedVersion = st.sentVersion;
        this.callbacks.onNack?.(this, typeUrl, st.sentVersion, req.responseNonce, req.errorDetail.message || `code ${req.errorDetail.code}`);
      } else {
        this.callbacks.onAck?.(this, typeUrl, st.sentVersion, req.responseNonce);
      }
    }
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    const dropped: string[] = [];
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') st.wildcard = false;
      else {
        if (st.names.delete(n)) dropped.push(n);
        st.known.delete(n);
      }
    }
    if (dropped.length) this.callbacks.onUnsubscribe?.(this, typeUrl, dropped);
    this.checkSubscribed(typeUrl, st.names.size);
    this.callbacks.onStreamRequest?.(this, typeUrl, req.resourceNamesSubscribe);
    const have = this.snapshot()?.get(typeUrl)?.resources;
    if (have && req.resourceNamesSubscribe.length) {
      const missing = req.resourceNamesSubscribe.filter((n) => n !== '*' && !have.has(n));
      this.checkMissing(typeUrl, missing);
      const learning = missing.length ? this.callbacks.onMissingResources?.(this, typeUrl, missing) : undefined;
      if (learning) return boundedWait(learning).then(() => this.respond(typeUrl));
    }
    this.respond(typeUrl);
  }

  *namedSubscriptions(): Iterable<readonly [string, ReadonlySet<string>]> {
    for (const [t, st] of this.types) if (st.names.size) yield [t, st.names];
  }

  protected onSnapshot(_snapshot: Snapshot): void {
    for (const t of pushOrder(this.types.keys())) this.respond(t);
  }

  private respond(typeUrl: string): void {
    const st = this.types.get(typeUrl);
    const ts = this.snapshot()?.get(typeUrl);
    if (!st || !ts || st.inFlight || this.closed) return;
    if (ts.version === st.nackedVersion && !st.fresh) return;
    const changed: XdsResource[] = [];
    const removed: string[] = [];
    const consider = new Set(st.names);
    if (st.wildcard) {
      for (const n of ts.resources.keys()) consider.add(n);
      for (const n of st.known.keys()) consider.add(n);
    }
    for (const name of consider) {
      const r = ts.resources.get(name);
      const had = st.known.get(name);
      if (r) {
        if (had !== r.version) changed.push(r);
      } else if (had !== ABSENT && (had !== undefined || st.names.has(name))) {
        removed.push(name);
      }
    }
    if (!changed.length && !removed.length && !st.fresh) {
      if (st.sentVersion !== ts.version) {
        st.sentVersion = ts.version;
        this.callbacks.onUnchanged?.(this, typeUrl, ts.version);
      }
      return;
    }
    const nonce = this.nextNonce();
    this.write(deltaResponse(typeUrl, ts.version, changed, removed, nonce));
    for (const r of changed) st.known.set(r.name, r.version);
    for (const n of removed) {
      if (st.names.has(n)) st.known.set(n, ABSENT);
      else st.known.delete(n);
    }
    st.nonce = nonce;
    st.inFlight = true;
    st.fresh = false;
    st.sentVersion = ts.version;
    this.callbacks.onStreamResponse?.(this, typeUrl, ts.version, nonce, changed.map((r) => r.name));
  }
}
