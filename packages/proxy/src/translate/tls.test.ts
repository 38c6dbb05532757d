import { describe, expect, it } from '@jest/globals';
import { TYPE_URL } from '@octo-mesh/proto';
import { fromEnvoyJson, translateResource, type ResourceTypeUrl } from './index.js';
import { parseSdsFile } from './tls.js';
import { handshakeFailure, sansMatch } from '../data/tls.js';
import { edsCluster, httpListener } from '../test-support/resources.js';
import { DOWNSTREAM_TLS, TLS_INSPECTOR, UPSTREAM_TLS } from '../test-support/pki.js';
import type { ClusterModel, ListenerModel, SanMatcherModel } from '../model.js';

function translate(typeUrl: ResourceTypeUrl, obj: unknown) {
  const msg = fromEnvoyJson(typeUrl, obj);
  if (!msg.ok) throw new Error(msg.error);
  return translateResource(typeUrl, msg.value);
}

const SDS = (name: string) => ({ name, sds_config: { path_config_source: { path: `/certs/${name}.json` } } });
const CERT = { tls_certificate_sds_secret_configs: [SDS('default')] };
const upstream = (common: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  edsCluster('c', { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': UPSTREAM_TLS, common_tls_context: common, ...extra } } });
const hcmChain = () => (httpListener('l', { rds: 'r' }) as { filter_chains: { filters: unknown[] }[] }).filter_chains[0]!;
const tlsChain = (ctx: Record<string, unknown>, match: string | undefined = 'tls') => ({
  ...hcmChain(),
  ...(match ? { filter_chain_match: { transport_protocol: match } } : {}),
  transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS, common_tls_context: CERT, ...ctx } },
});
const tcpChain = () => ({ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 't', cluster: 'db' } }] });
/** A TCP chain matched by SNI, with the transport socket of `tlsChain({})`. */
const sniChain = (names: string[], chain: { filters: unknown[] } = tcpChain()) => ({ ...chain, filter_chain_match: { transport_protocol: 'tls', server_names: names }, transport_socket: tlsChain({}).transport_socket });
const listener = (chains: unknown[], inspector = true) => ({ name: 'l', ...(inspector ? { listener_filters: [TLS_INSPECTOR] } : {}), filter_chains: chains });

