/**
 * Reads xDS responses at the wire level, without decoding the resources. A real proxy decodes
 * them on its own CPU; here thousands of simulated sidecars share the control plane's machine, so
 * the simulator does only what the protocol needs: version, type, nonce, and each resource's name
 * (to subscribe to EDS by cluster name and to check which resources a sidecar holds). Moved here
 * from bench/pilot/sim.mjs, which now imports it.
 */
import { TYPE_URL } from '@octo-mesh/proto';

/** A DiscoveryResponse (SotW) or DeltaDiscoveryResponse, as far as a sidecar needs it. */
export interface WireResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  /** SotW: every resource of the response; delta: the added or changed ones. */
  names: string[];
  /** Delta only: names removed. */
  removed: string[];
  /** Bytes of the whole response. */
  bytes: number;
}

function varint(b: Uint8Array, i: number): [number, number] {
  let v = 0;
  let shift = 0;
  for (;;) {
    const x = b[i++]!;
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return [v, i];
    shift += 7;
  }
}

/** Calls `each(field, wireType, valueOrBytes)` for each top-level field of a message. */
function fields(b: Uint8Array, each: (field: number, bytes: Uint8Array | undefined) => void): void {
  let i = 0;
  while (i < b.length) {
    let tag: number;
    [tag, i] = varint(b, i);
    const wire = tag & 7;
    if (wire === 0) {
      [, i] = varint(b, i);
      each(tag >>> 3, undefined);
    } else if (wire === 2) {
      let len: number;
      [len, i] = varint(b, i);
      each(tag >>> 3, b.subarray(i, i + len));
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unsupported wire type ${wire}`);
  }
}

const utf8 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');

/** The first string field (field 1) of a message: the name of every Envoy resource we serve. */
export function firstStringField(b: Uint8Array): string {
  let name = '';
  try {
    fields(b, (f, v) => {
      if (f === 1 && v && !name) name = utf8(v);
    });
  } catch {
    // a resource we cannot read has no name for us
  }
  return name;
}

/** The value (field 2) of a google.protobuf.Any. */
function anyValue(b: Uint8Array): Uint8Array {
  let out: Uint8Array = new Uint8Array();
  fields(b, (f, v) => {
    if (f === 2 && v) out = v;
  });
  return out;
}

/** The name of a resource of a type: field 1 for Envoy types and ServiceGovernance; UpgradeTarget is named after the node. */
const resourceName = (typeUrl: string, value: Uint8Array) => (typeUrl === TYPE_URL.upgradeTarget ? 'upgrade-target' : firstStringField(value));

/** A SotW DiscoveryResponse: version_info 1, resources 2 (Any), type_url 4, nonce 5. */
export function parseSotwResponse(b: Uint8Array): WireResponse {
  const out: WireResponse = { versionInfo: '', typeUrl: '', nonce: '', names: [], removed: [], bytes: b.length };
  const values: Uint8Array[] = [];
  fields(b, (f, v) => {
    if (!v) return;
    if (f === 1) out.versionInfo = utf8(v);
    else if (f === 4) out.typeUrl = utf8(v);
    else if (f === 5) out.nonce = utf8(v);
    else if (f === 2) values.push(anyValue(v));
  });
  out.names = values.map((v) => resourceName(out.typeUrl, v));
  return out;
}

/**
 * A DeltaDiscoveryResponse: system_version_info 1, resources 2 (Resource: version 1, resource 2,
 * name 3), type_url 4, nonce 5, removed_resources 6.
 */
export function parseDeltaResponse(b: Uint8Array): WireResponse {
  const out: WireResponse = { versionInfo: '', typeUrl: '', nonce: '', names: [], removed: [], bytes: b.length };
  fields(b, (f, v) => {
    if (!v) return;
    if (f === 1) out.versionInfo = utf8(v);
    else if (f === 4) out.typeUrl = utf8(v);
    else if (f === 5) out.nonce = utf8(v);
    else if (f === 6) out.removed.push(utf8(v));
    else if (f === 2) {
      let name = '';
      fields(v, (rf, rv) => {
        if (rf === 3 && rv) name = utf8(rv);
      });
      out.names.push(name);
    }
  });
  return out;
}

/**
 * The requests a sidecar sends most — ACKs and subscription changes, with no node and no error —
 * encoded by hand (`encodeSotwAck`, `encodeDeltaAck`): at 10,000 sidecars every push is answered 10,000 times, and building a message
 * object and running the generated codec for each was simulator CPU taken from the control plane
 * on the same cores. Requests that carry a node or an error_detail (one per type per stream, and
 * NACKs) still go through the generated codec.
 */
export interface SotwAck {
  versionInfo: string;
  typeUrl: string;
  responseNonce: string;
  resourceNames: readonly string[];
}

/** DeltaDiscoveryRequest fields a delta ACK or subscription change carries. */
export interface DeltaAck {
  typeUrl: string;
  responseNonce: string;
  resourceNamesSubscribe: readonly string[];
  resourceNamesUnsubscribe: readonly string[];
}

function varintLength(n: number): number {
  let len = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(b: Buffer, i: number, n: number): number {
  while (n > 0x7f) {
    b[i++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[i++] = n;
  return i;
}

/**
 * Length-delimited string fields, in order, as one message. An empty singular string is left out
 * (the proto3 default); an element of a repeated field (`repeated` true) is written even if empty.
 */
function stringFields(fields: readonly (readonly [field: number, value: string, repeated?: boolean])[]): Buffer {
  let size = 0;
  const lengths = fields.map(([f, s, repeated]) => {
    const n = Buffer.byteLength(s, 'utf8');
    if (n || repeated) size += varintLength(f << 3) + varintLength(n) + n;
    return n;
  });
  const b = Buffer.allocUnsafe(size);
  let i = 0;
  fields.forEach(([f, s, repeated], k) => {
    const n = lengths[k]!;
    if (!n && !repeated) return;
    i = writeVarint(b, i, (f << 3) | 2);
    i = writeVarint(b, i, n);
    i += b.write(s, i, 'utf8');
  });
  return b;
}

/** DiscoveryRequest { version_info = 1; resource_names = 3; type_url = 4; response_nonce = 5 }. */
export function encodeSotwAck(r: SotwAck): Buffer {
  return stringFields([[1, r.versionInfo], ...r.resourceNames.map((n) => [3, n, true] as const), [4, r.typeUrl], [5, r.responseNonce]]);
}

/** DeltaDiscoveryRequest { type_url = 2; resource_names_subscribe = 3; resource_names_unsubscribe = 4; response_nonce = 6 }. */
export function encodeDeltaAck(r: DeltaAck): Buffer {
  return stringFields([[2, r.typeUrl], ...r.resourceNamesSubscribe.map((n) => [3, n, true] as const), ...r.resourceNamesUnsubscribe.map((n) => [4, n, true] as const), [6, r.responseNonce]]);
}
