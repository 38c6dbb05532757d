/**
 * What the embedded mesh runs, as data: the demo system, and every process with its ports and
 * command line. Pure (ports come from an allocator), so the plan is table-tested and the runner
 * only executes it.
 */

/** One demo instance: a service at a version, and the services it calls. */
export interface DemoInstance {
  service: string;
  version: string;
  calls: string[];
  /**
   * OCTO's app ↔ sidecar path: the app listens on a Unix socket (its sidecar declares
   * `appSocket`, so Pilot's inbound cluster has a pipe endpoint) and calls out through its
   * sidecar's outbound Unix socket. Otherwise both are TCP on 127.0.0.1.
   */
  unix?: boolean;
}

/**
 * frontend → catalog (v1 and v2) and ratings: enough to show a split and a shared dependency.
 * frontend and ratings talk to their sidecars over Unix sockets (OCTO's default), catalog over
 * loopback TCP (as Istio's apps do), so the demo runs both paths side by side.
 */
export const DEMO_SYSTEM: readonly DemoInstance[] = [
  { service: 'frontend', version: 'v1', calls: ['catalog', 'ratings'], unix: true },
  { service: 'catalog', version: 'v1', calls: [] },
  { service: 'catalog', version: 'v2', calls: [] },
  { service: 'ratings', version: 'v1', calls: [], unix: true },
];

/**
 * Linux's sockaddr_un holds 108 bytes with the terminating NUL (unix(7)); the proxy and Pilot
 * refuse a longer path, so the plan does first, naming it.
 */
export const MAX_SOCKET_PATH = 107;

export const DEMO_NAMESPACE = 'demo';
/** The port every demo service is called on (the `Service` port in the registry). */
export const SERVICE_PORT = 8080;

export interface PilotPlan {
  id: string;
  xdsPort: number;
  adminPort: number;
}

export interface SidecarPlan {
  /** The xDS node id: `<service>-<version>-<n>.<namespace>`. */
  nodeId: string;
  instanceId: string;
  service: string;
  version: string;
  calls: string[];
  /** The app's port on 127.0.0.1 — or, for a Unix-socket instance, `appSocket` instead. */
  appPort?: number;
  /** The Unix socket the app listens on (absolute path); its sidecar's inbound cluster is a pipe to it. */
  appSocket?: string;
  /** The sidecar's outbound Unix socket the app calls out through (bound by its LEGO agent). */
  outboundSocket?: string;
  adminPort: number;
  inboundPort: number;
  outboundPort: number;
}

export interface EmbeddedPlan {
  dispatcher: { grpcPort: number; adminPort: number };
  meta: { grpcPort: number; adminPort: number };
  pilots: PilotPlan[];
  sidecars: SidecarPlan[];
  runnerAdminPort: number;
  /** The proxy package repository agents download from (`octoctl package push` uploads there). */
  repositoryPort: number;
  /** The operator's HTTP port (/healthz, /readyz, /metrics). */
  operatorAdminPort: number;
  /** The mesh CA: its HTTPS API and its admin port. */
  ca: { port: number; adminPort: number };
}

/** Well-known ports for `npm start` (octoctl's defaults); everything per instance is allocated. */
export const FIXED_PORTS = {
  dispatcherGrpc: 15012,
  dispatcherAdmin: 15014,
  metaGrpc: 15011,
  metaAdmin: 15015,
  pilotXds: [15010, 15020, 15030],
  // Not 15017/15018: the operator's webhook and package repository (DESIGN ports).
  pilotAdmin: [15016, 15026, 15036],
  runnerAdmin: 15090,
  repository: 15018,
  operatorAdmin: 15019,
  // 15016 is pilot-a's admin here; the CA's DESIGN-style port would collide.
  caHttps: 15040,
  caAdmin: 15041,
} as const;

/**
 * Plans the processes. `fixed` uses {@link FIXED_PORTS} for the control plane (so octoctl and
 * people find it); otherwise every port comes from `alloc` (tests run side by side).
 */
