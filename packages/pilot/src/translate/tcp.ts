/**
 * TCP listener generator. Plain TCP carries no Host header and no SNI to route by, so a service's
 * TCP port cannot share the `outbound` listener: each one gets a listener of its own, bound by the
 * sidecar on its loopback at the service's port, whose only filter is `tcp_proxy` to the whole
 * service's cluster. An application reaches `db.demo.svc:5432` by connecting to 127.0.0.1:5432.
 *
 *     name     outbound|<port>|tcp|<name>.<namespace>.svc     (a Listener name, not a cluster name)
 *     address  127.0.0.1:<port>
 *     filter   envoy.filters.network.tcp_proxy → outbound|<port>||<name>.<namespace>.svc
 *
 * Per service (`generateTcpListeners`) the candidates are made once and shared; per node
 * (`selectTcpListeners`) one address can be claimed only once, so collisions are settled by a
 * fixed rule — the dependency whose key (`namespace/name`) sorts first keeps the address, the
 * others get no listener — and reported (`TcpConflict`, and on the kept listener's metadata under
 * `octo.mesh.shadowed`). Ports the sidecar or the application already listen on are never used.
 */
import { Listener, TcpProxy, TYPE_URL, packAny } from '@octo-mesh/proto';
import { splitServiceKey, type Service, type ServiceKey } from '../model.js';
import { clusterName, serviceHost } from './common.js';

export const TCP_PROXY = 'envoy.filters.network.tcp_proxy';

/** The loopback address TCP listeners are bound on. */
export const TCP_LISTENER_HOST = '127.0.0.1';

/**
 * Ports an OCTO sidecar listens on by default (admin 15000, outbound 15001, inbound 15006): a
 * service's TCP port equal to one of them gets no listener.
 */
export const SIDECAR_PORTS: readonly number[] = [15000, 15001, 15006];

/** Key of the listener metadata naming what a listener shadows. */
export const METADATA_KEY = 'octo.mesh';

/** `outbound|<port>|tcp|<name>.<namespace>.svc` */
export const tcpListenerName = (port: number, host: string): string => `outbound|${port}|tcp|${host}`;

/** One TCP listener per TCP port of the service (none for a service without TCP ports). */
export function generateTcpListeners(service: Service): Listener[] {
  const host = serviceHost(service);
  return service.spec.ports
    .filter((p) => p.protocol === 'tcp')
    .map((p) => {
      const cluster = clusterName(p.port, '', host);
      return Listener.fromPartial({
        name: tcpListenerName(p.port, host),
        address: { socketAddress: { address: TCP_LISTENER_HOST, portValue: p.port } },
        filterChains: [{ filters: [{ name: TCP_PROXY, typedConfig: packAny(TYPE_URL.tcpProxy, TcpProxy.fromPartial({ statPrefix: cluster, cluster })) }] }],
      });
    });
}

/** The cluster a listener's tcp_proxy sends to (undefined for any other listener). */
export function tcpProxyCluster(l: Listener): string | undefined {
  const f = l.filterChains[0]?.filters[0];
  if (f?.name !== TCP_PROXY || f.typedConfig?.typeUrl !== TYPE_URL.tcpProxy) return undefined;
  return TcpProxy.decode(f.typedConfig.value).cluster || undefined;
}

/** A TCP port of a dependency that got no listener, and why. */
export interface TcpConflict {
  /** `host:port` the listener would have had. */
  address: string;
  /** The listener left out. */
  listener: string;
  /** The service whose port it is, `namespace/name`. */
  service: ServiceKey;
  /** The listener that has the address instead, when another dependency claimed it. */
  keptListener?: string;
  reason: string;
}

export interface TcpSelection {
  listeners: Listener[];
  conflicts: TcpConflict[];
}

export interface TcpSelectOptions {
  /** The application's own port on 127.0.0.1 (node metadata `app_port`). */
  appPort?: number;
  /** The outbound listener's port when it carries an address (`outbound_port`, standard Envoy). */
  outboundPort?: number;
}

const addressOf = (l: Listener): string => `${l.address?.socketAddress?.address ?? ''}:${l.address?.socketAddress?.portValue ?? 0}`;

/**
 * The TCP listeners of one node. `services` are its dependencies' candidates; they are taken in
 * key order whatever order they come in, so the result depends only on the set. Never returns two
 * listeners with one address.
 */
export function selectTcpListeners(services: readonly { key: ServiceKey; tcpListeners: readonly Listener[] }[], opts: TcpSelectOptions = {}): TcpSelection {
  const reserved = new Map<number, string>();
  for (const p of SIDECAR_PORTS) reserved.set(p, `port ${p} is one of the sidecar's own ports`);
  if (opts.outboundPort) reserved.set(opts.outboundPort, `port ${opts.outboundPort} is the outbound listener's (outbound_port)`);
  if (opts.appPort) reserved.set(opts.appPort, `port ${opts.appPort} is the application's own (app_port)`);

  const sorted = [...services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const kept = new Map<string, { listener: Listener; key: ServiceKey; shadowed: ServiceKey[] }>();
  const conflicts: TcpConflict[] = [];
  for (const s of sorted) {
    for (const l of s.tcpListeners) {
      const address = addressOf(l);
      const why = reserved.get(l.address?.socketAddress?.portValue ?? 0);
      if (why) {
        conflicts.push({ address, listener: l.name, service: s.key, reason: why });
        continue;
      }
      const owner = kept.get(address);
      if (owner) {
        owner.shadowed.push(s.key);
        conflicts.push({
          address,
          listener: l.name,
          service: s.key,
          keptListener: owner.listener.name,
          reason: `${address} is also claimed by ${owner.key}, which sorts first and keeps it`,
        });
        continue;
      }
      kept.set(address, { listener: l, key: s.key, shadowed: [] });
    }
  }
  const listeners = [...kept.values()].map(({ listener, shadowed }) =>
    shadowed.length
      ? Listener.fromPartial({
          ...listener,
          metadata: { filterMetadata: { [METADATA_KEY]: { shadowed: shadowed.map(hostOfKey) } } },
        })
      : listener,
  );
  return { listeners, conflicts };
}

const hostOfKey = (key: ServiceKey): string => {
  const { namespace, name } = splitServiceKey(key);
  return `${name}.${namespace}.svc`;
};

/** One line per conflict, for logs and status. */
export const describeConflict = (c: TcpConflict): string => `${c.listener} not bound: ${c.reason}`;
