// Simulated sidecars: a child process holding N real ADS (SotW) streams to a pilot, each on its
// own gRPC connection, behaving like a well-mannered proxy — subscribe to CDS and LDS
// (wildcard), then EDS for the clusters and RDS for the listener's route config, and ACK every
// response. Runs apart from the pilot so its memory and CPU are not counted as the pilot's.
//
// Parent → child (IPC): {cmd: 'connect', target, sidecars: [{id, namespace, dependencies, locality}]}, {cmd: 'exit'}
// Child → parent: {type: 'ready', connected, ms}, {type: 'error', message}
import * as grpc from '@grpc/grpc-js';
import { Cluster, DiscoveryRequest, Node, TYPE_URL } from '@octo-mesh/proto';

const SOTW = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

function varint(b, i) {
  let v = 0;
  let shift = 0;
  for (;;) {
    const x = b[i++];
    v += (x & 0x7f) * 2 ** shift;
    if (x < 0x80) return [v, i];
    shift += 7;
  }
}

/**
 * Reads a DiscoveryResponse's top-level fields without decoding the resources (a real proxy
 * decodes them on its own CPU; here thousands share the pilot's machine, so the simulator does
 * only what the protocol needs): version_info, type_url, nonce, and each resource's bytes.
 */
function parseResponse(b) {
  const out = { versionInfo: '', typeUrl: '', nonce: '', resources: [] };
  let i = 0;
  while (i < b.length) {
    let tag;
    [tag, i] = varint(b, i);
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) {
      [, i] = varint(b, i);
      continue;
    }
    let len;
    [len, i] = varint(b, i);
    const v = b.subarray(i, i + len);
    i += len;
    if (field === 1) out.versionInfo = v.toString('utf8');
    else if (field === 4) out.typeUrl = v.toString('utf8');
    else if (field === 5) out.nonce = v.toString('utf8');
    else if (field === 2) out.resources.push(anyValue(v));
  }
  return out;
}

/** The value (field 2) of an Any. */
function anyValue(b) {
  let i = 0;
  while (i < b.length) {
    let tag;
    [tag, i] = varint(b, i);
    let len;
    [len, i] = varint(b, i);
    if (tag >>> 3 === 2) return { value: b.subarray(i, i + len) };
    i += len;
  }
  return { value: Buffer.alloc(0) };
}

const CHANNEL_OPTIONS = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 << 20 };

function sidecar(target, spec, onReady) {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  const call = client.makeBidiStreamRequest(SOTW, (r) => Buffer.from(DiscoveryRequest.encode(r).finish()), parseResponse);
  const node = Node.fromPartial({ id: spec.id, cluster: spec.namespace, locality: spec.locality, metadata: { namespace: spec.namespace, dependencies: spec.dependencies } });
  const seen = new Set();
  let edsNames = [];
  let ready = false;
  const send = (r) => call.write(DiscoveryRequest.fromPartial(r));
  const last = new Map(); // type → {version, nonce}
  call.on('data', (res) => {
    last.set(res.typeUrl, { version: res.versionInfo, nonce: res.nonce });
    if (res.typeUrl === TYPE_URL.cluster) {
      send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce });
      const names = res.resources.map((a) => clusterName(a.value)).sort();
      if (names.join() !== edsNames.join()) {
        edsNames = names;
        const eds = last.get(TYPE_URL.endpoint);
        send({ node: seen.has(TYPE_URL.endpoint) ? undefined : node, typeUrl: TYPE_URL.endpoint, resourceNames: names, versionInfo: eds?.version ?? '', responseNonce: eds?.nonce ?? '' });
      }
    } else if (res.typeUrl === TYPE_URL.listener) {
      send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce });
      if (!last.has(TYPE_URL.route)) send({ typeUrl: TYPE_URL.route, resourceNames: ['outbound'] });
    } else {
      send({ typeUrl: res.typeUrl, versionInfo: res.versionInfo, responseNonce: res.nonce, resourceNames: res.typeUrl === TYPE_URL.endpoint ? edsNames : ['outbound'] });
    }
    seen.add(res.typeUrl);
    if (!ready && [TYPE_URL.cluster, TYPE_URL.endpoint, TYPE_URL.listener, TYPE_URL.route].every((t) => seen.has(t))) {
      ready = true;
      onReady();
    }
  });
  call.on('error', (e) => {
    if (e.code !== grpc.status.CANCELLED && process.connected) process.send({ type: 'error', message: `${spec.id}: ${e.message}` });
  });
  send({ node, typeUrl: TYPE_URL.cluster });
  send({ node, typeUrl: TYPE_URL.listener });
  return () => {
    call.cancel();
    client.close();
  };
}

/** Cluster.name without decoding the whole message: field 1 comes first in the encoding. */
function clusterName(b) {
  if (b[0] !== 0x0a) return Cluster.decode(b).name;
  let len = 0;
  let shift = 0;
  let i = 1;
  for (;;) {
    const x = b[i++];
    len |= (x & 0x7f) << shift;
    if (x < 0x80) break;
    shift += 7;
  }
  return b.toString('utf8', i, i + len);
}

const closers = [];
process.on('message', (m) => {
  if (m.cmd === 'connect') {
    const t0 = performance.now();
    let readyCount = 0;
    for (const spec of m.sidecars)
      closers.push(
        sidecar(m.target, spec, () => {
          if (++readyCount === m.sidecars.length) process.send({ type: 'ready', connected: readyCount, ms: performance.now() - t0 });
        }),
      );
  } else if (m.cmd === 'cpu') {
    const c = process.cpuUsage();
    process.send({ type: 'cpu', ms: (c.user + c.system) / 1000 });
  } else if (m.cmd === 'exit') {
    for (const c of closers) c();
    setTimeout(() => process.exit(0), 100);
  }
});
process.send({ type: 'started' });
