import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOG_LEVELS } from '@octo-mesh/runtime/logger.js';
import { z } from 'zod';

/** The proxy child's Node flags unless `proxyNodeFlags` says otherwise (see docs/footprint.md). */
export const DEFAULT_PROXY_NODE_FLAGS = ['--max-semi-space-size=8'];

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce.number().int().min(0);
const bool = z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]);

/** The proxy the agent starts before any package (the workspace's build beside this one). */
export const DEFAULT_PROXY_ENTRY = fileURLToPath(new URL('../../proxy/dist/main.js', import.meta.url));

/**
 * The LEGO agent's configuration: defaults < `--config agent.yaml` < `OCTO_AGENT_*` environment
 * < `--flags`. The `proxy` section (file only) is the proxy's own bootstrap, passed through to
 * every proxy child (listener sockets and the admin port are the agent's business and are set
 * by it).
 */
export const AgentConfigSchema = z
  .object({
    instanceId: z.string().min(1).default(hostname()),
    adminHost: z.string().default('127.0.0.1'),
    adminPort: port.default(15000),
    outboundHost: z.string().default('127.0.0.1'),
    outboundPort: port.default(15001),
    /** Unix socket for the outbound listener, e.g. /var/run/octo/outbound.sock. */
    outboundSocket: z.string().optional(),
    inboundHost: z.string().default('0.0.0.0'),
    inboundPort: port.default(15006),
    /** The proxy entry started first (and whenever no package is installed): a local build. */
    proxyEntry: z.string().min(1).default(DEFAULT_PROXY_ENTRY),
    /** Packages, downloads and the children's bootstrap file live here. */
    stateDir: z.string().min(1).default(join(tmpdir(), 'octo-lego-agent')),
    /** Unpacked versions kept for instant rollback (the running one included). */
    keepVersions: z.coerce.number().int().min(1).default(3),
    /** PEM files of trusted ed25519 public keys; when any, unsigned packages are refused. */
    trustedKeys: z.union([z.array(z.string()), z.string().transform((s) => s.split(',').map((x) => x.trim()).filter(Boolean))]).default([]),
    maxPackageBytes: z.coerce.number().int().min(1).default(64 * 1024 * 1024),
    downloadTimeoutMs: ms.default(30_000),
    downloadRetries: z.coerce.number().int().min(0).default(4),
    /** A new proxy must be ready and xDS-synced within this long, or it is rolled back (NotReady). */
    readyTimeoutMs: ms.default(30_000),
    /** A new proxy must stay up and healthy this long, serving beside the old one, before the old one drains. */
    minReadySeconds: z.coerce.number().min(0).default(1),
    healthProbeIntervalMs: ms.default(250),
    /** How long a draining proxy may take before it is closed (long-lived streams end here). */
    drainTimeoutMs: ms.default(5_000),
    /** A swap moves the old proxy's kept-alive connections over this long (each at a random moment), not all at once. */
    drainSpreadMs: ms.default(500),
    /** Crash restarts: the first is immediate, repeated ones back off from here… */
    crashBackoffMs: ms.default(500),
    /** …up to this; a child up this long counts as stable again. */
    crashBackoffMaxMs: ms.default(30_000),
    /** A local UpgradeTarget (JSON or YAML), re-read on change: for use without a pilot. */
    targetFile: z.string().optional(),
    /** Whether targets from the pilot (via the proxy) are followed. */
    followPilot: bool.default(true),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    /**
     * Node/V8 flags for every proxy child (`execArgv` of the fork), e.g. `--max-old-space-size=96`.
     * The default caps V8's semi-spaces (the young generation) at 8 MB, below what Node lets
     * them grow to: a sidecar's live heap is small, and the larger nursery mostly holds resident
     * memory (with 1,000 routes about 46 MB less RSS, about 4 % less saturated throughput; see
     * docs/footprint.md). `[]` (or an empty string) runs the proxy with Node's defaults.
     */
    proxyNodeFlags: z
      .union([z.array(z.string()), z.string().transform((s) => s.split(/[\s,]+/).filter(Boolean))])
      .pipe(z.array(z.string().regex(/^--[a-z0-9-]+(=\S+)?$/, 'must be a Node flag such as --max-semi-space-size=1')))
      .default(DEFAULT_PROXY_NODE_FLAGS),
    proxy: z.record(z.string(), z.unknown()).default({}),
    /**
     * The mesh CA (`https://…`): with it the agent obtains the workload's certificate before the
     * first proxy starts and keeps it fresh (packages/identity, `CertificateRotator`). All CA
     * settings or none: `caTrustBundleFile` and `caTokenFile` are required with it.
     */
    caUrl: z
      .url({ protocol: /^https$/, error: 'must be an https:// URL of the mesh CA' })
      .optional(),
    /** PEM roots the CA's serving certificate chains to (read once at start). */
    caTrustBundleFile: z.string().min(1).optional(),
    /** The same roots inline (PEM text) instead of a file: the injector passes them in the env, as an app namespace has no ConfigMap of the control plane's to mount. */
    caTrustBundle: z.string().min(1).optional(),
    /** The bootstrap token or projected ServiceAccount token presented to the CA; re-read at each use. */
    caTokenFile: z.string().min(1).optional(),
    /** Where the certificate files are published (created 0700); default `<stateDir>/certs`. */
    certDir: z.string().min(1).optional(),
    /** The certificate lifetime asked of the CA; default the CA's. */
    certTtlSeconds: z.coerce.number().int().min(1).optional(),
    /** How long the first proxy waits for the first certificate; past it the proxy starts without one (the agent stays unready). */
    certWaitMs: ms.default(30_000),
    /** Failed CA requests are retried with exponential backoff and jitter from 500 ms up to this. */
    caRetryMaxMs: z.coerce.number().int().min(500).default(30_000),
    /**
     * With a CA, pass `--tls-dir <certDir>` to every proxy child (mTLS to the meta server and
     * pilot, the SDS directory in its node metadata). `false` only for a proxy older than that
     * flag, which refuses to start with it.
     */
    proxyTlsDir: bool.default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.caUrl) {
      if (!c.caTrustBundleFile && !c.caTrustBundle) ctx.addIssue({ code: 'custom', path: ['caTrustBundleFile'], message: `required with caUrl (${c.caUrl}), or caTrustBundle` });
      if (c.caTrustBundleFile && c.caTrustBundle) ctx.addIssue({ code: 'custom', path: ['caTrustBundle'], message: 'give caTrustBundleFile or caTrustBundle, not both' });
      if (!c.caTokenFile) ctx.addIssue({ code: 'custom', path: ['caTokenFile'], message: `required with caUrl (${c.caUrl})` });
      return;
    }
    for (const field of ['caTrustBundleFile', 'caTrustBundle', 'caTokenFile', 'certDir', 'certTtlSeconds'] as const) {
      if (c[field] !== undefined) ctx.addIssue({ code: 'custom', path: ['caUrl'], message: `required with ${field} (the CA settings go together)` });
    }
  })
  .transform((c) => (c.caUrl ? { ...c, certDir: c.certDir ?? join(c.stateDir, 'certs') } : c));

export type AgentConfig = z.infer<typeof AgentConfigSchema>;

/** The CA settings of a config that has `caUrl` (the schema makes them all-or-nothing). */
export interface CaSettings {
  caUrl: string;
  /** The roots: a file, or inline PEM (exactly one is set). */
  caTrustBundleFile: string | undefined;
  caTrustBundle: string | undefined;
  caTokenFile: string;
  certDir: string;
  certTtlSeconds: number | undefined;
  certWaitMs: number;
  caRetryMaxMs: number;
}

/** The CA settings, or undefined when the agent has no CA. */
export function caSettings(c: AgentConfig): CaSettings | undefined {
  if (!c.caUrl) return undefined;
  return { caUrl: c.caUrl, caTrustBundleFile: c.caTrustBundleFile, caTrustBundle: c.caTrustBundle, caTokenFile: c.caTokenFile!, certDir: c.certDir!, certTtlSeconds: c.certTtlSeconds, certWaitMs: c.certWaitMs, caRetryMaxMs: c.caRetryMaxMs };
}
