import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster, ClusterLoadAssignment, Listener, RouteConfiguration, packAny as packFull, TYPE_URL } from '@octo-mesh/proto';
import { unpackAny } from '@octo-mesh/proto/proxy-codecs.js';
import { translateResource, type ResourceTypeUrl } from './index.js';
import { cla, edsCluster, httpListener, pack, routeConfig } from '../test-support/resources.js';

// The proxy decodes with its trimmed tree (@octo-mesh/proto/proxy-codecs.js, src/gen/proxy), in
// which a field it does not read is a google.protobuf.Empty. A control plane encodes with the
// full tree. These rows send full messages with such fields set over the wire: each must still
// be refused (or accepted, when the allow-list ignores it) exactly as the allow-list says.
const FULL = { [TYPE_URL.listener]: Listener, [TYPE_URL.route]: RouteConfiguration, [TYPE_URL.cluster]: Cluster, [TYPE_URL.endpoint]: ClusterLoadAssignment } as const;

/** The resource in Envoy JSON, decoded by the full tree, with `extra` (full-tree field names) set, packed as a control plane would. */
function overTheWire(typeUrl: ResourceTypeUrl, json: unknown, extra: Record<string, unknown>) {
  const codec = FULL[typeUrl] as unknown as { decode(b: Uint8Array): object; fromPartial(o: object): object };
  const full = codec.fromPartial({ ...codec.decode(pack(typeUrl, json).any.value), ...extra });
  return packFull(typeUrl, full as never);
}

describe("the proxy's trimmed codecs", () => {
  // columns: what, type, resource (Envoy JSON), fields set with the full tree, the NACK's error (or '(accepted)')
  it.each<[string, ResourceTypeUrl, unknown, Record<string, unknown>, string]>([
    ['a UDP listener (a message the proxy does not read, with content)', TYPE_URL.listener, httpListener('l', { rds: 'r' }), { udpListenerConfig: { downstreamSocketConfig: { maxRxDatagramSize: 9000 } } }, 'listener "l": udp_listener_config: not implemented'],
    ['an access log (ignored: deep content skipped)', TYPE_URL.listener, httpListener('l', { rds: 'r' }), { accessLog: [{ name: 'envoy.access_loggers.file', filter: { statusCodeFilter: { comparison: { op: 1 } } } }] }, '(accepted)'],
    ['active health checks (a list)', TYPE_URL.cluster, edsCluster('c'), { healthChecks: [{ tcpHealthCheck: { send: { text: '00' } } }] }, 'cluster "c": health_checks: not implemented'],
    ['subset load balancing, present and empty', TYPE_URL.cluster, edsCluster('c'), { lbSubsetConfig: {} }, 'cluster "c": lb_subset_config: not implemented'],
    ['cluster metadata (ignored)', TYPE_URL.cluster, edsCluster('c'), { metadata: { filterMetadata: { istio: { fields: { config: { stringValue: 'x' } } } } } }, '(accepted)'],
    ['a virtual cluster of a route table (nested)', TYPE_URL.route, routeConfig('r', [{ match: { prefix: '/' }, route: { cluster: 'c' } }]), { vhds: { configSource: { ads: {} } } }, 'vhds: not implemented'],
    ['drop overloads of an assignment', TYPE_URL.endpoint, cla('c', [1]), { policy: { dropOverloads: [{ category: 'x', dropPercentage: { numerator: 5 } }] } }, 'policy.drop_overloads: not implemented'],
  ])('%s', (_what, typeUrl, json, extra, error) => {
    const u = unpackAny(overTheWire(typeUrl, json, extra), typeUrl);
    if (!u.ok) throw new Error(u.error);
    const r = translateResource(typeUrl, u.value);
    expect(r.ok ? '(accepted)' : r.error).toContain(error);
  });

  it('refuses a type URL it has no codec for, and bytes that do not decode, with an error (never a throw)', () => {
    const bytes = packFull(TYPE_URL.cluster, Cluster.fromPartial({ name: 'c' })).value;
    expect(unpackAny({ typeUrl: 'type.googleapis.com/envoy.config.listener.v3.ListenerCollection', value: bytes })).toEqual({
      ok: false,
      error: 'unknown type URL type.googleapis.com/envoy.config.listener.v3.ListenerCollection',
    });
    expect(unpackAny({ typeUrl: TYPE_URL.listener, value: bytes }, TYPE_URL.cluster)).toEqual({ ok: false, error: `expected ${TYPE_URL.cluster}, got ${TYPE_URL.listener}` });
    const bad = unpackAny({ typeUrl: TYPE_URL.cluster, value: Buffer.from([0x0a, 0x05, 0x61]) });
    expect(bad.ok ? '(decoded)' : bad.error).toMatch(/^type\.googleapis\.com\/envoy\.config\.cluster\.v3\.Cluster: /);
  });
});

describe("the proxy's imports of @octo-mesh/proto", () => {
  it('reach only the trimmed tree, proxy-codecs.js and the OCTO messages (a full-tree import would load its codecs beside the trimmed ones)', () => {
    const src = fileURLToPath(new URL('..', import.meta.url));
    const files = (readdirSync(src, { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.startsWith('test-support'));
    expect(files.length).toBeGreaterThan(20);
    const wrong = files.flatMap((f) =>
      [...readFileSync(join(src, f), 'utf8').matchAll(/from '(@octo-mesh\/proto[^']*)'/g)]
        .map((m) => m[1]!)
        .filter((spec) => !/^@octo-mesh\/proto\/(gen\/proxy\/|proxy-codecs\.js$|gen\/octo\/)/.test(spec))
        .map((spec) => `${f}: ${spec}`),
    );
    expect(wrong).toEqual([]);
  });
});
