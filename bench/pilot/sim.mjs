// Simulated sidecars: a child process holding N real ADS (SotW) streams to a pilot, each on its
// own gRPC connection, behaving like a well-mannered proxy — subscribe to CDS and LDS
// (wildcard), then EDS for the clusters and RDS for the listener's route config, and ACK every
// response. Runs apart from the pilot so its memory and CPU are not counted as the pilot's.
//
// Parent → child (IPC): {cmd: 'connect', target, sidecars: [{id, namespace, dependencies, locality}]}, {cmd: 'exit'}
// Child → parent: {type: 'ready', connected, ms}, {type: 'error', message}
import * as grpc from '@grpc/grpc-js';
import { parseSotwResponse } from '@octo-mesh/mock-sidecar/xds-wire.js';
import { DiscoveryRequest, Node, TYPE_URL } from '@octo-mesh/proto';

const SOTW = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

// Responses are read at the wire level (version, type, nonce, resource names) without decoding
// the resources: see packages/mock-sidecar/src/xds-wire.ts.

const CHANNEL_OPTIONS = { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 << 20 };

function sidecar(target, spec, onReady) {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  const call = client.makeBidiStreamRequest(SOTW, (r) => Buffer.from(DiscoveryRequest.encode(r).finish()), parseSotwResponse);
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
      const names = [...res.names].sort();
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
