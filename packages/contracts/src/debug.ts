/**
 * The debug APIs the control plane serves on its HTTP port (15014 and friends), as zod schemas:
 * the servers type their handlers with these, and the typed clients in @octo-mesh/clients parse
 * every answer through them, so a change on one side fails to compile or fails loudly on the
 * other. A server may add fields: parsing keeps only what is named here.
 */
import { authorizationPolicyStatus, routePolicyStatus } from '@octo-mesh/api';
import { z } from 'zod';

/** xDS sync state of one type of one node, as istiod's `/debug/syncz` names them. */
export const SYNC_STATES = ['SYNCED', 'NOT SENT', 'STALE', 'NACKED'] as const;
export type SyncStateName = (typeof SYNC_STATES)[number];

/** One type of one node in a pilot's `GET /debug/syncz`. */
export const TypeSyncView = z.object({
  typeUrl: z.string(),
  /** The type URL's last segment, e.g. `Cluster`. */
  type: z.string(),
  state: z.enum(SYNC_STATES),
  current: z.string(),
  sent: z.string().optional(),
  acked: z.string().optional(),
  nacked: z.string().optional(),
  error: z.string().optional(),
});

/** One connected node in a pilot's `GET /debug/syncz` (an array of these; `?node=ID` answers one). */
export const NodeSyncView = z.object({
  node: z.string(),
  stream: z.object({ id: z.number(), kind: z.enum(['sotw', 'delta']), connectedAt: z.string() }).optional(),
  types: z.array(TypeSyncView),
});
export type NodeSyncView = z.infer<typeof NodeSyncView>;
export const PilotSyncz = z.array(NodeSyncView);

/**
 * The state octoctl shows for a node (like `istioctl proxy-status`): the worst of its types,
 * where a NACK or a version in flight matters and a type never sent (not subscribed) does not;
 * `-` when it has no types yet.
 */
export function worstSyncState(node: NodeSyncView): SyncStateName | '-' {
  const states = new Set(node.types.map((t) => t.state));
  return (['NACKED', 'STALE', 'SYNCED', 'NOT SENT'] as const).find((s) => states.has(s)) ?? '-';
}

/** One RoutePolicy in a pilot's `GET /debug/routepolicyz`: its verdict and sidecar counts on that pilot. */
export const PilotPolicyView = z.object({
  /** `namespace/name` of the policy. */
  policy: z.string(),
  /** `namespace/name` of the service it governs. */
  target: z.string(),
  status: routePolicyStatus,
});
export type PilotPolicyView = z.infer<typeof PilotPolicyView>;
export const PilotRoutePolicyz = z.array(PilotPolicyView);

/** One AuthorizationPolicy in a pilot's `GET /debug/authorizationpolicyz`: its verdict and, of that pilot's sidecars of the protected service, how many ACKed/NACKed it. */
export const PilotAuthorizationPolicyView = z.object({
  /** `namespace/name` of the policy. */
  policy: z.string(),
  /** `namespace/name` of the service it protects. */
  target: z.string(),
  status: authorizationPolicyStatus,
});
export type PilotAuthorizationPolicyView = z.infer<typeof PilotAuthorizationPolicyView>;
export const PilotAuthorizationPolicyz = z.array(PilotAuthorizationPolicyView);

/** One live pilot in the meta server's `GET /debug/pilots`. */
export const MetaPilotView = z.object({
  id: z.string(),
  xdsAddress: z.string(),
  /** `host:port` of the pilot's HTTP port (debug API); empty when it did not advertise one. */
  adminAddress: z.string(),
  /** Sidecars with an open stream to it, from its last heartbeat. */
  sidecars: z.number(),
  /** A sidecar reported it unreachable; it is not handed out until it heartbeats again. */
  suspect: z.boolean(),
  lastHeartbeat: z.string(),
});
export type MetaPilotView = z.infer<typeof MetaPilotView>;
export const MetaPilots = z.array(MetaPilotView);

/** One sidecar in the meta server's `GET /debug/sidecars`. */
export const MetaSidecarView = z.object({
  nodeId: z.string(),
  namespace: z.string(),
  workload: z.string(),
  /** The pilot the meta server assigns its workload to. */
  pilot: z.string(),
  /** When it last asked where to connect (ISO; empty when only a pilot's heartbeat named it). */
  locatedAt: z.string(),
  /** The pilot it is connected to, from that pilot's heartbeat, if any. */
  connectedTo: z.string().optional(),
});
export type MetaSidecarView = z.infer<typeof MetaSidecarView>;
export const MetaSidecars = z.array(MetaSidecarView);

/** One subscription of a dispatcher watcher: empty fields match everything. */
export const SubscriptionView = z.object({
  kind: z.string().optional(),
  namespace: z.string().optional(),
  name: z.string().optional(),
  service: z.string().optional(),
});

/** One connected watcher in the dispatcher's `GET /debug/watchers`. */
export const DispatcherWatcherView = z.object({
  clientId: z.string(),
  peer: z.string(),
  subscriptions: z.array(SubscriptionView),
  sent: z.number(),
  lastVersion: z.string(),
  connectedAt: z.string(),
});
export type DispatcherWatcherView = z.infer<typeof DispatcherWatcherView>;
export const DispatcherWatchers = z.array(DispatcherWatcherView);
