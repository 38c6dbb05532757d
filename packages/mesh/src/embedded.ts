import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { EmbeddedState } from '@octo-mesh/contracts';
import { PackageRepository } from '@octo-mesh/proxy-package';
import { createMetricsRegistry, startAdminServer, type AdminServer, type Logger, freePort, isFree } from '@octo-mesh/runtime';
import { CONTROL_NAMESPACE, TRUST_DOMAIN, startMeshSecurity, type EmbeddedRole, type MeshSecurity } from './security.js';
import { Supervisor, type RunningChild } from './supervisor.js';
import { DEMO_NAMESPACE, SERVICE_PORT, agentConfig, planEmbedded, portsOf, type EmbeddedPlan } from './topology.js';
import { LoadGenerator, TrafficStats } from './traffic.js';

export interface EmbeddedOptions {
  /** The repository root (where packages/<pkg>/dist live). */
  root: string;
  /** The watched directory of manifests (RoutePolicies, ProxyVersions). */
  manifests: string;
  /** State file, logs and sidecar bootstraps go here; cleared at start. */
  stateDir: string;
  /** Well-known control-plane ports (npm start) or all allocated (tests). */
  fixedPorts: boolean;
  pilots: number;
  /** Requests per second of the load generator (0: none). */
  rps: number;
  logger: Logger;
  /** Child processes' log level. */
  logLevel?: string;
  /**
   * Workload identity and mTLS (default on): the mesh CA, certificates for every component and
   * sidecar, mTLS on every control-plane connection (packages/identity/README.md).
   */
  security?: boolean;
}

/**
 * The embedded mesh: the control plane and a demo system as child processes on one machine,
 * plus a load generator. Startup order follows the dependencies: dispatcher (watching the
 * manifests) → meta server (publishing registry instances to the dispatcher) → pilots (reading
 * the dispatcher, registered with the meta server) → sidecars (locating their pilot through the
 * meta server) → demo apps (registering themselves) → load. Every sidecar is a LEGO agent
 * running the proxy, the proxy package repository runs in this process, and the operator rolls
 * ProxyVersions out across the demo fleet (`octoctl package push`, `octoctl apply`).
 */
export class EmbeddedMesh {
  plan!: EmbeddedPlan;
  state!: EmbeddedState;
  readonly stats = new TrafficStats();
  /** nodeId → the pilot it is connected to, as the meta server last reported (pilots' heartbeats). */
  readonly pilotOf = new Map<string, string>();
  /** nodeId → what its LEGO agent last said (running version, phase, target). */
  readonly agents = new Map<string, { runningVersion: string; phase: string; target: string | null }>();
  private watchPilots: NodeJS.Timeout | undefined;
  private supervisor!: Supervisor;
  private load: LoadGenerator | undefined;
  private admin: AdminServer | undefined;
  private repository: PackageRepository | undefined;
  private security: MeshSecurity | undefined;
  private stopping = false;
  /** Child exits that were not asked for (a killed pilot), newest last. */
  readonly exits: { name: string; code: number | null; signal: string | null; at: string }[] = [];

  constructor(private readonly opts: EmbeddedOptions) {}

  private dist(pkg: string, file = 'main.js'): string {
    return join(this.opts.root, 'packages', pkg, 'dist', file);
  }

