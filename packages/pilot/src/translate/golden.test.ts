import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { service as serviceSchema, serviceEndpoints as endpointsSchema, type RoutePolicy } from '@octo-mesh/api';
import { Cluster, HttpConnectionManager, Listener, RouteConfiguration, TYPE_URL } from '@octo-mesh/proto';
import { parse, stringify } from 'yaml';
import { keyOf, nameOf, parseDependency, serviceKey, type Locality, type ServiceData } from '../model.js';
import { composeNode, type NodeConfig } from './node.js';
import { clusterTlsFields, inboundTcpClusters, inboundTcpPortsOf, inboundWithTls, type NodeTls } from './mtls.js';
import { INBOUND } from './listeners.js';
import { parseClusterName } from './common.js';
import { readable } from './readable.js';
import { translateEndpoints, translateService, type ServiceTranslation } from './service.js';
import { tcpProxyCluster } from './tcp.js';
import { makeResource } from '../xds/resource.js';
import { Snapshot } from '../xds/snapshot.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), '../../testdata');
const update = process.env['UPDATE_GOLDEN'] === '1';

interface Input {
  /** apiListeners: listener names a proxyless gRPC client asked for. */
  /**
   * tls: the node holds a mesh certificate (what Pilot reads from `octo.io/sds-dir` and its mTLS
   * mode); backs: services its workload backs (dependency syntax), whose TCP ports its inbound
   * listener serves by SNI.
   */
  node: { namespace?: string; dependencies: string[]; locality?: Locality; appPort?: number; appSocket?: string; apiListeners?: string[]; tls?: NodeTls; backs?: string[] };
  /** A second state of the same node with other dependencies (e.g. one removed). */
  after?: { dependencies: string[] };
  resources: { kind: string; metadata: { name: string; namespace?: string } }[];
}

/** Translates a golden input the way Pilot does for one node; throws what translation throws. */
function run(input: Input): unknown {
  const data = new Map<string, ServiceData>();
  for (const r of input.resources.filter((r) => r.kind === 'Service')) {
    const s = serviceSchema.parse(r);
    data.set(keyOf(s), { service: s, endpoints: [], policies: [] });
  }
  for (const r of input.resources) {
    if (r.kind === 'ServiceEndpoints') {
      const e = endpointsSchema.parse(r);
      data.get(serviceKey(nameOf(e).namespace, nameOf(e).name))?.endpoints.push(...e.spec.endpoints);
    }
    if (r.kind === 'RoutePolicy') {
      const p = r as RoutePolicy;
      const target = serviceKey(p.spec?.targetRef?.namespace ?? p.metadata.namespace ?? 'default', p.spec?.targetRef?.service);
      data.get(target)?.policies.push(p);
    }
  }
  const translations = new Map<string, ServiceTranslation>();
  for (const [k, d] of data) translations.set(k, translateService(d));
  const ns = input.node.namespace ?? 'default';
  const compose = (dependencies: string[]) => {
    const deps = dependencies.map((d) => parseDependency(d, ns) ?? `invalid:${d}`);
    const cfg = composeNode(
      deps,
      translations,
      (k) => translateEndpoints(data.get(k)!, translations.get(k)!, input.node.locality),
      { ...(input.node.appPort ? { appPort: input.node.appPort } : {}), ...(input.node.appSocket ? { appSocket: input.node.appSocket } : {}) },
      ns,
      input.node.apiListeners,
    );
    assertConsistent(cfg.listeners, cfg.clusters, cfg.routes);
    const backs = (input.node.backs ?? []).map((d) => parseDependency(d, ns) ?? `invalid:${d}`);
    return input.node.tls ? withTls(cfg, input.node.tls, data, backs, input.node.appPort) : cfg;
  };
  const cfg = compose(input.node.dependencies);
  const after = input.after && compose(input.after.dependencies);
  return {
    verdicts: [...translations.values()].flatMap((t) => t.verdicts),
    listeners: cfg.listeners.map((m) => readable(TYPE_URL.listener, m)),
    routes: cfg.routes.map((m) => readable(TYPE_URL.route, m)),
    clusters: cfg.clusters.map((m) => readable(TYPE_URL.cluster, m)),
    endpoints: cfg.endpoints.map((m) => readable(TYPE_URL.endpoint, m)),
    governance: cfg.governance.map((m) => readable(TYPE_URL.serviceGovernance, m)),
    tcpConflicts: cfg.tcpConflicts,
    ...(after
      ? {
          after: {
            listeners: after.listeners.map((m) => readable(TYPE_URL.listener, m)),
            clusters: after.clusters.map((c) => c.name),
            tcpConflicts: after.tcpConflicts,
          },
        }
      : {}),
  };
}

/**
 * A node's configuration as Pilot serves it to a node with a certificate (pilot.ts): the inbound
 * listener with TLS chains, and each mesh cluster with the fields Pilot appends to its encoded
 * bytes, decoded as a proxy reads them.
 */
