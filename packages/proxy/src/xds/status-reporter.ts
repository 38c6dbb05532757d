/**
 * Forwards the LEGO agent's status to the pilot this sidecar holds its ADS stream to
 * (SidecarStatusService on the pilot's gRPC port). Level-triggered: it always sends the latest
 * status, once per change and again after every new stream (a pilot keeps statuses only for the
 * sidecars connected to it, so a failover must re-report); a failed report is retried with
 * jittered backoff until it lands or a newer status replaces it.
 */
import { Metadata, type ServiceError } from '@grpc/grpc-js';
import { MESH_CHANNEL_OPTIONS, meshChannelCredentials, type MeshTls } from '@octo-mesh/clients/mtls.js';
import { SidecarStatusServiceClient } from '@octo-mesh/proto/gen/octo/mesh/v1/sidecar_status.js';
import { Backoff, type BackoffOptions, type Logger } from '@octo-mesh/runtime';

export interface StatusReporterOptions {
  nodeId: string;
  /** mTLS to the pilot (plaintext without). */
  tls?: MeshTls;
  logger: Logger;
  backoff?: BackoffOptions;
  /** Each report's outcome, for metrics. */
  onResult?: (result: 'sent' | 'failed') => void;
}

export class SidecarStatusReporter {
  private latest: string | undefined;
  private address: string | undefined;
  private client: SidecarStatusServiceClient | undefined;
  /** The latest status has not reached the current pilot yet. */
  private dirty = false;
  private sending = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly backoff: Backoff;

  constructor(private readonly opts: StatusReporterOptions) {
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 200, maxMs: 10_000, jitter: 0.5 });
  }

  /** The agent's newest status, as JSON of `AgentStatus` (@octo-mesh/contracts). */
  set(statusJson: string): void {
    this.latest = statusJson;
    this.dirty = true;
    this.kick();
  }

  /** A stream to the pilot at `address` is up: report to it (again). */
  pilot(address: string): void {
    if (address !== this.address) {
      this.client?.close();
      this.client = new SidecarStatusServiceClient(address, meshChannelCredentials(this.opts.tls, 'pilot'), MESH_CHANNEL_OPTIONS);
      this.address = address;
    }
    this.dirty = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.backoff.reset();
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.client?.close();
  }

  private kick(): void {
    if (this.stopped || this.sending || this.timer || !this.dirty || this.latest === undefined || !this.client) return;
    const json = this.latest;
    const client = this.client;
    this.sending = true;
    this.dirty = false;
    client.report({ nodeId: this.opts.nodeId, agentStatusJson: json }, new Metadata(), { deadline: Date.now() + 5000 }, (err: ServiceError | null) => {
      this.sending = false;
      if (this.stopped) return;
      if (!err) {
        this.opts.onResult?.('sent');
        this.backoff.reset();
        this.kick(); // a newer status may have arrived meanwhile
        return;
      }
      this.opts.onResult?.('failed');
      // Not lost: unless a newer one came, this status is sent again after the backoff.
      if (this.latest === json && client === this.client) this.dirty = true;
      const delayMs = this.backoff.next();
      this.opts.logger.warn('cannot report the agent status to the pilot; retrying', { pilot: this.address, code: err.code, error: err.details || err.message, delayMs });
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, delayMs);
    });
  }
}