  async start(): Promise<void> {
    const { opts } = this;
    const log = opts.logger;
    rmSync(opts.stateDir, { recursive: true, force: true });
    mkdirSync(join(opts.stateDir, 'sidecars'), { recursive: true });
    // The Unix sockets of the demo's socket instances (app and sidecar outbound), absolute: the
    // proxies and apps are told their paths, and Pilot puts the app's in a pipe address.
    const socketDir = resolve(opts.stateDir, 'sockets');
    mkdirSync(socketDir, { recursive: true });
    this.plan = await planEmbedded({ pilots: opts.pilots, fixed: opts.fixedPorts, alloc: freePort, socketDir });
    if (opts.fixedPorts) {
      const busy = [];
      for (const p of portsOf(this.plan)) if (!(await isFree(p.port))) busy.push(`${p.port} (${p.use})`);
      if (busy.length) throw new Error(`ports in use: ${busy.join(', ')} — is another embedded mesh running? Stop it, or start with --ports auto`);
    }
    this.supervisor = new Supervisor(join(opts.stateDir, 'logs'), { onExit: (c) => this.onExit(c), onRestart: (c) => this.onRestart(c) });
    const level = ['--log-level', opts.logLevel ?? 'info'];
    const plan = this.plan;
    const addr = (port: number) => `127.0.0.1:${port}`;
    const agentDir = (instanceId: string) => join(opts.stateDir, 'agents', instanceId);
    if (opts.security !== false) {
      log.info('starting the mesh CA', { url: `https://${addr(plan.ca.port)}` });
      this.security = await startMeshSecurity({
        stateDir: opts.stateDir,
        supervisor: this.supervisor,
        caScript: this.dist('ca'),
        caPort: plan.ca.port,
        caAdminPort: plan.ca.adminPort,
        workloads: Object.fromEntries(plan.sidecars.map((s) => [s.instanceId, { namespace: DEMO_NAMESPACE, serviceAccount: s.service }])),
        logLevel: opts.logLevel ?? 'info',
        logger: log.child({ component: 'identity' }),
      });
    }
    const sec = this.security;
    const tls = (role: EmbeddedRole) => (sec ? ['--tls-dir', sec.tlsDir(role)] : []);

    log.info('starting dispatcher', { grpc: addr(plan.dispatcher.grpcPort), manifests: opts.manifests });
    await this.supervisor.start({
      name: 'dispatcher',
      script: this.dist('dispatcher'),
      // The store persisted (journaled, fsynced): a restarted dispatcher has everything octoctl
      // applied and the registry published.
      args: ['--grpc-port', `${plan.dispatcher.grpcPort}`, '--admin-port', `${plan.dispatcher.adminPort}`, '--watch-dir', opts.manifests, '--data-dir', join(opts.stateDir, 'dispatcher'), ...tls('dispatcher'), ...level],
      readyUrl: `http://${addr(plan.dispatcher.adminPort)}/readyz`,
    });
    log.info('starting meta server', { grpc: addr(plan.meta.grpcPort) });
    await this.supervisor.start({
      name: 'meta-server',
      script: this.dist('meta-server'),
      args: ['--grpc-port', `${plan.meta.grpcPort}`, '--admin-port', `${plan.meta.adminPort}`, '--dispatcher-address', addr(plan.dispatcher.grpcPort), ...tls('meta-server'), ...level],
      readyUrl: `http://${addr(plan.meta.adminPort)}/healthz`,
    });
    // The package repository agents download proxy packages from (in this process).
    this.repository = new PackageRepository({ dir: join(opts.stateDir, 'repository'), host: '127.0.0.1', port: plan.repositoryPort, logger: log.child({ component: 'package-repository' }) });
    await this.repository.start();
    log.info('package repository serving', { url: this.repository.url });
    const pilots = await Promise.all(
      plan.pilots.map((p) => {
        log.info('starting pilot', { id: p.id, xds: addr(p.xdsPort) });
        return this.supervisor.start({
          name: p.id,
          script: this.dist('pilot'),
          args: [
            '--pilot-id', p.id,
            '--xds-host', '127.0.0.1', '--xds-port', `${p.xdsPort}`,
            '--admin-host', '127.0.0.1', '--admin-port', `${p.adminPort}`,
            '--dispatcher-address', addr(plan.dispatcher.grpcPort),
            '--meta-server-address', addr(plan.meta.grpcPort),
            '--shutdown-grace-seconds', '1',
            // Sidecars hold certificates from their agents: ADS is mTLS too.
            ...tls('pilot'), ...(sec ? ['--xds-mtls', 'true'] : []),
            ...level,
          ],
          readyUrl: `http://${addr(p.adminPort)}/readyz`,
        });
      }),
    );
    // Two health-checker replicas: they share the checked services on the meta server's ring,
    // and one takes the other's over when it dies (kill one and watch /debug/checks).
    for (const id of ['checker-a', 'checker-b']) {
      const adminPort = await freePort();
      log.info('starting health checker', { id, admin: addr(adminPort) });
      await this.supervisor.start({
        name: id,
        script: this.dist('health'),
        args: [
          '--checker-id', id,
          '--dispatcher-address', addr(plan.dispatcher.grpcPort),
          '--meta-server-address', addr(plan.meta.grpcPort),
          '--admin-host', '127.0.0.1', '--admin-port', `${adminPort}`,
          ...tls('health'),
          ...level,
        ],
        readyUrl: `http://${addr(adminPort)}/readyz`,
      });
    }
    log.info('starting operator', { admin: addr(plan.operatorAdminPort) });
    const operator = await this.supervisor.start({
      name: 'operator',
      script: this.dist('operator'),
      args: ['--dispatcher-address', addr(plan.dispatcher.grpcPort), '--meta-server-url', `http://${addr(plan.meta.adminPort)}`, '--admin-port', `${plan.operatorAdminPort}`, '--identity', 'operator', ...tls('operator'), ...level],
      readyUrl: `http://${addr(plan.operatorAdminPort)}/readyz`,
    });
    // Sidecars, then apps, each group started side by side. Each sidecar is a LEGO agent that owns
    // the listeners and runs the proxy as its child; the proxy asks the meta server which pilot
    // serves it before every xDS connection.
    const sidecars = await Promise.all(
      plan.sidecars.map(async (s) => {
        const config = join(opts.stateDir, 'sidecars', `${s.nodeId}.yaml`);
        const ca = sec && { caUrl: sec.caUrl, caTrustBundleFile: sec.trustBundleFile, caTokenFile: sec.tokenFile(s.instanceId) };
        writeFileSync(config, stringify(agentConfig(s, addr(plan.meta.grpcPort), agentDir(s.instanceId), ca)));
        log.info('starting sidecar', { nodeId: s.nodeId });
        return this.supervisor.start({
          name: `sidecar-${s.instanceId}`,
          script: this.dist('lego-agent'),
          args: ['--config', config, '--log-level', 'warn'],
          readyUrl: `http://${addr(s.adminPort)}/readyz`,
        });
      }),
    );
    await Promise.all(
      plan.sidecars.map((s) =>
        this.supervisor.start({
          name: `app-${s.instanceId}`,
          script: this.dist('mesh', 'demo-app.js'),
          args: [
            '--service', s.service, '--version', s.version, '--namespace', DEMO_NAMESPACE, '--instance-id', s.instanceId,
            ...(s.appSocket ? ['--socket', s.appSocket] : ['--port', `${s.appPort}`]),
            '--calls', s.calls.join(','),
            ...(s.outboundSocket ? ['--outbound-socket', s.outboundSocket] : ['--outbound', addr(s.outboundPort)]),
            '--meta-address', addr(plan.meta.grpcPort), '--endpoint-port', `${s.inboundPort}`, '--service-port', `${SERVICE_PORT}`,
            // Registered as the workload, with its sidecar's certificate (the agent's default certDir).
            ...(sec ? ['--tls-dir', join(agentDir(s.instanceId), 'certs')] : []),
          ],
          ...(s.appSocket ? { readyUrl: 'http://localhost/healthz', readySocket: s.appSocket } : { readyUrl: `http://${addr(s.appPort!)}/healthz` }),
        }),
      ),
    );

    this.watchPilots = setInterval(() => void this.refreshPilots(), 500);
    await this.refreshPilots();

    const registry = createMetricsRegistry('embedded-runner');
    this.admin = await startAdminServer({
      port: plan.runnerAdminPort,
      registry,
      routes: {
        '/traffic': () => this.traffic(),
        '/state': () => this.state,
        '/processes': () => this.supervisor.running.map((c) => ({ name: c.spec.name, pid: c.pid, restarts: c.restarts, ...(c.exit ? { exit: c.exit } : {}) })),
      },
    });
    this.state = {
      startedAt: new Date().toISOString(),
      pid: process.pid,
      dispatcher: { grpc: addr(plan.dispatcher.grpcPort), admin: addr(plan.dispatcher.adminPort) },
      meta: { grpc: addr(plan.meta.grpcPort), admin: addr(plan.meta.adminPort) },
      pilots: plan.pilots.map((p, i) => ({ id: p.id, xds: addr(p.xdsPort), admin: addr(p.adminPort), pid: pilots[i]!.pid })),
      sidecars: plan.sidecars.map((s, i) => ({
        nodeId: s.nodeId,
        namespace: DEMO_NAMESPACE,
        workload: s.service,
        version: s.version,
        app: s.instanceId,
        admin: addr(s.adminPort),
        inbound: addr(s.inboundPort),
        outbound: addr(s.outboundPort),
        pid: sidecars[i]!.pid,
      })),
      runner: { admin: addr(this.admin.port) },
      manifests: opts.manifests,
      repository: { url: this.repository.url },
      operator: { admin: addr(plan.operatorAdminPort), pid: operator.pid },
      ...(sec ? { security: { caUrl: sec.caUrl, adminTlsDir: sec.tlsDir('admin'), trustDomain: TRUST_DOMAIN, controlNamespace: CONTROL_NAMESPACE } } : {}),
    };
    writeFileSync(join(opts.stateDir, 'state.json'), JSON.stringify(this.state, null, 2));

    if (opts.rps > 0) {
      const frontend = plan.sidecars.find((s) => s.calls.length > 0) ?? plan.sidecars[0]!;
      this.load = new LoadGenerator({ target: addr(frontend.inboundPort), host: `${frontend.service}.${DEMO_NAMESPACE}.svc:${SERVICE_PORT}`, rps: opts.rps, stats: this.stats });
      await this.waitForTraffic(frontend.inboundPort);
      this.load.start();
    }
  }

