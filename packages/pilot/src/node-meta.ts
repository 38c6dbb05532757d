/**
 * What Pilot reads from the xDS Node a sidecar sends (the **contract** with proxies):
 *
 * - `id`: unique per sidecar; also the UpgradeTarget resource name.
 * - `locality.region` / `locality.zone`: for locality-aware endpoint priorities.
 * - `metadata.dependencies`: list of the services the workload calls, each `name` (in the node's
 *   namespace), `name.namespace[.svc[.cluster.local]]` or `namespace/name`. The node gets config
 *   for exactly these, plus any it later asks for by cluster name or by listener name (on
 *   demand; a proxyless gRPC client declares none and names its targets in LDS — see
 *   translate/proxyless.ts).
 * - `metadata.namespace`: the workload's namespace (default `default`).
 * - `metadata.workload` (or `app`), `metadata.labels` (map), `metadata.namespace_labels` (map),
 *   `metadata.instance_id` (default: `id`), `metadata.proxy_version`: for ProxyVersion rollouts.
 *   camelCase spellings (`instanceId`, `proxyVersion`, `namespaceLabels`) are accepted too.
 * - `metadata.app_port`: the port the application listens on (127.0.0.1). With it the node gets
 *   an `inbound` listener forwarding peer traffic to `inbound|<app_port>||local`.
 * - `metadata.app_socket`: instead of `app_port`, the absolute path of the Unix socket the
 *   application listens on (OCTO's app ↔ sidecar path). The inbound listener then forwards to
 *   `inbound|unix||local`, whose one endpoint is an Envoy `pipe` address with that path. Giving
 *   both is refused.
 * - `metadata.outbound_port`: only for standard Envoy clients, which bind listeners themselves:
 *   the outbound listener then carries `0.0.0.0:<port>`. Without it the listener has no address
 *   and an OCTO proxy attaches it to its own `outbound` socket.
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
  appPort?: number;
  /** The Unix socket path the application listens on (`app_socket`), instead of `appPort`. */
  appSocket?: string;
  /** Where its agent keeps its certificate as SDS files (`octo.io/sds-dir`): the data plane's TLS reads them. */
  sdsDir?: string;
}

/** A metadata value under its snake_case or camelCase key. */
function field(md: Record<string, unknown>, snake: string): unknown {
  const camel = snake.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  return md[snake] ?? md[camel];
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v ? v : undefined);

const strMap = (v: unknown): Record<string, string> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, String(x)])) : undefined;

/**
 * Linux's sockaddr_un holds 108 bytes with the terminating NUL (unix(7)): a longer path cannot be
 * connected to, so it is refused here rather than failing every request later.
 */
const MAX_SOCKET_PATH = 107;

function socketField(raw: unknown): string | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (typeof raw !== 'string' || !raw.startsWith('/')) throw new Error(`node.metadata.app_socket: must be an absolute path, got ${JSON.stringify(raw)}`);
  if (Buffer.byteLength(raw) > MAX_SOCKET_PATH) throw new Error(`node.metadata.app_socket: ${JSON.stringify(raw)} is longer than ${MAX_SOCKET_PATH} bytes (a Unix socket path's limit)`);
  return raw;
}

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
  const portField = (name: string): number | undefined => {
    const raw = field(md, name);
    if (raw === undefined || raw === '') return undefined;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`node.metadata.${name}: must be 1-65535, got ${JSON.stringify(raw)}`);
    return n;
  };
  const outboundPort = portField('outbound_port');
  const appPort = portField('app_port');
  const appSocket = socketField(field(md, 'app_socket'));
  if (appSocket !== undefined && appPort !== undefined) throw new Error('node.metadata.app_socket: give app_port or app_socket, not both');
  const loc = node.locality;
  const app = str(md['workload']) ?? str(md['app']);
  const proxyVersion = str(field(md, 'proxy_version'));
  const namespaceLabels = strMap(field(md, 'namespace_labels'));
  return {
    id: node.id,
    namespace,
    instanceId: str(field(md, 'instance_id')) ?? node.id,
    ...(app ? { app } : {}),
    labels: strMap(md['labels']) ?? {},
    ...(namespaceLabels ? { namespaceLabels } : {}),
    ...(proxyVersion ? { proxyVersion } : {}),
    ...(loc && (loc.region || loc.zone) ? { locality: { region: loc.region, zone: loc.zone } } : {}),
    dependencies: [...new Set(dependencies)].sort(),
    ...(outboundPort !== undefined ? { outboundPort } : {}),
    ...(appPort !== undefined ? { appPort } : {}),
    ...(appSocket !== undefined ? { appSocket } : {}),
    ...(typeof md['octo.io/sds-dir'] === 'string' && md['octo.io/sds-dir'].startsWith('/') ? { sdsDir: md['octo.io/sds-dir'] } : {}),
  };
}
