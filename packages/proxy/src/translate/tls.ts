import { parse as parseYaml } from 'yaml';
import type { DataSource, TransportSocket } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import type { ConfigSource } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/config_source.js';
import { DownstreamTlsContext, UpstreamTlsContext, type CommonTlsContext } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/tls.js';
import { SubjectAltNameMatcher_SanType, type CertificateValidationContext, type TlsCertificate } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/common.js';
import { Secret, type SdsSecretConfig } from '@octo-mesh/proto/gen/proxy/envoy/extensions/transport_sockets/tls/v3/secret.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import {
  Redacted,
  type DataSourceModel,
  type DownstreamTlsModel,
  type Result,
  type SanMatcherModel,
  type SdsRef,
  type SecretModel,
  type TlsContextModel,
  type UpstreamTlsModel,
  type ValidationModel,
} from '../model.js';
import { DOWNSTREAM_TLS_CONTEXT, SECRET, UPSTREAM_TLS_CONTEXT, checkFields } from './allow-list.js';
import { guard, invalid, stringMatch } from './common.js';

/**
 * Envoy's TLS transport socket (`envoy.transport_sockets.tls`) and SDS secrets, translated into
 * the model (see packages/identity/README.md, "How the proxy gets its TLS"). Only what the
 * allow-list reads is accepted; the rest of a TLS context is refused by name.
 */
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const TLS_INSPECTOR_FILTER = 'envoy.filters.listener.tls_inspector';
export const TLS_TYPE_URL = {
  upstream: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  downstream: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
} as const;

/** ALPN protocol ids are 1..255 bytes (RFC 7301 §3.1). */
const ALPN = /^[\x21-\x7e]{1,255}$/;

function typedConfig(ts: TransportSocket, path: string, typeUrl: string): Any {
  if (ts.name !== TLS_TRANSPORT_SOCKET) invalid(`${path}.name`, `only ${TLS_TRANSPORT_SOCKET} is implemented, got ${JSON.stringify(ts.name)}`);
  const any = ts.typedConfig;
  if (!any) return invalid(`${path}.typed_config`, 'is required');
  if (any.typeUrl !== typeUrl) invalid(`${path}.typed_config.type_url`, `expected ${typeUrl}, got ${any.typeUrl}`);
  return any;
}

function decodeAs<T>(any: Any, codec: { decode(b: Uint8Array): T }, path: string): T {
  try {
    return codec.decode(any.value);
  } catch (err) {
    return invalid(`${path}.typed_config`, `cannot decode: ${(err as Error).message}`);
  }
}

/** A Cluster's `transport_socket`: an UpstreamTlsContext. */
export function upstreamTls(ts: TransportSocket, path: string): UpstreamTlsModel {
  const c = decodeAs(typedConfig(ts, path, TLS_TYPE_URL.upstream), UpstreamTlsContext, path);
  const tp = `${path}.typed_config`;
  checkFields(UPSTREAM_TLS_CONTEXT, c, tp);
  return { ...common(c.commonTlsContext, `${tp}.common_tls_context`, false), sni: c.sni };
}

/** A FilterChain's `transport_socket`: a DownstreamTlsContext. */
export function downstreamTls(ts: TransportSocket, path: string): DownstreamTlsModel {
  const c = decodeAs(typedConfig(ts, path, TLS_TYPE_URL.downstream), DownstreamTlsContext, path);
  const tp = `${path}.typed_config`;
  checkFields(DOWNSTREAM_TLS_CONTEXT, c, tp);
  const out: DownstreamTlsModel = { ...common(c.commonTlsContext, `${tp}.common_tls_context`, true), requireClientCertificate: c.requireClientCertificate ?? false };
  if (out.requireClientCertificate && !out.validation) invalid(`${tp}.require_client_certificate`, 'needs a validation context to verify the client certificate against');
  return out;
}

