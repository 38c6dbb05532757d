import { describe, expect, it } from '@jest/globals';
import { Cluster, Listener } from '@octo-mesh/proto';
import { DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { generateClusters } from './clusters.js';
import { generateListeners, INBOUND } from './listeners.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { TcpProxy } from '@octo-mesh/proto';
import { clusterTlsFields, clusterTransportSocketField, inboundTcpClusters, inboundTcpPortsOf, inboundWithTls, UPSTREAM_HTTP_OPTIONS, type NodeTls } from './mtls.js';

const tls = (mode: NodeTls['mode']): NodeTls => ({ mode, sdsDir: '/var/run/octo/certs/', trustDomain: 'cluster.local' });
const inbound = () => generateListeners({ appPort: 8080 }).find((l) => l.name === INBOUND)!;

describe('data-plane mTLS in standard Envoy fields', () => {
  it.each([
    ['permissive', ['tls', 'raw_buffer']],
    ['strict', ['tls']],
  ] as const)('%s: the inbound listener has a tls_inspector and chains by transport protocol %j', (mode, protocols) => {
    // Through the wire, as a proxy reads it.
    const l = Listener.decode(Listener.encode(inboundWithTls(inbound(), tls(mode))).finish());
    expect(l.listenerFilters.map((f) => f.name)).toEqual(['envoy.filters.listener.tls_inspector']);
    expect(l.filterChains.map((c) => c.filterChainMatch?.transportProtocol)).toEqual(protocols);
    // Both chains serve the same HTTP filters (RBAC, router) as the plaintext listener did.
    for (const c of l.filterChains) expect(c.filters).toEqual(inbound().filterChains[0]!.filters);
    const ts = l.filterChains[0]!.transportSocket!;
    expect(ts.name).toBe('envoy.transport_sockets.tls');
    const ctx = DownstreamTlsContext.decode(ts.typedConfig!.value);
    expect(ctx.requireClientCertificate).toBe(true);
    expect(ctx.commonTlsContext!.tlsCertificateSdsSecretConfigs).toEqual([{ name: 'default', sdsConfig: expect.objectContaining({ pathConfigSource: expect.objectContaining({ path: '/var/run/octo/certs/default.json' }) }) }]);
    const combined = ctx.commonTlsContext!.combinedValidationContext!;
    expect(combined.validationContextSdsSecretConfig).toMatchObject({ name: 'ROOTCA', sdsConfig: { pathConfigSource: { path: '/var/run/octo/certs/ROOTCA.json' } } });
    expect(combined.defaultValidationContext!.matchTypedSubjectAltNames).toEqual([expect.objectContaining({ sanType: 3, matcher: expect.objectContaining({ prefix: 'spiffe://cluster.local/' }) })]);
    expect(ctx.commonTlsContext!.alpnProtocols).toEqual(['h2', 'http/1.1']);
    if (mode === 'permissive') expect(l.filterChains[1]!.transportSocket).toBeUndefined();
  });

  it('appends a transport socket to an encoded cluster that decodes as Envoy would read it, accepting only the callee namespace', () => {
    const [cluster] = generateClusters({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } } as never, undefined);
    const bytes = Buffer.concat([Buffer.from(Cluster.encode(cluster!).finish()), clusterTransportSocketField(tls('permissive'), 'shop')]);
    const decoded = Cluster.decode(bytes);
    expect(decoded.name).toBe(cluster!.name);
    expect(decoded.edsClusterConfig).toEqual(cluster!.edsClusterConfig);
    expect(decoded.transportSocket!.name).toBe('envoy.transport_sockets.tls');
    const ctx = UpstreamTlsContext.decode(decoded.transportSocket!.typedConfig!.value);
    expect(ctx.commonTlsContext!.combinedValidationContext!.defaultValidationContext!.matchTypedSubjectAltNames[0]!.matcher!.prefix).toBe('spiffe://cluster.local/ns/shop/');
    expect(ctx.commonTlsContext!.tlsCertificateSdsSecretConfigs[0]!.name).toBe('default');
  });

  // columns: port protocol, h2Upgrade, auto_config expected, http2_protocol_options kept
  it.each([
    ['http', true, true, false],
    ['http', false, false, false],
    ['http2', true, false, true],
    ['http2', false, false, true],
    ['grpc', true, false, true],
    ['tcp', true, false, false],
  ] as const)('a %s port, h2Upgrade %s: auto_config %s, explicit HTTP/2 %s; TLS in every case (ALPN only for HTTP)', (protocol, h2Upgrade, auto, h2) => {
    const [cluster] = generateClusters({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'shop' }, spec: { ports: [{ name: 'p', port: 8080, protocol }] } } as never, undefined);
    const decoded = Cluster.decode(Buffer.concat([Buffer.from(Cluster.encode(cluster!).finish()), clusterTlsFields({ ...tls('strict'), h2Upgrade }, 'shop', protocol)]));
    expect(decoded.transportSocket!.name).toBe('envoy.transport_sockets.tls');
    const ctx = UpstreamTlsContext.decode(decoded.transportSocket!.typedConfig!.value);
    expect(ctx.commonTlsContext!.alpnProtocols).toEqual(protocol === 'tcp' ? [] : ['h2', 'http/1.1']);
    expect(decoded.http2ProtocolOptions !== undefined).toBe(h2);
    const any = decoded.typedExtensionProtocolOptions[UPSTREAM_HTTP_OPTIONS];
    if (!auto) return expect(decoded.typedExtensionProtocolOptions).toEqual({});
    expect(any!.typeUrl).toBe('type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions');
    const o = HttpProtocolOptions.decode(any!.value);
    expect(o.autoConfig).toEqual({ httpProtocolOptions: expect.anything(), http2ProtocolOptions: expect.anything() });
    expect(o.explicitHttpConfig).toBeUndefined();
  });

  it('sends the port\'s server name from a TCP cluster, none from an HTTP one', () => {
    const tcp = Cluster.decode(clusterTlsFields(tls('strict'), 'shop', 'tcp', { port: 5432, host: 'db.shop.svc' }));
    const http = Cluster.decode(clusterTlsFields(tls('strict'), 'shop', 'http', { port: 8080, host: 'db.shop.svc' }));
    expect(UpstreamTlsContext.decode(tcp.transportSocket!.typedConfig!.value).sni).toBe('outbound_.5432_._.db.shop.svc');
    expect(UpstreamTlsContext.decode(http.transportSocket!.typedConfig!.value).sni).toBe('');
  });

  it.each(['permissive', 'strict'] as const)('%s: serves the TCP ports of backed services on the inbound listener by SNI, with the tls chain\'s context', (mode) => {
    const ports = [
      { port: 6379, host: 'cache.shop.svc' },
      { port: 5432, host: 'db.shop.svc' },
      { port: 6379, host: 'cache-b.shop.svc' },
    ];
    const l = Listener.decode(Listener.encode(inboundWithTls(inbound(), tls(mode), ports)).finish());
    const http = mode === 'strict' ? 1 : 2;
    expect(l.filterChains.slice(http).map((c) => [c.name, c.filterChainMatch?.transportProtocol, c.filterChainMatch?.serverNames])).toEqual([
      ['inbound-tcp-5432', 'tls', ['outbound_.5432_._.db.shop.svc']],
      ['inbound-tcp-6379', 'tls', ['outbound_.6379_._.cache-b.shop.svc', 'outbound_.6379_._.cache.shop.svc']],
    ]);
    for (const c of l.filterChains.slice(http)) {
      expect(c.transportSocket).toEqual(l.filterChains[0]!.transportSocket);
      expect(c.filters.map((f) => f.name)).toEqual(['envoy.filters.network.tcp_proxy']);
      expect(TcpProxy.decode(c.filters[0]!.typedConfig!.value).cluster).toBe(`inbound|${c.name.split('-').pop()}||local`);
    }
    expect(inboundTcpClusters(ports, 6379).map((c) => c.name)).toEqual(['inbound|5432||local']);
    expect(inboundTcpClusters(ports).map((c) => [c.name, c.loadAssignment!.endpoints[0]!.lbEndpoints[0]!.endpoint!.address!.socketAddress])).toEqual([
      ['inbound|5432||local', expect.objectContaining({ address: '127.0.0.1', portValue: 5432 })],
      ['inbound|6379||local', expect.objectContaining({ address: '127.0.0.1', portValue: 6379 })],
    ]);
  });

  // columns: backed services (name, TCP ports, has AuthorizationPolicies), ports served, withheld
  it.each<[[string, number[], boolean][], number[], string[]]>([
    [[['db', [5432], false]], [5432], []],
    [[['db', [5432], true]], [], ['db.shop.svc']],
    [[['db', [5432], true], ['cache', [6379], false]], [6379], ['db.shop.svc']],
    [[['web', [], true]], [], []],
  ])('backed %j: serves %j, withholds %j (RBAC is HTTP-only)', (backed, served, withheld) => {
    const svc = (name: string, tcp: number[]) =>
      ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }, ...tcp.map((port) => ({ name: `t${port}`, port, protocol: 'tcp' }))] } }) as never;
    const r = inboundTcpPortsOf(backed.map(([name, tcp, guarded]) => ({ service: svc(name, tcp), guarded })));
    expect(r.ports.map((p) => p.port)).toEqual(served);
    expect(r.withheld).toEqual(withheld);
  });
});
