import { hostname } from 'node:os';
import { meshTlsConfigFields } from '@octo-mesh/contracts/access.js';
import { LOG_LEVELS } from '@octo-mesh/runtime';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const list = z.union([
  z.array(z.string()),
  z.string().transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean),
  ),
]);

/**
 * The proxy's bootstrap configuration: defaults < `--config bootstrap.yaml` < `OCTO_PROXY_*`
 * environment < `--flags`. `staticResources` (file only) carries Envoy resources for running
 * without a control plane; `xdsAddress` names the pilot.
 */
export const ProxyConfigSchema = z.object({
  nodeId: z.string().min(1).default(`sidecar~${hostname()}`),
  cluster: z.string().default(''),
  workload: z.string().default(''),
  namespace: z.string().default('default'),
  version: z.string().default(''),
  instanceId: z.string().default(hostname()),
  /**
   * Services this workload calls; sent as node metadata `dependencies` so Pilot pushes them from
   * the start. Optional: a service not listed is learned on its first request (`learnTimeoutMs`).
   */
  dependencies: list.default([]),
  /** How long a request for a host with no route waits while the proxy asks its pilot for the service; 0 turns learning off. */
  learnTimeoutMs: z.coerce.number().int().min(0).max(60_000).default(1000),
  /** A service learned on demand and not requested for this long is unsubscribed. */
  learnTtlMs: z.coerce.number().int().min(1).default(600_000),
  adminHost: z.string().default('127.0.0.1'),
  adminPort: port.default(15000),
  outboundHost: z.string().default('127.0.0.1'),
  outboundPort: port.default(15001),
  /** Unix socket path for the outbound listener (OCTO's app → sidecar path), e.g. /var/run/octo/outbound.sock. */
  outboundSocket: z.string().optional(),
  inboundHost: z.string().default('0.0.0.0'),
  inboundPort: port.default(15006),
  /** `bind`: the proxy binds; `fd`: inherited descriptors `outboundFd`/`inboundFd`; `parent`: handles over IPC from the LEGO agent. */
  socketsFrom: z.enum(['bind', 'fd', 'parent']).default('bind'),
  outboundFd: z.coerce.number().int().min(0).optional(),
  inboundFd: z.coerce.number().int().min(0).optional(),
  xdsAddress: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port')
    .optional(),
  /** The meta server (`host:port`): asked which pilot serves this sidecar; wins over `xdsAddress`. */
  metaAddress: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port')
    .optional(),
  /** The application's port on 127.0.0.1, sent as metadata `app_port` so Pilot builds the inbound listener. */
  appPort: port.optional(),
  /**
   * Instead of `appPort`: the absolute path of the Unix socket the application listens on, sent as
   * metadata `app_socket`; Pilot's inbound cluster then has a `pipe` endpoint with that path.
   */
  appSocket: z
    .string()
    .startsWith('/', 'must be an absolute path')
    .refine((p) => Buffer.byteLength(p) <= 107, 'must be at most 107 bytes (a Unix socket path\'s limit)')
    .optional(),
  /** Locality sent in the node (for locality-aware endpoint priorities). */
  region: z.string().default(''),
  zone: z.string().default(''),
  /** Workload labels, `k=v,k2=v2` or a map; sent as metadata `labels` (ProxyVersion rollout selectors). */
  labels: z
    .union([
      z.record(z.string(), z.string()),
      z.string().transform((s, ctx) => {
        const out: Record<string, string> = {};
        for (const pair of s.split(',').map((x) => x.trim()).filter(Boolean)) {
          const eq = pair.indexOf('=');
          if (eq <= 0) {
            ctx.addIssue({ code: 'custom', message: `"${pair}" is not key=value` });
            return z.NEVER;
          }
          out[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        return out;
      }),
    ])
    .default({}),
  xdsMode: z.enum(['sotw', 'delta']).default('sotw'),
  drainTimeoutMs: z.coerce.number().int().min(0).default(5000),
  /** Open downstream connections per listener (`outbound` counts its TCP and Unix sockets together); the next is closed at accept. 0: no limit. */
  listenerConnectionLimit: z.coerce.number().int().min(0).default(10_000),
  /** Overload pressure (heap in use / heap limit, or open fds / RLIMIT_NOFILE, the larger) from which new connections are closed at accept. */
  overloadStopAccepting: z.coerce.number().min(0).max(1).default(0.9),
  /** … from which responses carry `connection: close`. */
  overloadDisableKeepAlive: z.coerce.number().min(0).max(1).default(0.95),
  /** … from which requests are answered 503 (`x-octo-reason: overloaded`). */
  overloadReject: z.coerce.number().min(0).max(1).default(0.98),
  /**
   * Under the LEGO agent (`socketsFrom: parent`): round trips through the HTTP/1.1 self-test's
   * private path before accepting on the agent's sockets, so a swap's first requests do not meet
   * uncompiled code (data/self-test.ts). Stops at `warmUpRequests` or `warmUpBudgetMs`, whichever
   * comes first; 0 turns it off. Not run on other starts.
   */
  warmUpRequests: z.coerce.number().int().min(0).max(10_000).default(400),
  warmUpBudgetMs: z.coerce.number().int().min(0).max(5_000).default(300),
  /** The share of the time the warm-up keeps the new proxy busy (1: flat out); below 1 it pauses between rounds, leaving the serving proxy room on shared CPUs. */
  warmUpDutyCycle: z.coerce.number().min(0.05).max(1).default(1),
  /**
   * Selective peer-to-peer health checks (data/p2p-check.ts): at most this many probes in flight
   * (0: off — the central verdict and outlier detection alone), and the number of the service's
   * check intervals after which a central verdict is stale and the sidecar's own evidence ages out.
   */
  p2pMaxConcurrentProbes: z.coerce.number().int().min(0).max(256).default(4),
  p2pStaleIntervals: z.coerce.number().int().min(1).max(1000).default(3),
  /** `stdout`, `off`, or a file path. */
  accessLog: z.string().default('stdout'),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  /**
   * `idle`: V8's helper threads (compiler jobs, parallel GC) at SCHED_IDLE so they never preempt
   * the event loop; `normal`: left as they are; `auto`: `idle` only where the proxy's CPU group
   * holds nothing but the sidecar's own processes (a pod's container), else `normal` — a SCHED_IDLE
   * helper beside a busy program stalls garbage collection for seconds (see helper-threads.ts).
   */
  v8Helpers: z.enum(['auto', 'idle', 'normal']).default('auto'),
  /**
   * One memory-reducing full GC once the proxy is ready and its event loop has been idle (< 2 %
   * busy) this long, then again only after the heap grew 8 MB past what it left, at most once a
   * minute (idle-gc.ts): returns what a config load, the warm-up or a burst grew. 0: off.
   */
  idleGcMs: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  /**
   * The same memory-reducing GC once before the first accept, after the initial config and the
   * warm-up, so its pause is paid in the swap, not by a request; the idle one then runs only once
   * the heap grew 8 MB past what it left. `after-warm-up`: only when the LEGO warm-up ran (a proxy
   * swapped in beside a serving one, whose old proxy serves during the pause); `always`: on a first
   * start too (+40–100 ms to ready, the same memory as the idle GC gets; docs/footprint.md round 6).
   */
  gcBeforeAccept: z.enum(['after-warm-up', 'always', 'off']).default('after-warm-up'),
  staticResources: z
    .object({
      listeners: z.array(z.unknown()).optional(),
      clusters: z.array(z.unknown()).optional(),
      routes: z.array(z.unknown()).optional(),
      endpoints: z.array(z.unknown()).optional(),
    })
    .strict()
    .optional(),
  /**
   * The sidecar's certificate directory, kept current by the LEGO agent's rotator (cert-chain.pem,
   * key.pem, root-cert.pem and the SDS files default.json, ROOTCA.json): mTLS to the meta server
   * and pilot, and sent to Pilot as node metadata `octo.io/sds-dir` so the data plane's TLS is
   * configured from those files (packages/identity/README.md).
   */
  ...meshTlsConfigFields,
});

export type ProxyConfig = z.infer<typeof ProxyConfigSchema>;
