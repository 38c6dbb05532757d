/**
 * The snapshot cache: the current snapshot of every node, and who to tell when it changes. It
 * knows nothing of gRPC; the ADS server subscribes to it per stream.
 */
import { Snapshot } from './snapshot.js';

export type SnapshotListener = (snapshot: Snapshot) => void;

export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly listeners = new Map<string, Set<SnapshotListener>>();

  /**
   * Publishes a node's snapshot after checking its consistency (an inconsistent one throws
   * InconsistentSnapshotError and is not published). Listeners of the node are called
   * synchronously, in subscription order.
   */
  setSnapshot(nodeId: string, snapshot: Snapshot): void {
    snapshot.assertConsistent();
    this.publish(nodeId, snapshot);
  }

  /** As setSnapshot, for a snapshot already known consistent (shared by many nodes of one scope). */
  publish(nodeId: string, snapshot: Snapshot): void {
    if (this.snapshots.get(nodeId) === snapshot) return;
    this.snapshots.set(nodeId, snapshot);
    for (const l of this.listeners.get(nodeId) ?? []) l(snapshot);
  }

  getSnapshot(nodeId: string): Snapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  clearSnapshot(nodeId: string): void {
    this.snapshots.delete(nodeId);
  }

  /** Calls `listener` on every later snapshot of the node; returns the unsubscribe function. */
  subscribe(nodeId: string, listener: SnapshotListener): () => void {
    let set = this.listeners.get(nodeId);
    if (!set) this.listeners.set(nodeId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(nodeId) === set) this.listeners.delete(nodeId);
    };
  }

  nodeIds(): string[] {
    return [...this.snapshots.keys()];
  }
}
