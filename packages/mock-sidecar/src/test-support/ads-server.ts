/**
 * A minimal SotW ADS server on grpc-js for MockSidecar's tests: answers every request without a
 * nonce (a subscription) with the type's resources — one cluster `c1`, its endpoints, the listener
 * `outbound` and its routes — records every request with its stream's number, and ends the n-th
 * stream with `endWith[n]` (a status; OK ends it cleanly) once that stream's first two requests
 * (the subscriptions to CDS and LDS) are answered.
 */
import * as grpc from '@grpc/grpc-js';
import { DiscoveryRequest, DiscoveryResponse, TYPE_URL } from '@octo-mesh/proto';

/** A resource whose first string field is its name (all a MockSidecar reads of it). */
const named = (typeUrl: string, name: string) => ({ typeUrl, value: Buffer.concat([Buffer.from([0x0a, name.length]), Buffer.from(name)]) });

export interface TestAdsServer {
  address: string;
  /** Every request received, in order, with the number of its stream (1, 2, …). */
  requests: (DiscoveryRequest & { stream: number })[];
  /** Streams opened so far. */
  streams(): number;
  close(): void;
}

export async function adsServer(endWith: Record<number, { code: number; details: string }> = {}): Promise<TestAdsServer> {
  const server = new grpc.Server();
  const requests: (DiscoveryRequest & { stream: number })[] = [];
  let nonce = 0;
  let streams = 0;
  const resources: Record<string, string[]> = { [TYPE_URL.cluster]: ['c1'], [TYPE_URL.endpoint]: ['c1'], [TYPE_URL.listener]: ['outbound'], [TYPE_URL.route]: ['outbound'] };
  server.addService(
    {
      stream: {
        path: '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
        requestStream: true,
        responseStream: true,
        requestDeserialize: (b: Buffer) => DiscoveryRequest.decode(b),
        responseSerialize: (r: DiscoveryResponse) => Buffer.from(DiscoveryResponse.encode(r).finish()),
      },
    } as unknown as grpc.ServiceDefinition,
    {
      stream: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
        const stream = ++streams;
        let ended = false;
        call.on('data', (req: DiscoveryRequest) => {
          requests.push({ ...req, stream });
          if (req.responseNonce || ended) return; // an ACK or a NACK
          const names = resources[req.typeUrl] ?? [];
          call.write(DiscoveryResponse.fromPartial({ typeUrl: req.typeUrl, versionInfo: 'v1', nonce: String(++nonce), resources: names.map((n) => named(req.typeUrl, n)) }));
          const end = endWith[stream];
          if (!end || requests.filter((r) => r.stream === stream).length < 2) return;
          ended = true;
          if (end.code === grpc.status.OK) call.end();
          else call.emit('error', end);
        });
        call.on('error', () => {});
        call.on('end', () => call.end());
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { address: `127.0.0.1:${port}`, requests, streams: () => streams, close: () => server.forceShutdown() };
}