export async function planEmbedded(opts: {
  pilots: number;
  fixed: boolean;
  alloc: () => Promise<number>;
  system?: readonly DemoInstance[];
  /** Absolute directory for the Unix sockets of `unix` instances (`<instance>.app.sock`, `<instance>.out.sock`). */
  socketDir?: string;
}): Promise<EmbeddedPlan> {
  const { fixed } = opts;
  // A free port is free only until someone binds it: nothing is bound while planning, so an
  // allocator (the OS's ephemeral ports) may hand the same port out twice. Never within one plan.
  const used = new Set<number>();
  const alloc = async (): Promise<number> => {
    for (let tries = 0; tries < 1000; tries++) {
      const p = await opts.alloc();
      if (!used.has(p)) {
        used.add(p);
        return p;
      }
    }
    throw new Error('planEmbedded: the port allocator keeps returning ports this plan already uses');
  };
  const pick = async (p: number | undefined) => {
    if (!(fixed && p !== undefined)) return alloc();
    used.add(p);
    return p;
  };
  const pilots: PilotPlan[] = [];
  for (let i = 0; i < opts.pilots; i++)
    pilots.push({ id: `pilot-${String.fromCharCode(97 + i)}`, xdsPort: await pick(FIXED_PORTS.pilotXds[i]), adminPort: await pick(FIXED_PORTS.pilotAdmin[i]) });
  const counts = new Map<string, number>();
  const sidecars: SidecarPlan[] = [];
  for (const d of opts.system ?? DEMO_SYSTEM) {
    const n = counts.get(`${d.service}-${d.version}`) ?? 0;
    counts.set(`${d.service}-${d.version}`, n + 1);
    const instanceId = `${d.service}-${d.version}-${n}`;
    sidecars.push({
      nodeId: `${instanceId}.${DEMO_NAMESPACE}`,
      instanceId,
      service: d.service,
      version: d.version,
      calls: d.calls,
      ...(d.unix ? { appSocket: socketPath(opts.socketDir, instanceId, 'app'), outboundSocket: socketPath(opts.socketDir, instanceId, 'out') } : { appPort: await alloc() }),
      adminPort: await alloc(),
      inboundPort: await alloc(),
      outboundPort: await alloc(),
    });
  }
  return {
    dispatcher: { grpcPort: await pick(FIXED_PORTS.dispatcherGrpc), adminPort: await pick(FIXED_PORTS.dispatcherAdmin) },
    meta: { grpcPort: await pick(FIXED_PORTS.metaGrpc), adminPort: await pick(FIXED_PORTS.metaAdmin) },
    pilots,
    sidecars,
    runnerAdminPort: await pick(FIXED_PORTS.runnerAdmin),
    repositoryPort: await pick(FIXED_PORTS.repository),
    operatorAdminPort: await pick(FIXED_PORTS.operatorAdmin),
    ca: { port: await pick(FIXED_PORTS.caHttps), adminPort: await pick(FIXED_PORTS.caAdmin) },
  };
}

function socketPath(dir: string | undefined, instanceId: string, kind: 'app' | 'out'): string {
  if (!dir?.startsWith('/')) throw new Error(`planEmbedded: socketDir must be an absolute directory for ${instanceId}'s Unix sockets, got ${JSON.stringify(dir)}`);
  const path = `${dir.replace(/\/+$/, '')}/${instanceId}.${kind}.sock`;
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) throw new Error(`planEmbedded: ${instanceId}'s Unix socket ${path} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter state directory`);
  return path;
}