function common(c: CommonTlsContext | undefined, path: string, server: boolean): TlsContextModel {
  const out: TlsContextModel = { alpn: [] };
  if (!c) {
    if (server) invalid(path, 'is required: a TLS server needs a certificate');
    return out;
  }
  if (c.tlsCertificates.length + c.tlsCertificateSdsSecretConfigs.length > 1)
    invalid(path, 'one certificate is supported (tls_certificates or tls_certificate_sds_secret_configs, one entry)');
  if (c.tlsCertificates[0]) out.certificate = { kind: 'inline', value: tlsCertificate(c.tlsCertificates[0], `${path}.tls_certificates[0]`) };
  else if (c.tlsCertificateSdsSecretConfigs[0]) out.certificate = { kind: 'sds', ref: sdsRef(c.tlsCertificateSdsSecretConfigs[0], `${path}.tls_certificate_sds_secret_configs[0]`) };
  else if (server) invalid(`${path}.tls_certificates`, 'a TLS server needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)');
  const set = [c.validationContext, c.validationContextSdsSecretConfig, c.combinedValidationContext].filter((x) => x !== undefined).length;
  if (set > 1) invalid(path, 'validation_context, validation_context_sds_secret_config and combined_validation_context are one of');
  if (c.validationContext) out.validation = { inline: validation(c.validationContext, `${path}.validation_context`) };
  else if (c.validationContextSdsSecretConfig) out.validation = { sds: sdsRef(c.validationContextSdsSecretConfig, `${path}.validation_context_sds_secret_config`) };
  else if (c.combinedValidationContext) {
    const cv = c.combinedValidationContext;
    const cp = `${path}.combined_validation_context`;
    if (!cv.defaultValidationContext) invalid(`${cp}.default_validation_context`, 'is required');
    if (!cv.validationContextSdsSecretConfig) invalid(`${cp}.validation_context_sds_secret_config`, 'is required');
    out.validation = {
      inline: validation(cv.defaultValidationContext, `${cp}.default_validation_context`, true),
      sds: sdsRef(cv.validationContextSdsSecretConfig, `${cp}.validation_context_sds_secret_config`),
    };
  }
  c.alpnProtocols.forEach((p, i) => {
    if (!ALPN.test(p)) invalid(`${path}.alpn_protocols[${i}]`, `invalid ALPN protocol id ${JSON.stringify(p)}`);
  });
  out.alpn = [...c.alpnProtocols];
  return out;
}

function dataSource(d: DataSource | undefined, path: string): DataSourceModel {
  if (d?.inlineString !== undefined) return { inline: d.inlineString };
  if (d?.inlineBytes !== undefined) return { inline: Buffer.from(d.inlineBytes).toString('utf8') };
  if (d?.filename !== undefined) {
    if (!d.filename.startsWith('/')) invalid(`${path}.filename`, `must be an absolute path, got ${JSON.stringify(d.filename)}`);
    return { filename: d.filename };
  }
  return invalid(path, 'inline_string, inline_bytes or filename is required');
}

function tlsCertificate(t: TlsCertificate, path: string) {
  return { certificateChain: dataSource(t.certificateChain, `${path}.certificate_chain`), privateKey: new Redacted(dataSource(t.privateKey, `${path}.private_key`)) };
}

/** `partial`: a combined context's default, whose trusted CA may come from SDS instead. */
function validation(v: CertificateValidationContext, path: string, partial = false): ValidationModel {
  const out: ValidationModel = { sans: sanMatchers(v, path) };
  if (v.trustedCa) out.trustedCa = dataSource(v.trustedCa, `${path}.trusted_ca`);
  else if (!partial) invalid(`${path}.trusted_ca`, 'is required (the trust bundle the peer certificate must chain to)');
  return out;
}

