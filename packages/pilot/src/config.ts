/**
 * Pilot's configuration: defaults < `--config` file < `OCTO_PILOT_*` environment < flags.
 * Flags are the kebab-case field names: `--xds-port 15010 --admin-port 15014 --pilot-id p-1`.
 */
import { hostname } from 'node:os';
import { meshAdminTlsConfigFields, meshCaConfigFields, meshTlsConfigFields, refineMeshCa } from '@octo-mesh/clients';
import { LOG_LEVELS } from '@octo-mesh/runtime';
import { z } from 'zod';

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, { message: 'must be host:port' });
const isWildcard = (host: string) => host === '0.0.0.0' || host === '::' || host === '[::]';
const port = (d: number) => z.coerce.number().int().min(0).max(65535).default(d);

export const pilotConfig = z
  .object({
    /** This replica's id, in logs and the meta server. */
    pilotId: z.string().min(1).max(253).default(hostname()),
    xdsHost: z.string().min(1).default('0.0.0.0'),
    xdsPort: port(15010),
    /**
     * The admin/debug port serves every sidecar's configuration: loopback by default, so only
     * this machine reads it; in Kubernetes the chart binds the pod IP for probes and in-cluster
     * tools (issue 21).
     */
    adminHost: z.string().min(1).default('127.0.0.1'),
    adminPort: port(15014),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /** Quiet period before a burst of changes is pushed. */
    debounceQuietMs: z.coerce.number().int().min(0).max(10_000).default(100),
    /** A burst is pushed at the latest this long after its first change. */
    debounceMaxMs: z.coerce.number().int().min(1).max(60_000).default(1000),
    /** New ADS streams taken on per second, and at once (a ceiling; server/admission.ts). */
    streamAdmissionRate: z.coerce.number().positive().max(1_000_000).default(2000),
    streamAdmissionBurst: z.coerce.number().int().min(1).max(1_000_000).default(1000),
    /** New ADS streams setting up at once (admitted, first request not yet answered). */
    streamAdmissionMaxSettingUp: z.coerce.number().int().min(1).max(1_000_000).default(64),
    /**
     * The dispatcher (`host:port`) to read services, endpoints and RoutePolicies from. Without
     * it, an in-memory source is used (seeded from `resources`).
     */
    dispatcherAddress: hostPort.optional(),
    /**
     * A YAML file (or directory of them) of Service, ServiceEndpoints, RoutePolicy and ProxyVersion
     * objects loaded into the in-memory mesh source, until the dispatcher source is wired in.
     */
    resources: z.string().min(1).optional(),
    /** Seconds to let streams finish on SIGTERM. */
    shutdownGraceSeconds: z.coerce.number().min(0).max(300).default(5),
    /**
     * The meta server (`host:port`) to register with and heartbeat (reporting connected
     * sidecars); it tells sidecars to use this pilot, and asks it to shed sidecars it moves.
     */
    metaServerAddress: hostPort.optional(),
    /**
     * The host (name or IP) sidecars and tools reach this pilot at, registered with the meta
     * server with the bound xDS and admin ports. Default: `xdsHost`, unless that is a wildcard.
     */
    advertiseHost: z
      .string()
      .regex(/^[^\s:/]+$|^\[[0-9a-fA-F:.]+\]$/, { message: 'must be a host name or IP address (no port)' })
      .optional(),
    /** This pilot's zone, registered with the meta server. */
    zone: z.string().max(253).optional(),
    ...meshTlsConfigFields,
    ...meshCaConfigFields,
    ...meshAdminTlsConfigFields,
    /**
     * With `tlsDir`: ADS streams need a client certificate from the mesh CA too, and a node may
     * only speak for its certificate's namespace. Off, sidecars without certificates still connect
     * (the control-plane calls use mTLS either way).
     */
    xdsMtls: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
    /**
     * mTLS between sidecars (translate/mtls.ts), for sidecars whose agents hold certificates (node
     * metadata `octo.io/sds-dir`): `permissive` — they call mesh services over mTLS and their
     * inbound accepts mTLS and plaintext; `strict` — inbound accepts mTLS only; `off` — plaintext.
     */
    mtlsMode: z.enum(['off', 'permissive', 'strict']).default('permissive'),
    /**
     * Sidecars with certificates speak HTTP/2 to each other on `http` ports when the callee's
     * inbound offers it (ALPN, `auto_config`): one multiplexed connection instead of one per
     * concurrent request, at more CPU per request in octo-proxy (bench/proxy-tls/alpn.mjs). Off
     * (default, as Istio's h2UpgradePolicy DO_NOT_UPGRADE): HTTP/1.1 unless the port says http2/grpc.
     */
    h2Upgrade: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
  })
  .strict()
  .superRefine(refineMeshCa)
  .refine((c) => !c.xdsMtls || c.tlsDir !== undefined, { message: 'requires tlsDir (the certificate ADS clients are checked against)', path: ['xdsMtls'] })
  .refine((c) => c.debounceMaxMs >= c.debounceQuietMs, { message: 'must be at least debounceQuietMs', path: ['debounceMaxMs'] })
  .refine((c) => !c.metaServerAddress || c.advertiseHost || !isWildcard(c.xdsHost), {
    message: 'required with metaServerAddress when xdsHost is a wildcard address (the address sidecars dial, e.g. the pod IP)',
    path: ['advertiseHost'],
  });

export type PilotConfig = z.infer<typeof pilotConfig>;

/**
 * The addresses registered with the meta server: `advertiseHost` (else the listening host) with the
 * bound ports. The admin address is the admin host when it is a specific address (loopback by
 * default: reachable only there), else the advertised or xDS host.
 */
export function advertisedAddresses(config: Pick<PilotConfig, 'advertiseHost' | 'xdsHost' | 'adminHost'>, xdsPort: number, adminPort: number): { xds: string; admin: string } {
  const join = (host: string, port: number) => `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
  const xdsHost = config.advertiseHost ?? config.xdsHost;
  const adminHost = isWildcard(config.adminHost) ? xdsHost : config.adminHost;
  return { xds: join(xdsHost, xdsPort), admin: join(adminHost, adminPort) };
}
