/**
 * Sync status per node and type, as istiod's `/debug/syncz` shows it: what was sent, what the
 * proxy ACKed or NACKed, and how that compares with the node's current snapshot.
 */
export type SyncState = 'SYNCED' | 'NOT SENT' | 'STALE' | 'NACKED';

export interface TypeSync {
  sent?: { version: string; nonce: string; at: number };
  acked?: { version: string; at: number };
  /** The last NACK; kept after later ACKs for the record (`state` tells whether it still matters). */
  nacked?: { version: string; error: string; at: number };
  /** A change reached this type at `at` and produced `version`; cleared by the ACK of that version. */
  pending?: { version: string; at: number };
  /**
   * The version the proxy said it already holds when it subscribed on this stream (SotW
   * `version_info` of its first request: a reconnect, e.g. after failing over from another pilot).
   * It is the version it last accepted, so it counts as ACKed at that version.
   */
  held?: { version: string; at: number };
}

export interface NodeSync {
  nodeId: string;
  streamId: number;
  streamKind: 'sotw' | 'delta';
  connectedAt: number;
  types: Map<string, TypeSync>;
}

/**
 * The state of one type of one node.
 * - NACKED: the latest response the proxy answered was NACKed and nothing newer went out since;
 * - SYNCED: the proxy ACKed the snapshot's current version — or, with nothing sent or ACKed on
 *   this stream, it subscribed saying it already holds that version (a proxy that reconnects up
 *   to date is sent nothing, and is in sync);
 * - NOT SENT: nothing of the type was sent on the current stream (and no NACK), and the proxy
 *   did not say it holds any version;
 * - STALE: anything else — a newer version is in flight, not sent yet because one is in flight,
 *   or the proxy holds an older version than the current one.
 */
export function syncState(t: TypeSync | undefined, currentVersion: string): SyncState {
  if (t?.nacked && t.sent && t.nacked.version === t.sent.version && (!t.acked || t.acked.at <= t.nacked.at)) return 'NACKED';
  const acked = effectiveAck(t);
  if (!t?.sent && !acked) return 'NOT SENT';
  if (acked?.version === currentVersion) return 'SYNCED';
  return 'STALE';
}

/** The ACK in force: the last ACK on this stream, else the version the proxy said it holds. */
function effectiveAck(t: TypeSync | undefined): { version: string; at: number } | undefined {
  return t?.acked ?? (t?.held && t.held.version !== '' ? t.held : undefined);
}

export interface SyncReportEntry {
  typeUrl: string;
  state: SyncState;
  current: string;
  sent?: string;
  acked?: string;
  nacked?: string;
  error?: string;
}

export class SyncTracker {
  private readonly nodes = new Map<string, NodeSync>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  connected(nodeId: string, streamId: number, streamKind: 'sotw' | 'delta'): void {
    this.nodes.set(nodeId, { nodeId, streamId, streamKind, connectedAt: Date.now(), types: new Map() });
  }

  /** Forgets the node when `streamId` is still its current stream (a reconnect may have replaced it). */
  disconnected(nodeId: string, streamId: number): void {
    if (this.nodes.get(nodeId)?.streamId === streamId) this.nodes.delete(nodeId);
  }

  private type(nodeId: string, typeUrl: string): TypeSync | undefined {
    const n = this.nodes.get(nodeId);
    if (!n) return undefined;
    let t = n.types.get(typeUrl);
    if (!t) n.types.set(typeUrl, (t = {}));
    return t;
  }

  /** A change produced `version` of the type for the node at time `at` (for change→ACK latency). */
  changed(nodeId: string, typeUrl: string, version: string, at: number): void {
    const t = this.type(nodeId, typeUrl);
    if (t && !t.pending) t.pending = { version, at };
    else if (t?.pending) t.pending = { version, at: t.pending.at }; // coalesced: latency counts from the first change
  }

  sent(nodeId: string, typeUrl: string, version: string, nonce: string): void {
    const t = this.type(nodeId, typeUrl);
    if (t) t.sent = { version, nonce, at: this.now() };
  }

  /** Records an ACK; returns the change→ACK latency in ms when it completes a pending change. */
  acked(nodeId: string, typeUrl: string, version: string): number | undefined {
    const t = this.type(nodeId, typeUrl);
    if (!t) return undefined;
    const at = this.now();
    t.acked = { version, at };
    if (t.pending?.version === version) {
      const ms = at - t.pending.at;
      delete t.pending;
      return ms;
    }
    return undefined;
  }

  /**
   * The proxy is as current as `version` without having been sent it (nothing it subscribes to
   * changed). A pending change stays pending: if it brought resources the proxy has yet to ask
   * for (new clusters' endpoints), its latency ends with the ACK of their delivery.
   */
  upToDate(nodeId: string, typeUrl: string, version: string): void {
    const t = this.type(nodeId, typeUrl);
    if (t) t.acked = { version, at: this.now() };
  }

  /** The proxy subscribed on this stream saying it already holds `version` (its last accepted). */
  holds(nodeId: string, typeUrl: string, version: string): void {
    const t = this.type(nodeId, typeUrl);
    if (t && version) t.held = { version, at: this.now() };
  }

  nacked(nodeId: string, typeUrl: string, version: string, error: string): void {
    const t = this.type(nodeId, typeUrl);
    if (t) {
      t.nacked = { version, error, at: this.now() };
      if (t.pending?.version === version) delete t.pending;
    }
  }

  get(nodeId: string): NodeSync | undefined {
    return this.nodes.get(nodeId);
  }

  nodeIds(): string[] {
    return [...this.nodes.keys()];
  }

  /**
   * How many nodes are in each state, per type, against each node's current versions (type URL →
   * version pairs; undefined: the node has no snapshot and is not counted). Runs at every scrape
   * of /metrics: it allocates nothing per node — the per-node reports it was built from took
   * ~0.4 s of a pilot's event loop per scrape at 10,000 sidecars (bench/scale CPU profile), and
   * the streams of a re-home storm waited behind it.
   */
  counts(current: (nodeId: string) => Iterable<readonly [typeUrl: string, version: string]> | undefined): Map<string, Map<SyncState, number>> {
    const out = new Map<string, Map<SyncState, number>>();
    for (const [id, n] of this.nodes) {
      const versions = current(id);
      if (!versions) continue;
      for (const [typeUrl, version] of versions) {
        const state = syncState(n.types.get(typeUrl), version);
        let m = out.get(typeUrl);
        if (!m) out.set(typeUrl, (m = new Map()));
        m.set(state, (m.get(state) ?? 0) + 1);
      }
    }
    return out;
  }

  /** The node's per-type report against its current versions (type URL → version). */
  report(nodeId: string, current: ReadonlyMap<string, string>): SyncReportEntry[] {
    const n = this.nodes.get(nodeId);
    return [...current.entries()].map(([typeUrl, version]) => {
      const t = n?.types.get(typeUrl);
      return {
        typeUrl,
        state: syncState(t, version),
        current: version,
        ...(t?.sent ? { sent: t.sent.version } : {}),
        ...(effectiveAck(t) ? { acked: effectiveAck(t)!.version } : {}),
        ...(t?.nacked ? { nacked: t.nacked.version, error: t.nacked.error } : {}),
      };
    });
  }
}
