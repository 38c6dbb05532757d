/**
 * Which proxy version a sidecar should run, from the ProxyVersion rollouts — a pure function, so
 * every pilot replica answers the same without storing per-instance state. A sidecar is in a
 * rollout's upgraded set when a stable hash of its instance id falls below the rollout's current
 * progress; as progress grows the set only grows, so no sidecar flips back and forth.
 */
import { createHash } from 'node:crypto';
import { compareSemver, targetPercent, type ProxyVersion } from '@octo-mesh/api';
import type { UpgradeTarget } from '@octo-mesh/proto';
import type { NodeIdentity } from './node-meta.js';

/** 0 ≤ bucket < 10000, stable for an instance id. */
export function instanceBucket(instanceId: string): number {
  return createHash('sha256').update(instanceId).digest().readUInt32BE(0) % 10_000;
}

/**
 * Share of instances (0-100, fractional) a rollout has reached, from its spec and status — the
 * operator's batch math (`targetPercent` in @octo-mesh/api), so the batches pilots target are the
 * batches the operator gates. 0 while the rollout rolls back or after it did.
 */
export function rolloutPercent(pv: ProxyVersion): number {
  return targetPercent(pv.spec, pv.status);
}

function selectorMatches(sel: { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] } | undefined, labels: Record<string, string>): boolean {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const v = labels[e.key];
    if (e.operator === 'In' && !(has && e.values?.includes(v!))) return false;
    if (e.operator === 'NotIn' && has && e.values?.includes(v!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Whether a rollout's scope covers the node. */
export function inScope(pv: ProxyVersion, node: NodeIdentity): boolean {
  const scope = pv.spec.scope;
  const nsLabels = node.namespaceLabels ?? { 'kubernetes.io/metadata.name': node.namespace };
  if (!selectorMatches(scope.namespaceSelector, nsLabels)) return false;
  if (!selectorMatches(scope.workloadSelector, node.labels)) return false;
  if (scope.services && !(node.app && scope.services.includes(node.app))) return false;
  return true;
}

/**
 * The newest release whose rollout covers the node and has reached its instance. A rollout that
 * is rolling back, rolled back, failed with automatic rollback, or was deleted reaches no
 * instance, so its instances fall through to the next release that covers them — the last
 * Succeeded release in their scope (a Succeeded release reaches all of its scope), not "no target".
 * Undefined only when no release covers the node at all (the sidecar stays on what it runs).
 */
export function targetFor(node: NodeIdentity, proxyVersions: readonly ProxyVersion[]): UpgradeTarget | undefined {
  const bucket = instanceBucket(node.instanceId);
  const newestFirst = [...proxyVersions].sort((a, b) => compareSemver(b.spec.version, a.spec.version));
  for (const pv of newestFirst) {
    if (!inScope(pv, node)) continue;
    if (bucket >= rolloutPercent(pv) * 100) continue;
    return {
      version: pv.spec.version,
      packageUrl: pv.spec.package.url,
      sha256: pv.spec.package.sha256,
      signature: pv.spec.package.signature ?? '',
      rollout: `${pv.metadata.namespace ?? 'default'}/${pv.metadata.name}`,
      generation: pv.metadata.generation ?? 0,
    };
  }
  return undefined;
}