function sanMatchers(v: CertificateValidationContext, path: string): SanMatcherModel[] {
  return v.matchTypedSubjectAltNames.map((m, i) => {
    const p = `${path}.match_typed_subject_alt_names[${i}]`;
    const type = m.sanType === SubjectAltNameMatcher_SanType.URI ? 'URI' : m.sanType === SubjectAltNameMatcher_SanType.DNS ? 'DNS' : undefined;
    if (!type) return invalid(`${p}.san_type`, `only URI and DNS are implemented, got ${SubjectAltNameMatcher_SanType[m.sanType] ?? m.sanType}`);
    return { type, match: stringMatch(m.matcher, `${p}.matcher`) };
  });
}

function sdsRef(s: SdsSecretConfig, path: string): SdsRef {
  if (!s.name) invalid(`${path}.name`, 'must not be empty');
  const src: ConfigSource | undefined = s.sdsConfig;
  const file = src?.pathConfigSource?.path;
  if (!file) return invalid(`${path}.sds_config`, 'path_config_source.path is required (SDS is read from files; a secret over ADS is not implemented)');
  if (!file.startsWith('/')) invalid(`${path}.sds_config.path_config_source.path`, `must be an absolute path, got ${JSON.stringify(file)}`);
  return { name: s.name, path: file };
}

/** One SDS Secret: a certificate with its key, or a validation context. */
export function translateSecret(s: Secret, path: string): SecretModel {
  checkFields(SECRET, s, path);
  if (!s.name) invalid(`${path}.name`, 'must not be empty');
  if (s.tlsCertificate && s.validationContext) invalid(path, 'tls_certificate and validation_context are one of');
  if (s.tlsCertificate) return { name: s.name, kind: 'tls_certificate', certificate: tlsCertificate(s.tlsCertificate, `${path}.tls_certificate`) };
  if (s.validationContext) return { name: s.name, kind: 'validation_context', validation: validation(s.validationContext, `${path}.validation_context`) };
  return invalid(path, 'tls_certificate or validation_context is required');
}

/**
 * An SDS file: a DiscoveryResponse (JSON or YAML) whose `resources` are Secrets, each with
 * `"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"`, as Envoy
 * reads `path_config_source`. Errors name the file and the field.
 */
export function parseSdsFile(text: string, file: string): Result<{ version: string; secrets: SecretModel[] }> {
  return guard(`SDS file ${file}`, () => {
    let doc: unknown;
    try {
      doc = text.trimStart().startsWith('{') ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      return invalid('(file)', `not JSON or YAML: ${(err as Error).message}`);
    }
    if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return invalid('(file)', 'must be a DiscoveryResponse object with resources');
    const d = doc as Record<string, unknown>;
    const resources = d['resources'];
    if (!Array.isArray(resources) || resources.length === 0) return invalid('resources', 'must be a non-empty list of Secrets');
    const secrets = resources.map((r, i) => {
      const p = `resources[${i}]`;
      if (!r || typeof r !== 'object') return invalid(p, 'must be an object');
      const { '@type': type, ...rest } = r as Record<string, unknown>;
      if (type !== TLS_TYPE_URL.secret) invalid(`${p}.@type`, `expected ${TLS_TYPE_URL.secret}, got ${JSON.stringify(type)}`);
      let msg: Secret;
      try {
        msg = Secret.fromJSON(rest);
      } catch (err) {
        return invalid(p, `not a Secret: ${(err as Error).message}`);
      }
      return translateSecret(msg, p);
    });
    const names = new Set<string>();
    for (const s of secrets) {
      if (names.has(s.name)) invalid('resources', `secret ${JSON.stringify(s.name)} appears twice`);
      names.add(s.name);
    }
    return { version: typeof d['version_info'] === 'string' ? d['version_info'] : '', secrets };
  });
}

/** The SDS references of a TLS context (to watch their files and to tell whether it is warm). */
export function sdsRefs(t: TlsContextModel | undefined): SdsRef[] {
  if (!t) return [];
  const out: SdsRef[] = [];
  if (t.certificate?.kind === 'sds') out.push(t.certificate.ref);
  if (t.validation?.sds) out.push(t.validation.sds);
  return out;
}
