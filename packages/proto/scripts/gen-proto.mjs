#!/usr/bin/env node
// Generates TypeScript (ts-proto) for the Envoy v3 xDS types the mesh speaks and for OCTO's own
// protos. Output: packages/proto/src/gen (never edit by hand; CI fails when it is stale).
//
// Sources:
// - Envoy, xds/udpa and googleapis protos: the copies the npm package @grpc/grpc-js-xds ships
//   under deps/ (pinned by package-lock.json, so the input is reproducible).
// - packages/proto/proto: OCTO's protos (package octo.mesh.v1).
//
// The Envoy protos carry protoc-gen-validate annotations newer than the validate.proto bundled
// with them, which buf rejects. They are stripped on the way in (strip-validate.mjs explains why
// that is lossless for generated code), so validate.proto is not needed at all.
//
// A second, trimmed tree for the proxy goes to <out>/proxy (see PROXY_READS and trim-image.mjs).
//
// Usage: gen-proto.mjs [--out DIR]   (default: packages/proto/src/gen)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { stripValidate } from './strip-validate.mjs';
import { trimDescriptors } from './trim-image.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const root = resolve(pkg, '../..');
const deps = join(root, 'node_modules/@grpc/grpc-js-xds/deps');
const bin = join(root, 'node_modules/.bin');

const outArg = process.argv.indexOf('--out');
const out = outArg > 0 ? resolve(process.argv[outArg + 1]) : join(pkg, 'src/gen');

/** The Envoy files the mesh uses; their imports are generated too. */
export const ENVOY_ENTRY_POINTS = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  // TLS by standard xDS (packages/identity/README.md): transport sockets, SDS secrets, the TLS inspector.
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
];

/**
 * The Envoy messages the proxy reads (packages/proxy/src/translate and src/xds): generated whole
 * into src/gen/proxy, the proxy's own tree. Any other message-typed field of theirs is generated
 * there as google.protobuf.Empty (trim-image.mjs): it still decodes, to `{}` when set, which is
 * all the proxy's allow-list needs of a field it refuses or ignores. A translator that reads a
 * field whose type is not listed here does not compile (its type is `Empty`): add the type here.
 */
export const PROXY_READS = [
  // ADS: requests, responses, the node and the NACK's status
  'envoy.service.discovery.v3.DiscoveryRequest',
  'envoy.service.discovery.v3.DiscoveryResponse',
  'envoy.service.discovery.v3.DeltaDiscoveryRequest',
  'envoy.service.discovery.v3.DeltaDiscoveryResponse',
  'envoy.service.discovery.v3.Resource',
  'envoy.config.core.v3.Node',
  'envoy.config.core.v3.Locality',
  'envoy.config.core.v3.Metadata',
  'google.rpc.Status',
  // resources
  'envoy.config.listener.v3.Listener',
  'envoy.config.listener.v3.FilterChain',
  'envoy.config.listener.v3.FilterChainMatch',
  'envoy.config.listener.v3.Filter',
  'envoy.config.listener.v3.ListenerFilter',
  'envoy.config.route.v3.RouteConfiguration',
  'envoy.config.route.v3.VirtualHost',
  'envoy.config.route.v3.Route',
  'envoy.config.route.v3.RouteMatch',
  'envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions',
  'envoy.config.route.v3.RouteAction',
  'envoy.config.route.v3.RouteAction.HashPolicy',
  'envoy.config.route.v3.RouteAction.HashPolicy.Header',
  'envoy.config.route.v3.RouteAction.HashPolicy.Cookie',
  'envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties',
  'envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter',
  'envoy.config.route.v3.RouteAction.UpgradeConfig',
  'envoy.config.route.v3.WeightedCluster',
  'envoy.config.route.v3.WeightedCluster.ClusterWeight',
  'envoy.config.route.v3.RetryPolicy',
  'envoy.config.route.v3.RetryPolicy.RetryBackOff',
  'envoy.config.route.v3.DirectResponseAction',
  'envoy.config.route.v3.HeaderMatcher',
  'envoy.config.route.v3.QueryParameterMatcher',
  'envoy.config.cluster.v3.Cluster',
  'envoy.config.cluster.v3.Cluster.EdsClusterConfig',
  'envoy.config.cluster.v3.Cluster.RingHashLbConfig',
  'envoy.config.cluster.v3.Cluster.LeastRequestLbConfig',
  'envoy.config.cluster.v3.Cluster.CommonLbConfig',
  'envoy.config.cluster.v3.CircuitBreakers',
  'envoy.config.cluster.v3.CircuitBreakers.Thresholds',
  'envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget',
  'envoy.config.cluster.v3.OutlierDetection',
  'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'envoy.config.endpoint.v3.ClusterLoadAssignment.Policy',
  'envoy.config.endpoint.v3.LocalityLbEndpoints',
  'envoy.config.endpoint.v3.LbEndpoint',
  'envoy.config.endpoint.v3.Endpoint',
  // shared pieces
  'envoy.config.core.v3.Address',
  'envoy.config.core.v3.SocketAddress',
  'envoy.config.core.v3.Pipe',
  'envoy.config.core.v3.ConfigSource',
  'envoy.config.core.v3.AggregatedConfigSource',
  'envoy.config.core.v3.SelfConfigSource',
  'envoy.config.core.v3.PathConfigSource',
  'envoy.config.core.v3.DataSource',
  'envoy.config.core.v3.HeaderValue',
  'envoy.config.core.v3.HeaderValueOption',
  'envoy.config.core.v3.RuntimeFractionalPercent',
  'envoy.config.core.v3.TransportSocket',
  'envoy.config.core.v3.HttpProtocolOptions',
  'envoy.config.core.v3.Http1ProtocolOptions',
  'envoy.config.core.v3.Http2ProtocolOptions',
  'envoy.type.matcher.v3.StringMatcher',
  'envoy.type.matcher.v3.RegexMatcher',
  'envoy.type.matcher.v3.PathMatcher',
  'envoy.type.v3.FractionalPercent',
  'envoy.type.v3.Percent',
  'envoy.type.v3.Int64Range',
  'envoy.type.v3.TokenBucket',
  'envoy.type.v3.HttpStatus',
  // typed_config payloads
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter',
  'envoy.extensions.filters.network.http_connection_manager.v3.Rds',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight',
  'envoy.extensions.filters.http.router.v3.Router',
  'envoy.extensions.filters.http.fault.v3.HTTPFault',
  'envoy.extensions.filters.http.fault.v3.FaultAbort',
  'envoy.extensions.filters.common.fault.v3.FaultDelay',
  'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  'envoy.extensions.filters.http.rbac.v3.RBAC',
  'envoy.config.rbac.v3.RBAC',
  'envoy.config.rbac.v3.Policy',
  'envoy.config.rbac.v3.Permission',
  'envoy.config.rbac.v3.Permission.Set',
  'envoy.config.rbac.v3.Principal',
  'envoy.config.rbac.v3.Principal.Set',
  'envoy.config.rbac.v3.Principal.Authenticated',
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig',
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions.AutoHttpConfig',
  'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.CommonTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext',
  'envoy.extensions.transport_sockets.tls.v3.TlsCertificate',
  'envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext',
  'envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher',
  'envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig',
  'envoy.extensions.transport_sockets.tls.v3.Secret',
];
/** Files whose gRPC services the proxy's tree keeps (the ADS client). */
export const PROXY_SERVICES = ['envoy/service/discovery/v3/ads.proto'];

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.proto') ? [p] : [];
  });
}

