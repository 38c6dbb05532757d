/**
 * The per-rollout view of the sidecars this pilot serves, for the operator (GET /debug/rollouts,
 * contract `PilotRollouts` in @octo-mesh/contracts). Pure: the connected nodes with their agents'
 * last reports and the ProxyVersions in, the counts out. Pilots are sharded, so these are partial
 * sums; the operator adds up every pilot's answer.
 *
 * Counting follows the target each node is sent (`targetFor`), so the operator gates a batch on
 * exactly the instances the pilots told to upgrade, and sees a rollback finish when the release
 * the instances fall back to is targeted and running again.
 */
import type { ProxyVersion } from '@octo-mesh/api';
import type { AgentStatus, RolloutAggregate } from '@octo-mesh/contracts';
import type { NodeIdentity } from './node-meta.js';
import { inScope, targetFor } from './upgrade.js';

export interface ReportingNode {
  identity: NodeIdentity;
  /** The agent's last report; absent while it has said nothing (a proxy without an agent). */
  agent?: AgentStatus;
}

const MAX_FAILURES = 20;

const rolloutName = (pv: ProxyVersion) => `${pv.metadata.namespace ?? 'default'}/${pv.metadata.name}`;

/**
 * One aggregate per ProxyVersion this pilot knows (also those with no sidecar in scope here, so
 * the operator can tell "none of mine" from "not seen yet"), in the order given.
 */
export function rolloutAggregates(nodes: Iterable<ReportingNode>, proxyVersions: readonly ProxyVersion[]): RolloutAggregate[] {
  const byName = new Map<string, RolloutAggregate>();
  const readyAt = new Map<string, number>();
  for (const pv of proxyVersions) {
    byName.set(rolloutName(pv), {
      rollout: rolloutName(pv),
      generation: pv.metadata.generation ?? 0,
      version: pv.spec.version,
      inScope: 0,
      targeted: 0,
      upgraded: 0,
      ready: 0,
      failed: 0,
      newestReadyAt: null,
      failures: [],
      batch: pv.status?.currentBatch ?? 0,
    });
  }
  for (const node of nodes) {
    const target = proxyVersions.length ? targetFor(node.identity, proxyVersions) : undefined;
    for (const pv of proxyVersions) {
      if (!inScope(pv, node.identity)) continue;
      const agg = byName.get(rolloutName(pv))!;
      agg.inScope++;
      if (!target || target.rollout !== agg.rollout || target.version !== pv.spec.version) continue;
      agg.targeted++;
      const agent = node.agent;
      if (!agent) continue;
      const bad = agent.badVersions.find((b) => b.version === pv.spec.version && (b.sha256 === '' || b.sha256 === pv.spec.package.sha256));
      if (bad) {
        agg.failed++;
        if (agg.failures.length < MAX_FAILURES) agg.failures.push({ instanceId: agent.instanceId || node.identity.instanceId, reason: bad.reason, message: failureMessage(agent, pv.spec.version, bad.reason) });
        continue;
      }
      if (agent.runningVersion !== pv.spec.version) continue;
      agg.upgraded++;
      if (!agent.ready) continue;
      agg.ready++;
      const since = agent.readySince ? Date.parse(agent.readySince) : NaN;
      if (Number.isFinite(since) && since > (readyAt.get(agg.rollout) ?? -Infinity)) {
        readyAt.set(agg.rollout, since);
        agg.newestReadyAt = new Date(since).toISOString();
      }
    }
  }
  return [...byName.values()];
}

/** The agent's own words when its last error is about this release, else the reason alone. */
function failureMessage(agent: AgentStatus, version: string, reason: string): string {
  return agent.lastError && agent.lastError.version === version ? agent.lastError.message : reason;
}
