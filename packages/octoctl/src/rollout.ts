/**
 * `octoctl rollout status|pause|resume|abort|undo NAME`: a ProxyVersion rollout as a person
 * steers it. Everything goes through the dispatcher (in Kubernetes it writes through to the API
 * server): pause/resume flip `spec.paused`; abort and undo are requests the operator acts on,
 * written as annotations so the spec (and its immutability rules) stay as they are.
 */
import type { ProxyVersion } from '@octo-mesh/api';
import type { DispatcherConnection } from '@octo-mesh/clients';
import { ago, table } from './format.js';

import { ROLLOUT_ABORT_ANNOTATION as ABORT_ANNOTATION, ROLLOUT_UNDO_ANNOTATION as UNDO_ANNOTATION } from '@octo-mesh/contracts';

export const ROLLOUT_ACTIONS = ['status', 'pause', 'resume', 'abort', 'undo'] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/** What `rollout status` prints: phase, batch, counts, conditions and failures with their reasons. Pure. */
export function renderRolloutStatus(pv: ProxyVersion, now = Date.now()): string {
  const st = (pv.status ?? {}) as NonNullable<ProxyVersion['status']> & Record<string, unknown>;
  const batches = typeof st['batches'] === 'number' ? (st['batches'] as number) : undefined;
  const lines = [
    `ProxyVersion ${pv.metadata.namespace ?? 'default'}/${pv.metadata.name}: version ${pv.spec.version}${pv.spec.paused ? ' (paused)' : ''}`,
    `phase:    ${st.phase ?? 'Pending'}${st.message ? ` — ${st.message}` : ''}`,
    `batch:    ${st.currentBatch !== undefined ? `${st.currentBatch + 1}${batches ? `/${batches}` : ''}` : '-'}${typeof st['batchStartedAt'] === 'string' ? `, started ${ago(st['batchStartedAt'] as string, now)}` : ''}`,
    `sidecars: ${st.total ?? 0} in scope, ${st.updated ?? 0} updated, ${st.ready ?? 0} ready, ${st.failed ?? 0} failed`,
  ];
  const observed = (pv.metadata as { generation?: number }).generation;
  if (st.observedGeneration !== undefined && observed !== undefined && st.observedGeneration < observed) lines.push(`note:     the operator has not seen generation ${observed} yet (status is of ${st.observedGeneration})`);
  let out = `${lines.join('\n')}\n`;
  if (st.conditions?.length) out += `\n${table(['condition', 'status', 'reason', 'message', 'since'], st.conditions.map((c) => [c.type, c.status, c.reason, c.message, ago(c.lastTransitionTime, now)]))}`;
  const failures = Array.isArray(st['failures']) ? (st['failures'] as { instanceId?: string; reason?: string; message?: string }[]) : [];
  if (failures.length) out += `\n${table(['failed instance', 'reason', 'message'], failures.map((f) => [f.instanceId, f.reason, f.message]))}`;
  return out;
}

/**
 * Runs one rollout action on `namespace/name`; resolves with what to print. Pause and resume are
 * no-ops (said so) when the rollout already is in that state.
 */
export async function rolloutAction(d: DispatcherConnection, action: RolloutAction, key: string, now = new Date()): Promise<string> {
  const pv = (await d.get('ProxyVersion', key)) as ProxyVersion;
  if (action === 'status') return renderRolloutStatus(pv, now.getTime());
  const name = `proxyversion/${key}`;
  const rv = pv.metadata.resourceVersion ?? '';
  if (action === 'pause' || action === 'resume') {
    const paused = action === 'pause';
    if ((pv.spec.paused ?? false) === paused) return `${name} already ${paused ? 'paused' : 'running'}\n`;
    await d.apply({ ...pv, spec: { ...pv.spec, paused } }, rv);
    return `${name} ${paused ? 'paused: no batch starts until it is resumed' : 'resumed'}\n`;
  }
  const annotation = action === 'abort' ? ABORT_ANNOTATION : UNDO_ANNOTATION;
  const annotations = { ...((pv.metadata as { annotations?: Record<string, string> }).annotations ?? {}), [annotation]: now.toISOString() };
  await d.apply({ ...pv, metadata: { ...pv.metadata, annotations } } as ProxyVersion, rv);
  return action === 'abort'
    ? `${name} abort requested: the operator stops it and rolls its instances back (or holds them, without autoRollback)\n`
    : `${name} undo requested: the operator rolls every instance it upgraded back to the last Succeeded release before it\n`;
}
