/** Pilot's Prometheus metrics. */
import { Counter, Gauge, Histogram, type Registry } from '@octo-mesh/runtime';

export interface PilotMetrics {
  connected: Gauge;
  pushes: Counter;
  nacks: Counter;
  pushLatency: Histogram;
  translations: Counter;
  rejectedPolicies: Gauge;
  rejectedAuthorizationPolicies: Gauge;
  /** Failures reading who backs a namespace's services (each retried or kept until the next change), by where. */
  backingFailures: Counter;
  queuedStreams: Gauge;
  syncStates: Gauge;
  /** Sidecar status reports, by result (accepted, invalid, not-connected). */
  sidecarStatusReports: Counter;
}

/** Per type URL, how many nodes are in each sync state (computed at scrape time). */
export type SyncCounts = () => Map<string, Map<string, number>>;

export function createPilotMetrics(registry: Registry, queued: () => number = () => 0, syncCounts: SyncCounts = () => new Map()): PilotMetrics {
  const registers = [registry];
  return {
    connected: new Gauge({ name: 'pilot_xds_connected_proxies', help: 'ADS streams open, by kind (sotw, delta).', labelNames: ['kind'], registers }),
    pushes: new Counter({ name: 'pilot_xds_pushes_total', help: 'Responses sent on ADS streams, by type.', labelNames: ['type'], registers }),
    nacks: new Counter({ name: 'pilot_xds_nacks_total', help: 'Responses proxies rejected, by type.', labelNames: ['type'], registers }),
    pushLatency: new Histogram({
      name: 'pilot_push_latency_seconds',
      help: 'From a change reaching Pilot to the ACK of the configuration it produced, per proxy and type.',
      labelNames: ['type'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    translations: new Counter({ name: 'pilot_service_translations_total', help: 'Service translations, by what was rebuilt (full, endpoints).', labelNames: ['kind'], registers }),
    sidecarStatusReports: new Counter({ name: 'pilot_sidecar_status_reports_total', help: 'LEGO agent status reports forwarded by sidecars, by result.', labelNames: ['result'], registers }),
    rejectedPolicies: new Gauge({ name: 'pilot_rejected_route_policies', help: 'RoutePolicies currently rejected.', registers }),
    backingFailures: new Counter({ name: 'pilot_backing_failures_total', help: 'Failures reading which services a namespace\'s workloads back (for their inbound RBAC), by where; each is retried.', labelNames: ['where'], registers }),
    rejectedAuthorizationPolicies: new Gauge({ name: 'pilot_rejected_authorization_policies', help: 'AuthorizationPolicies currently rejected (enforced fail-closed).', registers }),
    syncStates: new Gauge({
      name: 'pilot_xds_sync_state',
      help: 'Connected proxies per type and sync state (SYNCED, NOT SENT, STALE, NACKED).',
      labelNames: ['type', 'state'],
      registers,
      collect() {
        this.reset();
        for (const [typeUrl, states] of syncCounts())
          for (const [state, n] of states) this.set({ type: typeUrl.slice(typeUrl.lastIndexOf('.') + 1), state }, n);
      },
    }),
    queuedStreams: new Gauge({
      name: 'pilot_xds_queued_streams',
      help: 'New ADS streams waiting for admission.',
      registers,
      collect() {
        this.set(queued());
      },
    }),
  };
}