/** Every port of a plan with what uses it, to report a busy one by name. */
export function portsOf(plan: EmbeddedPlan): { port: number; use: string }[] {
  return [
    { port: plan.dispatcher.grpcPort, use: 'dispatcher gRPC' },
    { port: plan.dispatcher.adminPort, use: 'dispatcher admin' },
    { port: plan.meta.grpcPort, use: 'meta server gRPC' },
    { port: plan.meta.adminPort, use: 'meta server admin' },
    ...plan.pilots.flatMap((p) => [
      { port: p.xdsPort, use: `${p.id} xDS` },
      { port: p.adminPort, use: `${p.id} admin` },
    ]),
    { port: plan.runnerAdminPort, use: 'runner admin' },
    { port: plan.repositoryPort, use: 'package repository' },
    { port: plan.operatorAdminPort, use: 'operator admin' },
    { port: plan.ca.port, use: 'mesh CA' },
    { port: plan.ca.adminPort, use: 'mesh CA admin' },
  ];
}

/**
 * The sidecar's bootstrap: its identity, the meta server that names its pilot, listeners, and a
 * static inbound path (inbound listener → the local app), since inbound routing to the co-located
 * app needs nothing from the control plane. Outbound configuration comes from its pilot over ADS.
 */
export function sidecarBootstrap(s: SidecarPlan, metaAddress: string): Record<string, unknown> {
  return {
    metaAddress,
    nodeId: s.nodeId,
    cluster: s.service,
    workload: s.service,
    namespace: DEMO_NAMESPACE,
    version: s.version,
    instanceId: s.instanceId,
    dependencies: s.calls.map((c) => `${c}.${DEMO_NAMESPACE}.svc`),
    // The inbound listener comes from Pilot, as in Kubernetes: it forwards to the app's port (or
    // its Unix socket, a pipe address) and carries what governs the callee side
    // (AuthorizationPolicy RBAC, mTLS with the sidecar's certificate).
    ...(s.appSocket ? { appSocket: s.appSocket } : { appPort: s.appPort }),
    adminHost: '127.0.0.1',
    adminPort: s.adminPort,
    outboundHost: '127.0.0.1',
    outboundPort: s.outboundPort,
    ...(s.outboundSocket ? { outboundSocket: s.outboundSocket } : {}),
    inboundHost: '127.0.0.1',
    inboundPort: s.inboundPort,
    accessLog: 'off',
    drainTimeoutMs: 2000,
  };
}

/** What the LEGO agent owns of a sidecar; the rest of its bootstrap is the proxy's. */
const AGENT_OWNED = ['adminHost', 'adminPort', 'outboundHost', 'outboundPort', 'outboundSocket', 'inboundHost', 'inboundPort'] as const;

/**
 * The LEGO agent's configuration for a sidecar: it binds the sidecar's listeners and serves the
 * sidecar's admin port (fronting the proxy child's), and passes the rest of the bootstrap to every
 * proxy it runs. Its packages and state live in `stateDir`.
 */
/** How a sidecar's agent reaches the mesh CA (embedded mode: a bootstrap token per instance). */
export interface AgentCa {
  caUrl: string;
  caTrustBundleFile: string;
  caTokenFile: string;
}

export function agentConfig(s: SidecarPlan, metaAddress: string, stateDir: string, ca?: AgentCa): Record<string, unknown> {
  const bootstrap = sidecarBootstrap(s, metaAddress);
  const proxy = Object.fromEntries(Object.entries(bootstrap).filter(([k]) => !(AGENT_OWNED as readonly string[]).includes(k)));
  const owned = Object.fromEntries(AGENT_OWNED.flatMap((k) => (bootstrap[k] === undefined ? [] : [[k, bootstrap[k]]])));
  return {
    instanceId: s.instanceId,
    ...owned,
    stateDir,
    // The demo's swaps should be quick to watch: a new proxy serves beside the old one for 2 s.
    minReadySeconds: 2,
    readyTimeoutMs: 15_000,
    drainTimeoutMs: 3000,
    proxy,
    // The workload's certificate: obtained and rotated by the agent, handed to the proxy (mTLS to
    // the control plane, SDS files for the data plane's TLS).
    ...(ca ? { ...ca, proxyTlsDir: true } : {}),
  };
}
