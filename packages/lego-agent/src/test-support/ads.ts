import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { AggregatedDiscoveryServiceService, DiscoveryResponse, type Any, type DiscoveryRequest } from '@octo-mesh/proto';

/**
 * A real ADS server (state of the world) for the agent's tests, standing in for a pilot: answers
 * each type's first request on a stream with `resources(typeUrl)` (undefined: no answer).
 */
export async function startAds(resources: (typeUrl: string) => Any[] | undefined): Promise<{ port: number; close: () => void }> {
  const server = new Server();
  server.addService(AggregatedDiscoveryServiceService, {
    streamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => {
      call.on('data', (req: DiscoveryRequest) => {
        if (req.responseNonce) return;
        const items = resources(req.typeUrl);
        if (items) call.write(DiscoveryResponse.fromPartial({ versionInfo: '1', typeUrl: req.typeUrl, nonce: `n-${req.typeUrl}`, resources: items }));
      });
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { port, close: () => server.forceShutdown() };
}
