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
// Usage: gen-proto.mjs [--out DIR]   (default: packages/proto/src/gen)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripValidate } from './strip-validate.mjs';

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
