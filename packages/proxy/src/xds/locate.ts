import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { MESH_CHANNEL_OPTIONS, meshChannelCredentials, type MeshTls } from '@octo-mesh/clients/mtls.js';
import { MetaServerClient, type LocateResponse } from '@octo-mesh/proto/gen/octo/mesh/v1/meta.js';
import { locateAttemptMs as sharedLocateAttemptMs } from '@octo-mesh/contracts/locate.js';

/** Which pilot serves this sidecar: the meta server's answer. */
export interface PilotLocation {
  pilotId: string;
  xdsAddress: string;
}

export interface LocateOptions {
  metaAddress: string;
  /** mTLS to the meta server with the sidecar's certificate (plaintext without). */
  tls?: MeshTls;
  nodeId: string;
  namespace: string;
  workload: string;
  timeoutMs?: number;
}

/**
 * Asks the meta server `Locate` once. `unreachablePilotId` names the pilot this sidecar just
 * lost, so the meta server does not hand it back. Rejects on any failure; the caller retries
 * with its own backoff.
 */
export function locatePilot(opts: LocateOptions, unreachablePilotId?: string): Promise<PilotLocation> {
  const client = new MetaServerClient(opts.metaAddress, meshChannelCredentials(opts.tls, 'meta-server'), MESH_CHANNEL_OPTIONS);
  return new Promise<PilotLocation>((resolve, reject) => {
    client.locate(
      { nodeId: opts.nodeId, namespace: opts.namespace, workload: opts.workload, unreachablePilotId: unreachablePilotId ?? '' },
      new Metadata(),
      { deadline: Date.now() + (opts.timeoutMs ?? 3000) },
      (err: ServiceError | null, res?: LocateResponse) => {
        if (err || !res) return reject(err ?? new Error('empty Locate response'));
        if (!res.xdsAddress) return reject(new Error(`meta server named pilot ${JSON.stringify(res.pilotId)} without an xDS address`));
        resolve({ pilotId: res.pilotId, xdsAddress: res.xdsAddress });
      },
    );
  }).finally(() => client.close());
}

/** How long one Locate may take after `failures` failed in a row: 3 s, then 6 s, then 12 s at most (contracts' locateAttemptMs). */
export function locateAttemptMs(failures: number, firstMs = 3000): number {
  return sharedLocateAttemptMs(failures, firstMs);
}

/**
 * The proxy's `locate`: {@link locatePilot} with each attempt's deadline escalating while attempts
 * fail in a row ({@link locateAttemptMs}); a success starts over at the first deadline.
 */
export function pilotLocator(opts: Omit<LocateOptions, 'timeoutMs'> & { firstAttemptMs?: number }): (unreachablePilotId?: string) => Promise<PilotLocation> {
  let failures = 0;
  return async (unreachablePilotId) => {
    try {
      const loc = await locatePilot({ ...opts, timeoutMs: locateAttemptMs(failures, opts.firstAttemptMs) }, unreachablePilotId);
      failures = 0;
      return loc;
    } catch (err) {
      failures++;
      throw err;
    }
  };
}

/** Whether a stream failure means the pilot could not be reached (vs. it closed the stream). */
export function isUnreachable(err: Partial<ServiceError>): boolean {
  return err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED;
}
