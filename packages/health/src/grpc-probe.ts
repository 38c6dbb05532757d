/**
 * The standard gRPC health check (grpc.health.v1, https://github.com/grpc/grpc/blob/master/doc/health-checking.md):
 * a unary `grpc.health.v1.Health/Check` over h2c with the check's timeout as the deadline.
 * Healthy only when the answer is SERVING; NOT_SERVING, SERVICE_UNKNOWN, UNKNOWN, any non-OK
 * status (UNIMPLEMENTED when the server has no Health service, NOT_FOUND for an unknown service
 * name, UNAVAILABLE when nothing listens) and an exceeded deadline are failures.
 *
 * One channel per endpoint (and authority), kept across rounds: a check every interval reuses the
 * HTTP/2 connection instead of paying a handshake each time, and the owner calls `retain` with the
 * endpoints it still checks so channels of endpoints that went away are closed (no leak).
 *
 * The two messages are tiny, so they are encoded and decoded here instead of generated:
 *   message HealthCheckRequest  { string service = 1; }
 *   message HealthCheckResponse { ServingStatus status = 1; }  // UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3
 */
import { Client, credentials, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { ProbeResult } from './probe.js';

export const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
export const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

export interface GrpcProbeSpec {
  address: string;
  port: number;
  timeoutMs: number;
  /** Service asked about; '' = the whole server. */
  service: string;
  /** The :authority sent (the service's host unless the policy names another). */
  authority: string;
}

/** Encodes a HealthCheckRequest: field 1 (string), omitted when empty (proto3 default). */
export function encodeHealthCheckRequest(service: string): Buffer {
  if (!service) return Buffer.alloc(0);
  const bytes = Buffer.from(service, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(bytes.length), bytes]);
}

/** Decodes a HealthCheckResponse's status (0 when absent); unknown fields are skipped. Throws on malformed input. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  let i = 0;
  const readVarint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      if (shift < 35) result += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) return result;
      if (shift > 70) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const tag = readVarint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const v = readVarint();
      if (field === 1) status = v;
    } else if (wire === 2) {
      const length = readVarint(); // read before adding: `i += readVarint()` would add to the old i
      i += length;
    }
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unsupported wire type ${wire} for field ${field}`);
    if (i > buf.length) throw new Error('truncated field');
  }
  return status;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

const target = (address: string, port: number) => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/** The channels of one owner (a service's check run), one per endpoint and authority. */
export class GrpcHealthChannels {
  private readonly clients = new Map<string, Client>();

  /** @param reconnectBackoffMs upper bound of a channel's reconnect backoff, so a recovered endpoint is seen within about one interval. */
  constructor(private readonly reconnectBackoffMs = 1000) {}

  static key(spec: Pick<GrpcProbeSpec, 'address' | 'port' | 'authority'>): string {
    return `${target(spec.address, spec.port)}|${spec.authority}`;
  }

  get size(): number {
    return this.clients.size;
  }

  private client(spec: GrpcProbeSpec): Client {
    const key = GrpcHealthChannels.key(spec);
    let c = this.clients.get(key);
    if (!c) {
      c = new Client(target(spec.address, spec.port), credentials.createInsecure(), {
        'grpc.default_authority': spec.authority,
        // A check is one unary call: no retries (a failed check is the answer), no DNS TXT lookups.
        'grpc.enable_retries': 0,
        'grpc.service_config_disable_resolution': 1,
        'grpc.initial_reconnect_backoff_ms': Math.min(100, this.reconnectBackoffMs),
        'grpc.max_reconnect_backoff_ms': this.reconnectBackoffMs,
        'grpc.max_receive_message_length': 64 * 1024,
      });
      this.clients.set(key, c);
    }
    return c;
  }

  /** One check; never throws, ends by the deadline (grpc-js enforces it). */
  check(spec: GrpcProbeSpec): Promise<ProbeResult> {
    const started = performance.now();
    const done = (ok: boolean, reason?: string): ProbeResult => ({ ok, ...(reason ? { reason } : {}), ms: Math.round(performance.now() - started) });
    return new Promise<ProbeResult>((resolve) => {
      try {
        this.client(spec).makeUnaryRequest(
          HEALTH_CHECK_METHOD,
          (service: string) => encodeHealthCheckRequest(service),
          (buf: Buffer) => decodeHealthCheckResponse(buf),
          spec.service,
          { deadline: Date.now() + spec.timeoutMs },
          (err: ServiceError | null, value?: number) => {
            if (err) {
              if (err.code === grpcStatus.DEADLINE_EXCEEDED) return resolve(done(false, `timeout after ${spec.timeoutMs} ms`));
              // grpc-js ends a connect failure's details with an empty "Resolution note: ".
              const text = err.details?.replace(/\s*Resolution note:\s*$/, '').slice(0, 160);
              const details = text ? `: ${text}` : '';
              return resolve(done(false, `gRPC ${grpcStatus[err.code] ?? err.code}${details}`));
            }
            resolve(value === 1 ? done(true) : done(false, SERVING_STATUS[value ?? 0] ?? `status ${value}`));
          },
        );
      } catch (err) {
        resolve(done(false, (err as Error).message));
      }
    });
  }

  /** Closes the channels of endpoints not in `keep` (keys from `GrpcHealthChannels.key`); returns how many. */
  retain(keep: ReadonlySet<string>): number {
    let closed = 0;
    for (const [key, c] of this.clients) {
      if (keep.has(key)) continue;
      c.close();
      this.clients.delete(key);
      closed++;
    }
    return closed;
  }

  close(): void {
    this.retain(new Set());
  }
}