describe('TLS by standard xDS: refused by name', () => {
  // columns: what, type, resource (Envoy JSON), the NACK's error (a substring naming the field)
  it.each<[string, ResourceTypeUrl, unknown, string]>([
    ['a protocol version bound', TYPE_URL.cluster, upstream({ tls_params: { tls_maximum_protocol_version: 'TLSv1_2' } }), 'common_tls_context.tls_params: not implemented'],
    ['a certificate hash pin', TYPE_URL.cluster, upstream({ validation_context: { trusted_ca: { filename: '/ca.pem' }, verify_certificate_hash: ['ab'] } }), 'validation_context.verify_certificate_hash: not implemented'],
    ['the deprecated match_subject_alt_names', TYPE_URL.cluster, upstream({ validation_context: { trusted_ca: { filename: '/ca.pem' }, match_subject_alt_names: [{ exact: 'x' }] } }), 'validation_context.match_subject_alt_names: not implemented'],
    ['an EMAIL SAN matcher', TYPE_URL.cluster, upstream({ validation_context: { trusted_ca: { filename: '/ca.pem' }, match_typed_subject_alt_names: [{ san_type: 'EMAIL', matcher: { exact: 'a@b' } }] } }), 'match_typed_subject_alt_names[0].san_type: only URI and DNS'],
    ['SDS over ADS', TYPE_URL.cluster, upstream({ tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { ads: {} } }] }), 'tls_certificate_sds_secret_configs[0].sds_config.ads: not implemented'],
    ['an SDS watched_directory', TYPE_URL.cluster, upstream({ tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { path_config_source: { path: '/c/d.json', watched_directory: { path: '/c' } } } }] }), 'path_config_source.watched_directory: not implemented'],
    ['a relative SDS path', TYPE_URL.cluster, upstream({ tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: { path_config_source: { path: 'certs/d.json' } } }] }), 'path_config_source.path: must be an absolute path'],
    ['two certificates', TYPE_URL.cluster, upstream({ tls_certificate_sds_secret_configs: [SDS('a'), SDS('b')] }), 'one certificate is supported'],
    ['a validation context without a trust bundle', TYPE_URL.cluster, upstream({ validation_context: { match_typed_subject_alt_names: [] } }), 'validation_context.trusted_ca: is required'],
    ['an invalid ALPN id', TYPE_URL.cluster, upstream({ alpn_protocols: [''] }), 'alpn_protocols[0]: invalid ALPN protocol id'],
    ['session resumption keys', TYPE_URL.cluster, upstream({}, { max_session_keys: 0 }), 'typed_config.max_session_keys: not implemented'],
    ['the wrong context type', TYPE_URL.cluster, edsCluster('c', { transport_socket: { name: 'envoy.transport_sockets.tls', typed_config: { '@type': DOWNSTREAM_TLS } } }), 'transport_socket.typed_config.type_url: expected type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext'],
    ['session ticket keys', TYPE_URL.listener, listener([tlsChain({ session_ticket_keys: { keys: [{ inline_string: 'k' }] } })]), 'filter_chains[0].transport_socket.typed_config.session_ticket_keys: not implemented'],
    ['require_sni', TYPE_URL.listener, listener([tlsChain({ require_sni: true })]), 'typed_config.require_sni: not implemented'],
    ['a TLS server without a certificate', TYPE_URL.listener, listener([tlsChain({ common_tls_context: { alpn_protocols: ['h2'] } })]), 'common_tls_context.tls_certificates: a TLS server needs a certificate'],
    ['client certificates without a trust bundle', TYPE_URL.listener, listener([tlsChain({ require_client_certificate: true })]), 'require_client_certificate: needs a validation context'],
    ['a transport match without the inspector', TYPE_URL.listener, listener([tlsChain({})], false), 'filter_chain_match.transport_protocol: needs the envoy.filters.listener.tls_inspector listener filter'],
    ['an unknown transport protocol', TYPE_URL.listener, listener([{ ...hcmChain(), filter_chain_match: { transport_protocol: 'quic' } }]), 'filter_chain_match.transport_protocol: must be tls or raw_buffer'],
    ['a tls chain without a transport socket (passthrough)', TYPE_URL.listener, listener([{ ...hcmChain(), filter_chain_match: { transport_protocol: 'tls' } }]), 'filter_chains[0].transport_socket: is required on a chain matching tls'],
    ['two chains for one transport', TYPE_URL.listener, listener([tlsChain({}), tlsChain({})]), 'filter_chains[1].filter_chain_match: matches the same connections as chain 0'],
    ['an SNI chain alone', TYPE_URL.listener, listener([{ ...tcpChain(), filter_chain_match: { transport_protocol: 'tls', server_names: ['a'] } }]), 'filter_chains: a chain without server_names is required'],
    ['an SNI chain carrying HTTP', TYPE_URL.listener, listener([tlsChain({}), sniChain(['a'], hcmChain())]), 'filter_chains[1].filters[0].typed_config.type_url: a chain matched by server_names carries tcp_proxy only'],
    ['an SNI chain with its own TLS context', TYPE_URL.listener, listener([tlsChain({}), { ...sniChain(['a']), transport_socket: tlsChain({ require_client_certificate: false }).transport_socket }]), "filter_chains[1].transport_socket: must be the tls chain's transport_socket"],
    ['an SNI chain on plaintext', TYPE_URL.listener, listener([tlsChain({}), { ...sniChain(['a']), filter_chain_match: { transport_protocol: 'raw_buffer', server_names: ['a'] } }]), 'filter_chains[1].filter_chain_match.transport_protocol: must be tls on a chain matched by server_names'],
    ['a wildcard server name', TYPE_URL.listener, listener([tlsChain({}), sniChain(['*.demo.svc'])]), 'filter_chains[1].filter_chain_match.server_names[0]: only exact names are implemented'],
    ['a server name matched twice', TYPE_URL.listener, listener([tlsChain({}), sniChain(['a']), sniChain(['b', 'a'])]), 'filter_chains[2].filter_chain_match.server_names[1]: "a" is already matched by filter_chains[1]'],
  ])('refuses %s', (_what, typeUrl, obj, error) => {
    const r = translate(typeUrl, obj);
    expect(r.ok ? '(accepted)' : r.error).toContain(error);
  });

  it('reads STRICT (tls chain only) and PERMISSIVE (tls + raw_buffer) as the transports a listener accepts', () => {
    const strict = translate(TYPE_URL.listener, listener([tlsChain({})]));
    const permissive = translate(TYPE_URL.listener, listener([tlsChain({}), { ...hcmChain(), filter_chain_match: { transport_protocol: 'raw_buffer' } }]));
    const plain = translate(TYPE_URL.listener, { name: 'l', ...(httpListener('l', { rds: 'r' }) as object) });
    expect(strict.ok && (strict.value as ListenerModel).transport).toMatchObject({ plaintext: false, tls: { requireClientCertificate: false } });
    expect(permissive.ok && (permissive.value as ListenerModel).transport).toMatchObject({ plaintext: true, tls: { alpn: [] } });
    expect(plain.ok && (plain.value as ListenerModel).transport).toBeUndefined();
  });

  it('reads TCP chains matched by SNI beside the HTTP chains (STRICT and PERMISSIVE), in any order', () => {
    const raw = { ...hcmChain(), filter_chain_match: { transport_protocol: 'raw_buffer' } };
    for (const chains of [[tlsChain({}), raw, sniChain(['outbound_.5432_._.db.demo.svc'])], [sniChain(['outbound_.5432_._.db.demo.svc']), tlsChain({}), raw], [tlsChain({}), sniChain(['outbound_.5432_._.db.demo.svc'])]]) {
      const r = translate(TYPE_URL.listener, listener(chains));
      if (!r.ok) throw new Error(r.error);
      const m = r.value as ListenerModel;
      expect(m.filter.kind).toBe('http');
      expect(m.transport).toMatchObject({ plaintext: chains.includes(raw), tls: {} });
      expect(m.sniTcp).toEqual([{ serverNames: ['outbound_.5432_._.db.demo.svc'], filter: expect.objectContaining({ kind: 'tcp', clusters: [{ cluster: 'db', weight: 1 }] }) }]);
    }
  });

  it('reads the HTTP/2 cluster with TLS as HTTP/2 (offered as h2 by ALPN)', () => {
    const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
    const r = translate(TYPE_URL.cluster, {
      ...(upstream({ ...CERT, alpn_protocols: ['h2'] }) as object),
      typed_extension_protocol_options: { [HPO]: { '@type': `type.googleapis.com/${HPO}`, explicit_http_config: { http2_protocol_options: {} } } },
    });
    expect(r.ok && (r.value as ClusterModel)).toMatchObject({ protocol: 'http2', tls: { alpn: ['h2'], certificate: { kind: 'sds', ref: { name: 'default', path: '/certs/default.json' } } } });
  });
});