  /** Waits until a request through the whole demo succeeds, so startup is not counted as failures. */
  private async waitForTraffic(port: number, timeoutMs = 60_000): Promise<void> {
    const probe = new TrafficStats();
    const frontend = this.plan.sidecars.find((s) => s.calls.length > 0) ?? this.plan.sidecars[0]!;
    const gen = new LoadGenerator({ target: `127.0.0.1:${port}`, host: `${frontend.service}.${DEMO_NAMESPACE}.svc:${SERVICE_PORT}`, rps: 1, stats: probe });
    const deadline = Date.now() + timeoutMs;
    let streak = 0;
    while (streak < 5) {
      const before = probe.failures;
      await gen.one();
      streak = probe.failures === before ? streak + 1 : 0;
      if (Date.now() > deadline) throw new Error(`the demo did not answer through the mesh within ${timeoutMs} ms; last failure: ${[...probe.failureReasons.keys()].pop() ?? '-'}`);
      if (streak === 0) await new Promise((r) => setTimeout(r, 250));
    }
    this.opts.logger.info('demo answers through the mesh', { probes: probe.requests, failedWhileStarting: probe.failures });
  }

  /** Which pilot each sidecar is connected to, and what each agent runs. */
  private async refreshPilots(): Promise<void> {
    await Promise.all(
      this.plan.sidecars.map(async (s) => {
        try {
          const st = (await (await fetch(`http://127.0.0.1:${s.adminPort}/status`, { signal: AbortSignal.timeout(1000) })).json()) as { runningVersion: string; phase: string; target: { version: string } | null };
          this.agents.set(s.nodeId, { runningVersion: st.runningVersion, phase: st.phase, target: st.target?.version ?? null });
        } catch {
          this.agents.delete(s.nodeId); // restarting: shown as unknown until it answers
        }
      }),
    );
    try {
      const res = await fetch(`http://127.0.0.1:${this.plan.meta.adminPort}/debug/sidecars`, { signal: AbortSignal.timeout(1000) });
      const rows = (await res.json()) as { nodeId: string; connectedTo?: string }[];
      this.pilotOf.clear();
      for (const r of rows) if (r.connectedTo) this.pilotOf.set(r.nodeId, r.connectedTo);
    } catch {
      // meta server busy or gone: keep the last view
    }
  }

