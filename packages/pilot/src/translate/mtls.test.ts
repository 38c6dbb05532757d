import { describe, expect, it } from '@jest/globals';
import { Cluster, Listener } from '@octo-mesh/proto';
import { DownstreamTlsContext, UpstreamTlsContext } from '@octo-mesh/proto/gen/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { generateClusters } from './clusters.js';
import { generateListeners, INBOUND } from './listeners.js';
import { HttpProtocolOptions } from '@octo-mesh/proto/gen/envoy/extensions/upstreams/http/v3/http_protocol_options.js';
import { clusterTlsFields, clusterTransportSocketField, inboundWithTls, UPSTREAM_HTTP_OPTIONS, type NodeTls } from './mtls.js';

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

  // columns: port protocol, auto_config expected, http2_protocol_options kept
  it.each([
    ['http', true, false],
    ['http2', false, true],
    ['grpc', false, true],
    ['tcp', false, false],
  ] as const)('a %s port: auto_config %s, explicit HTTP/2 %s; TLS in every case (ALPN only for HTTP)', (protocol, auto, h2) => {
    const [cluster] = generateClusters({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name: 'catalog', namespace: 'shop' }, spec: { ports: [{ name: 'p', port: 8080, protocol }] } } as never, undefined);
    const decoded = Cluster.decode(Buffer.concat([Buffer.from(Cluster.encode(cluster!).finish()), clusterTlsFields(tls('strict'), 'shop', protocol)]));
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
});