/** Copies every .proto under src into dst, stripping validate annotations. */
function copyStripped(src, dst) {
  for (const file of walk(src)) {
    const target = join(dst, relative(src, file));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, stripValidate(readFileSync(file, 'utf8')));
  }
}

const work = mkdtempSync(join(tmpdir(), 'octo-proto-'));
try {
  const started = Date.now();
  const thirdParty = join(work, 'third_party');
  copyStripped(join(deps, 'envoy-api'), thirdParty);
  copyStripped(join(deps, 'xds'), thirdParty);
  for (const sub of ['google/api', 'google/rpc']) cpSync(join(deps, 'googleapis', sub), join(thirdParty, sub), { recursive: true });
  cpSync(join(pkg, 'proto'), join(work, 'octo'), { recursive: true });

  const octoFiles = walk(join(work, 'octo')).map((f) => relative(join(work, 'octo'), f));
  writeFileSync(join(work, 'buf.yaml'), ['version: v2', 'modules:', '  - path: third_party', '  - path: octo', ''].join('\n'));
  const opts = [
    'esModuleInterop=true',
    'importSuffix=.js',
    'env=node',
    'outputServices=grpc-js',
    'useOptionals=messages',
    'useDate=false',
    'exportCommonSymbols=false',
  ];
  writeFileSync(
    join(work, 'buf.gen.yaml'),
    [
      'version: v2',
      'plugins:',
      `  - local: ${join(bin, 'protoc-gen-ts_proto')}`,
      '    out: gen',
      '    include_imports: true',
      `    opt: [${opts.join(', ')}]`,
      '',
    ].join('\n'),
  );
  const paths = [...ENVOY_ENTRY_POINTS.map((p) => `third_party/${p}`), ...octoFiles.map((p) => `octo/${p}`)];
  execFileSync(join(bin, 'buf'), ['generate', ...paths.flatMap((p) => ['--path', p])], { cwd: work, stdio: 'inherit' });

  // The proxy's tree: the same Envoy files compiled to descriptors, trimmed to PROXY_READS, then
  // generated with the same options but no toJSON (the proxy never writes Envoy JSON).
  execFileSync(join(bin, 'buf'), ['build', '--exclude-source-info', '-o', 'full.binpb', ...ENVOY_ENTRY_POINTS.flatMap((p) => ['--path', `third_party/${p}`])], {
    cwd: work,
    stdio: 'inherit',
  });
  const trimmed = trimDescriptors(fromBinary(FileDescriptorSetSchema, readFileSync(join(work, 'full.binpb'))), { keep: PROXY_READS, services: PROXY_SERVICES });
  writeFileSync(join(work, 'proxy.binpb'), toBinary(FileDescriptorSetSchema, trimmed));
  const proxyOpts = [...opts, 'outputJsonMethods=from-only'];
  writeFileSync(
    join(work, 'buf.gen.proxy.yaml'),
    ['version: v2', 'plugins:', `  - local: ${join(bin, 'protoc-gen-ts_proto')}`, '    out: gen/proxy', `    opt: [${proxyOpts.join(', ')}]`, ''].join('\n'),
  );
  execFileSync(join(bin, 'buf'), ['generate', 'proxy.binpb', '--template', 'buf.gen.proxy.yaml'], { cwd: work, stdio: 'inherit' });

  // ts-proto marks each file '@generated … DO NOT EDIT'; swap the whole tree in at once.
  const genFiles = [];
  const list = (dir) => readdirSync(dir).forEach((n) => (statSync(join(dir, n)).isDirectory() ? list(join(dir, n)) : genFiles.push(join(dir, n))));
  list(join(work, 'gen'));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(dirname(out), { recursive: true });
  cpSync(join(work, "gen"), out, { recursive: true });
  console.log(`gen-proto: ${genFiles.length} files into ${relative(root, out) || out} in ${Date.now() - started} ms`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
