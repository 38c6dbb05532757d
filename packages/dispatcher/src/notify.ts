import { serviceOf } from '@octo-mesh/api';
import type { StoreEvent, Version } from './store.js';
import { compareVersions } from './store.js';

/** A subscription filter; empty (or absent) fields match everything. */
export interface SubscriptionFilter {
  kind?: string;
  namespace?: string;
  name?: string;
  /** `namespace/service` the object concerns. */
  service?: string;
}

/** What a pilot is told: which object changed and its version — never the object. */
export interface Notification {
  kind: string;
  namespace: string;
  name: string;
  version: Version;
  deleted: boolean;
  /** `namespace/service` the object concerns, or '' for mesh-wide kinds. */
  service: string;
}

export function toNotification(e: StoreEvent): Notification {
  const slash = e.key.indexOf('/');
  return {
    kind: e.kind,
    namespace: e.key.slice(0, slash),
    name: e.key.slice(slash + 1),
    version: e.version,
    deleted: e.type === 'DELETE',
    service: serviceOf(e.resource) ?? '',
  };
}

/** Whether one filter matches a notification. */
export function matchesFilter(f: SubscriptionFilter, n: Notification): boolean {
  return (
    (!f.kind || f.kind === n.kind) &&
    (!f.namespace || f.namespace === n.namespace) &&
    (!f.name || f.name === n.name) &&
    (!f.service || f.service === n.service)
  );
}

/** Whether any subscription matches; no subscriptions at all means "nothing". */
export function isSubscribed(subs: readonly SubscriptionFilter[], n: Notification): boolean {
  return subs.some((f) => matchesFilter(f, n));
}

/**
 * Coalesces notifications per object: adding a newer notification for a key that is still
 * pending replaces the older one, so a burst of changes to one object becomes one notification
 * carrying the latest version. Drained in version order, so a client that records the last
 * version it saw and resumes from it never skips a pending change of another object.
 */
export class NotificationBuffer {
  private readonly pending = new Map<string, Notification>();
  /** Notifications dropped because a newer one for the same key replaced them. */
  coalesced = 0;

  add(n: Notification): void {
    const id = `${n.kind}|${n.namespace}/${n.name}`;
    const prev = this.pending.get(id);
    if (prev) {
      if (compareVersions(prev.version, n.version) >= 0) return;
      this.coalesced++;
      this.pending.delete(id);
    }
    this.pending.set(id, n);
  }

  get size(): number {
    return this.pending.size;
  }

  drain(): Notification[] {
    const out = [...this.pending.values()].sort((a, b) => compareVersions(a.version, b.version));
    this.pending.clear();
    return out;
  }
}
