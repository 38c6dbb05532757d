/**
 * Pilot's debug HTTP API, served next to /healthz, /readyz and /metrics (port 15014):
 *
 * - `GET /debug/syncz` — every connected node: stream id and kind, and per type its state
 *   (SYNCED, NOT SENT, STALE, NACKED), the current, sent, ACKed and NACKed versions and the last
 *   NACK's error. `?node=<id>` for one node.
 * - `GET /debug/config_dump?node=<id>` — the node's current snapshot, resources as readable JSON.
 * - `GET /debug/routepolicyz` — status of every RoutePolicy Pilot holds (accepted or why not,
 *   how many sidecars ACKed/NACKed its generation).
 * - `GET /debug/authorizationpolicyz` — the same for every AuthorizationPolicy of a service whose
 *   instances this pilot serves (sidecars: those instances' sidecars).
 * - `GET /debug/pilotz` — nodes with their dependency scope, services held, scopes.
 * - `GET /debug/rollouts` — per ProxyVersion, this pilot's sidecars in scope, targeted, upgraded,
 *   ready and failed (from their LEGO agents' reports); the operator sums every pilot's answer.
 */
import type { NodeSyncView, PilotAuthorizationPolicyView, PilotPolicyView, PilotRollouts } from '@octo-mesh/contracts';
import { NotFoundError, ValidationError, type RouteHandler } from '@octo-mesh/runtime';
import type { Pilot } from './pilot.js';
import { codecFor, openAnys } from './translate/readable.js';
import { shortType } from './xds/snapshot.js';

/** Typed with the DTO octoctl and other clients parse (@octo-mesh/contracts). */
function syncOf(pilot: Pilot, nodeId: string): NodeSyncView {
  const snap = pilot.cache.getSnapshot(nodeId);
  const n = pilot.sync.get(nodeId);
  const current = new Map((snap?.typeUrls() ?? []).map((t) => [t, snap!.version(t)]));
  return {
    node: nodeId,
    stream: n ? { id: n.streamId, kind: n.streamKind, connectedAt: new Date(n.connectedAt).toISOString() } : undefined,
    types: pilot.sync.report(nodeId, current).map((e) => ({ ...e, type: shortType(e.typeUrl) })),
  };
}

export function debugRoutes(pilot: Pilot, pilotId = ''): Record<string, RouteHandler> {
  return {
    '/debug/syncz': (_req, url) => {
      const id = url.searchParams.get('node');
      if (id) {
        if (!pilot.sync.get(id)) throw new NotFoundError(`node ${id} is not connected`);
        return syncOf(pilot, id);
      }
      return pilot.sync.nodeIds().sort().map((n) => syncOf(pilot, n));
    },
    '/debug/config_dump': (_req, url) => {
      const id = url.searchParams.get('node');
      if (!id) throw new ValidationError('config_dump', [{ path: 'node', message: 'query parameter node is required' }]);
      const snap = pilot.cache.getSnapshot(id);
      if (!snap) throw new NotFoundError(`no snapshot for node ${id}`);
      return Object.fromEntries(
        snap.typeUrls().map((t) => {
          const ts = snap.get(t)!;
          const codec = codecFor(t);
          return [
            shortType(t),
            {
              version: ts.version,
              resources: [...ts.resources.values()].map((r) => ({
                name: r.name,
                version: r.version,
                generator: r.generator,
                ...(r.provenance.length ? { provenance: r.provenance } : {}),
                resource: codec ? openAnys(codec.toJSON(codec.decode(r.any.value) as never)) : r.any.value.toString('base64'),
              })),
            },
          ];
        }),
      );
    },
    '/debug/routepolicyz': (): PilotPolicyView[] => pilot.routePolicyStatuses(),
    '/debug/authorizationpolicyz': (): PilotAuthorizationPolicyView[] => pilot.authorizationPolicyStatuses(),
    '/debug/pilotz': () => pilot.describe(),
    '/debug/rollouts': (): PilotRollouts => ({ pilotId, observedAt: new Date().toISOString(), rollouts: pilot.rollouts() }),
  };
}
