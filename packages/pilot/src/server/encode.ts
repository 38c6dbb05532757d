/**
 * Hand-assembled protobuf for ADS responses. A response is mostly resources that thousands of
 * streams send identically, so their encoding is cached (on the immutable resource and type
 * snapshot objects) and each stream only appends its own nonce: serialising a push to N streams
 * costs N buffer concatenations, not N message encodings. Field numbers are from
 * envoy/service/discovery/v3/discovery.proto; encode.test.ts decodes the output with the
 * generated codecs to keep this honest.
 */
import type { TypeSnapshot } from '../xds/snapshot.js';
import type { XdsResource } from '../xds/resource.js';

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited field (wire type 2). */
export function lengthDelimited(field: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload]);
}

const str = (field: number, s: string): Buffer => (s ? lengthDelimited(field, Buffer.from(s, 'utf8')) : Buffer.alloc(0));

/** Bytes to hand to grpc-js as they are (see the service definition in ads.ts). */
export class Encoded {
  constructor(readonly bytes: Buffer) {}
}

const anyFields = new WeakMap<XdsResource, Buffer>();
/** The resource's `Any` as field 2 of a DiscoveryResponse, encoded once. */
function anyField(r: XdsResource): Buffer {
  let b = anyFields.get(r);
  if (!b) anyFields.set(r, (b = lengthDelimited(2, encodedAny(r))));
  return b;
}

function encodedAny(r: XdsResource): Buffer {
  return Buffer.concat([str(1, r.any.typeUrl), r.any.value.length ? lengthDelimited(2, r.any.value) : Buffer.alloc(0)]);
}

/** Response bodies (everything but the nonce) per type snapshot and subscription ('' = all). */
const sotwBodies = new WeakMap<TypeSnapshot, Map<string, Buffer>>();
/** Bodies kept per type snapshot for distinct named subscriptions; sidecars of a scope share one. */
const MAX_BODIES = 64;

/**
 * DiscoveryResponse { version_info = 1; resources = 2; type_url = 4; nonce = 5 }. With `names`
 * the response holds only those resources (a non-wildcard subscription); without, all of the
 * type. Bodies are cached on the type snapshot, per subscription, so streams with the same
 * subscription share one.
 */
export function sotwResponse(ts: TypeSnapshot, nonce: string, names?: Iterable<string>): Encoded {
  const chosen = names ? [...names].filter((n) => ts.resources.has(n)).sort() : undefined;
  const key = chosen ? `=${chosen.join('\n')}` : '';
  let bodies = sotwBodies.get(ts);
  if (!bodies) sotwBodies.set(ts, (bodies = new Map()));
  let body = bodies.get(key);
  if (!body) {
    const parts: Buffer[] = [str(1, ts.version)];
    for (const r of chosen ? chosen.map((n) => ts.resources.get(n)!) : ts.resources.values()) parts.push(anyField(r));
    parts.push(str(4, ts.typeUrl));
    body = Buffer.concat(parts);
    if (bodies.size < MAX_BODIES) bodies.set(key, body);
  }
  return new Encoded(Buffer.concat([body, str(5, nonce)]));
}

const deltaEntries = new WeakMap<XdsResource, Buffer>();
/** Resource { version = 1; resource = 2; name = 3 } as field 2 of DeltaDiscoveryResponse, encoded once. */
function deltaEntry(r: XdsResource): Buffer {
  let b = deltaEntries.get(r);
  if (!b) deltaEntries.set(r, (b = lengthDelimited(2, Buffer.concat([str(1, r.version), anyField(r), str(3, r.name)]))));
  return b;
}

/** DeltaDiscoveryResponse { system_version_info = 1; resources = 2; type_url = 4; nonce = 5; removed_resources = 6 }. */
export function deltaResponse(typeUrl: string, systemVersion: string, resources: readonly XdsResource[], removed: readonly string[], nonce: string): Encoded {
  return new Encoded(
    Buffer.concat([str(1, systemVersion), ...resources.map(deltaEntry), str(4, typeUrl), str(5, nonce), ...removed.map((n) => lengthDelimited(6, Buffer.from(n, 'utf8')))]),
  );
}

function readVarint(b: Uint8Array, i: number): [value: number, next: number] {
  let v = 0;
  for (let shift = 0; ; shift += 7) {
    if (i >= b.length) throw new Error('truncated varint');
    const x = b[i++]!;
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return [v, i];
  }
}

/**
 * A message's bytes without its length-delimited field `field` (every occurrence), or the bytes
 * as they are when it has none or cannot be walked (groups, truncation: the decoder then reports
 * what is wrong). ADS requests after a stream's first carry the same node again (Envoy sends it on
 * every request by default); decoding it — a Struct of metadata — was ~7 % of a pilot's CPU in a
 * re-home storm at 10,000 sidecars (bench/scale CPU profile), for a node the stream already has.
 */
export function withoutField(b: Uint8Array, field: number): Uint8Array {
  const keep: Uint8Array[] = [];
  let from = 0;
  let i = 0;
  try {
    while (i < b.length) {
      const start = i;
      let tag: number;
      [tag, i] = readVarint(b, i);
      const wire = tag & 7;
      if (wire === 0) [, i] = readVarint(b, i);
      else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else if (wire === 2) {
        let len: number;
        [len, i] = readVarint(b, i);
        i += len;
        if (tag >>> 3 === field) {
          keep.push(b.subarray(from, start));
          from = i;
        }
      } else return b;
      if (i > b.length) return b;
    }
  } catch {
    return b;
  }
  if (from === 0) return b;
  keep.push(b.subarray(from));
  return Buffer.concat(keep);
}