function withTls(cfg: NodeConfig, t: NodeTls, data: ReadonlyMap<string, ServiceData>, backs: string[], appPort: number | undefined): NodeConfig {
  const tcpPorts = inboundTcpPortsOf(backs.map((k) => ({ service: data.get(k)!.service, guarded: false }))).ports;
  return {
    ...cfg,
    listeners: cfg.listeners.map((l) => (l.name === INBOUND ? inboundWithTls(l, t, tcpPorts) : l)),
    clusters: [
      ...cfg.clusters.map((c) => {
        const parsed = parseClusterName(c.name);
        if (!parsed) return c;
        const port = data.get(parsed.service)!.service.spec.ports.find((p) => p.port === parsed.port)!;
        return Cluster.decode(Buffer.concat([Cluster.encode(c).finish(), clusterTlsFields(t, parsed.service.split('/')[0]!, port.protocol, parsed)]));
      }),
      ...inboundTcpClusters(tcpPorts, appPort),
    ],
  };
}

/**
 * What Pilot checks before publishing: every cluster a listener's tcp_proxy names and every route
 * configuration a listener reads over RDS is served, and every route configuration is read by a
 * listener; no two listeners share a name or an address.
 */
function assertConsistent(listeners: Listener[], clusters: Cluster[], routes: RouteConfiguration[]): void {
  Snapshot.of({
    [TYPE_URL.listener]: listeners.map((l) => {
      const c = tcpProxyCluster(l);
      const rds = rdsName(l);
      const references = [...(c ? [{ typeUrl: TYPE_URL.cluster, name: c }] : []), ...(rds ? [{ typeUrl: TYPE_URL.route, name: rds }] : [])];
      return makeResource(TYPE_URL.listener, l.name, Listener, l, 'listeners', { references });
    }),
    [TYPE_URL.route]: routes.map((r) => makeResource(TYPE_URL.route, r.name, RouteConfiguration, r, 'routes')),
    [TYPE_URL.cluster]: clusters.map((c) => makeResource(TYPE_URL.cluster, c.name, Cluster, c, 'clusters')),
  }).assertConsistent();
  const addresses = listeners.flatMap((l) => (l.address?.socketAddress ? [`${l.address.socketAddress.address}:${l.address.socketAddress.portValue}`] : []));
  expect(new Set(addresses).size).toBe(addresses.length);
}

/** The RDS name of a listener's HttpConnectionManager (in its filter chain or its api_listener). */
function rdsName(l: Listener): string | undefined {
  const any = l.apiListener?.apiListener ?? l.filterChains[0]?.filters[0]?.typedConfig;
  return any?.typeUrl === TYPE_URL.httpConnectionManager ? HttpConnectionManager.decode(any.value).rds?.routeConfigName : undefined;
}

describe('translation golden files', () => {
  // columns: case number, expected error (a substring of the thrown message) or null
  it.each([
    ['01', null], // one service, no policy
    ['02', null], // 90/10 subset split with retries and timeout; locality priorities
    ['03', null], // every RoutePolicy feature
    ['04', null], // a schema-invalid and a conflicting policy are rejected; others keep working
    ['05', null], // an untranslatable policy falls back to defaults; a wrong targetRef.port is rejected
    ['06', null], // scoping: only declared dependencies, unknown ones skipped
    ['07', 'service: spec.ports[1].port: duplicate port 8080'], // bad service data
    ['08', 'endpoints: endpoints[1].address: not an IP address or host name'], // bad endpoint
    ['09', null], // gRPC and TCP ports, ring hash on the source IP
    ['10', null], // a node whose application listens on 127.0.0.1:8080 gets the inbound listener
    ['11', null], // same service name in two namespaces: bare names only for the caller's own
    ['12', null], // a TCP port: its own listener on 127.0.0.1:<port>, tcp_proxy to the service's cluster
    ['13', null], // HTTP and TCP ports of one service, with a policy: virtual host for one, listener for the other
    ['14', null], // two dependencies with one TCP port, a TCP port on app_port and on a sidecar port; then the winner removed
    ['15', null], // a TCP dependency removed: its listener and cluster go
    ['16', null], // a proxyless gRPC client's listener names: api_listeners, route configurations reduced to what gRPC acts on
    ['17', null], // a node whose application listens on a Unix socket: the inbound cluster's endpoint is a pipe address
    ['18', null], // a central gRPC health check: the governance resource carries its grpc variant
    ['19', null], // a node with a mesh certificate: TLS on every mesh cluster, auto_config (ALPN h2/http1.1) on HTTP ports only, SNI on TCP ports; the TCP ports of a service it backs served on its inbound by SNI
  ])('%s', (name, expectedError) => {
    const input = parse(readFileSync(join(testdata, `${name}.input.yaml`), 'utf8')) as Input;
    if (expectedError) {
      expect(() => run(input)).toThrow(expectedError);
      return;
    }
    const got = stringify(run(input), { lineWidth: 0 });
    const goldenPath = join(testdata, `${name}.golden.yaml`);
    if (update) writeFileSync(goldenPath, got);
    if (!existsSync(goldenPath)) throw new Error(`${goldenPath} is missing; run with UPDATE_GOLDEN=1 and review it`);
    expect(got).toBe(readFileSync(goldenPath, 'utf8'));
  });
});
