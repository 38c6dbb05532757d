/**
 * Which proxy version a sidecar should run, from the ProxyVersion rollouts — a pure function, so
 * every pilot replica answers the same without storing per-instance state. A sidecar is in a
 * rollout's upgraded set when a stable hash of its instance id falls below the rollout's current
 * progress; as progress grows the set only grows, so no sidecar flips back and forth.
 */
import { createHash } from 'node:crypto';
import type { ProxyVersion } from '@octo-mesh/api';
import type { UpgradeTarget } from '@octo-mesh/proto';
import type { NodeIdentity } from './node-meta.js';

/** 0 ≤ bucket < 10000, stable for an instance id. */
export function instanceBucket(instanceId: string): number {
  return createHash('sha256').update(instanceId).digest().readUInt32BE(0) % 10_000;
}

/** Share of instances (0-100, fractional) a rollout has reached, from its spec and status. */
export function rolloutPercent(pv: ProxyVersion): number {
  const st = pv.status;
  const phase = st?.phase ?? 'Pending';
  if (phase === 'Succeeded') return 100;
  if (phase !== 'Progressing' && phase !== 'Paused') return 0;
  const batch = st?.currentBatch ?? 0;
  const total = st?.total ?? 0;
  const { canary, steps, maxUnavailable } = pv.spec.strategy;
  const batches: number[] = [];
  if (canary) batches.push(canary.percent ?? (total > 0 ? (100 * (canary.instances ?? 0)) / total : 0));
  if (steps) batches.push(...steps);
  else if (maxUnavailable && total > 0) {
    const start = batches.length ? batches[0]! : 0;
    for (let p = start + (100 * maxUnavailable) / total; p < 100; p += (100 * maxUnavailable) / total) batches.push(p);
    batches.push(100);
  }
  return Math.min(100, batches[Math.min(batch, batches.length - 1)] ?? 0);
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

const semverParts = (v: string) => v.split(/[-+]/)[0]!.split('.').map(Number);
function compareSemver(a: string, b: string): number {
  const x = semverParts(a);
  const y = semverParts(b);
  for (let i = 0; i < 3; i++) if (x[i]! !== y[i]!) return x[i]! - y[i]!;
  return a.includes('-') === b.includes('-') ? a.localeCompare(b) : a.includes('-') ? -1 : 1;
}

/**
 * The newest release whose rollout covers the node and has reached its instance; undefined when
 * none does (the sidecar stays on what it runs).
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