  private onExit(c: RunningChild): void {
    if (this.stopping) return;
    this.exits.push({ name: c.spec.name, code: c.exit?.code ?? null, signal: c.exit?.signal ?? null, at: new Date().toISOString() });
    this.opts.logger.warn('process exited', { name: c.spec.name, pid: c.pid, code: c.exit?.code, signal: c.exit?.signal });
  }

  /** A child the supervisor started again: the state file names its new pid. */
  private onRestart(c: RunningChild): void {
    this.opts.logger.info('process restarted', { name: c.spec.name, pid: c.pid, restarts: c.restarts });
    if (!this.state) return;
    for (const p of this.state.pilots) if (p.id === c.spec.name) p.pid = c.pid;
    if (c.spec.name === 'operator' && this.state.operator) this.state.operator.pid = c.pid;
    for (const s of this.state.sidecars) if (`sidecar-${s.app}` === c.spec.name) s.pid = c.pid;
    writeFileSync(join(this.opts.stateDir, 'state.json'), JSON.stringify(this.state, null, 2));
  }

  /** Request counts, rates and failures (the runner's /traffic). */
  traffic() {
    const now = Date.now();
    return {
      requests: this.stats.requests,
      failures: this.stats.failures,
      failureReasons: Object.fromEntries(this.stats.failureReasons),
      totals: Object.fromEntries(this.stats.totals),
      rates: Object.fromEntries(this.stats.rates(now)),
      pilots: Object.fromEntries(this.pilotOf),
      agents: Object.fromEntries(this.agents),
      exits: this.exits,
    };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.watchPilots);
    await this.load?.stop();
    // Rotators first: nothing renews against a CA that is being stopped.
    await this.security?.stop();
    await this.supervisor?.stopAll();
    await this.repository?.stop();
    await this.admin?.close();
  }
}