describe('SDS files', () => {
  const SECRET = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret';
  // columns: what, file content, the error (a substring), or undefined when it is accepted
  it.each<[string, string, string | undefined]>([
    ['a certificate (JSON)', JSON.stringify({ version_info: 'v1', resources: [{ '@type': SECRET, name: 'default', tls_certificate: { certificate_chain: { inline_string: 'C' }, private_key: { inline_string: 'K' } } }] }), undefined],
    ['a trust bundle (YAML)', `resources:\n  - "@type": ${SECRET}\n    name: ROOTCA\n    validation_context: { trusted_ca: { inline_string: R } }\n`, undefined],
    ['not JSON', '{ nope', 'SDS file /f.json: (file): not JSON or YAML'],
    ['no resources', '{"resources": []}', 'resources: must be a non-empty list'],
    ['another type', JSON.stringify({ resources: [{ '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'x' }] }), 'resources[0].@type: expected'],
    ['a secret without content', JSON.stringify({ resources: [{ '@type': SECRET, name: 'default' }] }), 'resources[0]: tls_certificate or validation_context is required'],
    ['a generic secret', JSON.stringify({ resources: [{ '@type': SECRET, name: 'x', generic_secret: { secret: { inline_string: 's' } } }] }), 'resources[0].generic_secret: not implemented'],
    ['a duplicate name', JSON.stringify({ resources: [1, 2].map(() => ({ '@type': SECRET, name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'R' } } })) }), 'secret "ROOTCA" appears twice'],
  ])('%s', (_what, text, error) => {
    const r = parseSdsFile(text, '/f.json');
    if (error === undefined) expect(r.ok).toBe(true);
    else expect(r.ok ? '(accepted)' : r.error).toContain(error);
  });

  it('never prints a private key', () => {
    const r = parseSdsFile(JSON.stringify({ resources: [{ '@type': SECRET, name: 'default', tls_certificate: { certificate_chain: { inline_string: 'C' }, private_key: { inline_string: 'SECRET-KEY' } } }] }), '/f');
    expect(JSON.stringify(r)).not.toContain('SECRET-KEY');
    expect(JSON.stringify(r)).toContain('[redacted]');
  });
});

describe('peer verification', () => {
  const uri = (m: SanMatcherModel['match']): SanMatcherModel => ({ type: 'URI', match: m });
  // columns: matchers, the peer's subjectaltname (as Node prints it), whether it passes
  it.each<[SanMatcherModel[], string | undefined, boolean]>([
    [[], undefined, true],
    [[uri({ kind: 'exact', value: 'spiffe://td/ns/a/sa/b', ignoreCase: false })], 'URI:spiffe://td/ns/a/sa/b', true],
    [[uri({ kind: 'exact', value: 'spiffe://td/ns/a/sa/b', ignoreCase: false })], 'URI:spiffe://td/ns/a/sa/c', false],
    [[uri({ kind: 'prefix', value: 'spiffe://td/', ignoreCase: false })], 'DNS:x.example, URI:spiffe://td/ns/a/sa/c', true],
    [[uri({ kind: 'prefix', value: 'spiffe://td/', ignoreCase: false })], 'URI:spiffe://other/ns/a/sa/c', false],
    [[{ type: 'DNS', match: { kind: 'suffix', value: '.example', ignoreCase: true } }], 'DNS:API.EXAMPLE', true],
    [[{ type: 'DNS', match: { kind: 'exact', value: 'spiffe://td/x', ignoreCase: false } }], 'URI:spiffe://td/x', false],
    [[uri({ kind: 'exact', value: 'spiffe://td/x', ignoreCase: false })], undefined, false],
  ])('%j against %s → %s', (matchers, san, pass) => {
    expect(sansMatch(matchers, san)).toBe(pass);
  });

  // columns: the error as Node reports it, Envoy's stat name
  it.each<[Error & { code?: string }, string]>([
    [Object.assign(new Error('SANs match no matcher'), { code: 'ERR_OCTO_TLS_SAN_MISMATCH' }), 'fail_verify_san'],
    [Object.assign(new Error('certificate has expired'), { code: 'CERT_HAS_EXPIRED' }), 'fail_verify_error'],
    [Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }), 'fail_verify_error'],
    [new Error('ssl3_read_bytes:tlsv13 alert certificate required'), 'fail_verify_no_cert'],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'connection_error'],
  ])('classifies %s as %s', (err, stat) => {
    expect(handshakeFailure(err)).toBe(stat);
  });
});
