/**
 * What Pilot reads from the xDS Node a sidecar sends (the **contract** with proxies):
 *
 * - `id`: unique per sidecar; also the UpgradeTarget resource name.
 * - `locality.region` / `locality.zone`: for locality-aware endpoint priorities.
 * - `metadata.dependencies`: list of the services the workload calls, each `name` (in the node's
 *   namespace), `name.namespace[.svc[.cluster.local]]` or `namespace/name`. The node gets config
 *   for exactly these, plus any it later asks for by cluster name (on demand).
 * - `metadata.namespace`: the workload's namespace (default `default`).
 * - `metadata.app`, `metadata.labels` (map), `metadata.namespaceLabels` (map),
 *   `metadata.instanceId` (default: `id`), `metadata.proxyVersion`: for ProxyVersion rollouts.
 * - `metadata.outboundPort`: the port of the outbound listener (default 15001).
 */
import type { Node } from '@octo-mesh/proto';
import { parseDependency, type Locality, type ServiceKey } from './model.js';

export interface NodeIdentity {
  id: string;
  namespace: string;
  instanceId: string;
  app?: string;
  labels: Record<string, string>;
  namespaceLabels?: Record<string, string>;
  proxyVersion?: string;
  locality?: Locality;
  dependencies: ServiceKey[];
  outboundPort?: number;
}

const strMap = (v: unknown): Record<string, string> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)])) : undefined;

/** @throws Error naming the bad field (the stream is then refused with INVALID_ARGUMENT). */
export function nodeIdentity(node: Node): NodeIdentity {
  const md = (node.metadata ?? {}) as Record<string, unknown>;
  const namespace = typeof md['namespace'] === 'string' && md['namespace'] ? md['namespace'] : 'default';
  const deps = md['dependencies'] ?? [];
  if (!Array.isArray(deps)) throw new Error('node.metadata.dependencies: must be a list of service names');
  const dependencies: ServiceKey[] = [];
  deps.forEach((d, i) => {
    const key = typeof d === 'string' ? parseDependency(d, namespace) : undefined;
    if (!key) throw new Error(`node.metadata.dependencies[${i}]: ${JSON.stringify(d)} is not a service name (name, name.namespace or namespace/name)`);
    dependencies.push(key);
  });
  let outboundPort: number | undefined;
  if (md['outboundPort'] !== undefined) {
    outboundPort = Number(md['outboundPort']);
    if (!Number.isInteger(outboundPort) || outboundPort < 1 || outboundPort > 65535) throw new Error(`node.metadata.outboundPort: must be 1-65535, got ${JSON.stringify(md['outboundPort'])}`);
  }
  const loc = node.locality;
  return {
    id: node.id,
    namespace,
    instanceId: typeof md['instanceId'] === 'string' && md['instanceId'] ? md['instanceId'] : node.id,
    ...(typeof md['app'] === 'string' ? { app: md['app'] } : {}),
    labels: strMap(md['labels']) ?? {},
    ...(strMap(md['namespaceLabels']) ? { namespaceLabels: strMap(md['namespaceLabels'])! } : {}),
    ...(typeof md['proxyVersion'] === 'string' ? { proxyVersion: md['proxyVersion'] } : {}),
    ...(loc && (loc.region || loc.zone) ? { locality: { region: loc.region, zone: loc.zone } } : {}),
    dependencies: [...new Set(dependencies)].sort(),
    ...(outboundPort !== undefined ? { outboundPort } : {}),
  };
}
