/**
 * A real mesh slice for the health checker's process tests and its bench: a dispatcher, a meta
 * server and a pilot (child processes, `EmbeddedControlPlane`), health-checker replicas (child
 * processes), one octo-proxy (child process) that calls `shop/catalog`, and catalog's instances
 * as in-process node:http apps on real sockets that can be told to stop answering.
 * Every process is started from its built `dist/main.js` and stopped by the pid it was given.
 */
import { createServer, request, type Server } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_API_VERSION, type EndpointHealth } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { EmbeddedControlPlane } from '@octo-mesh/mock-sidecar';
import { freePort, waitFor } from '@octo-mesh/runtime';
import { REPO_ROOT, startProcess, type TestProcess } from '@octo-mesh/testing';

export const SERVICE = 'shop/catalog';
export const HOST = 'catalog.shop.svc';

/** A catalog instance: answers `/health` and everything else; `hang` makes it accept and never answer. */
export class App {
  mode: 'ok' | 'hang' = 'ok';
  /** Arrival times (epoch ms) of non-health requests: the traffic that reached it. */
  readonly arrivals: number[] = [];
  port = 0;
  private readonly server: Server;
  constructor(readonly name: string) {
    this.server = createServer((req, res) => {
      if (req.url !== '/health') this.arrivals.push(Date.now());
      if (this.mode === 'hang') return; // the socket stays open, nothing is answered
      res.end(this.name);
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
  }
  lastArrival(): number {
    return this.arrivals.at(-1) ?? 0;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface StackOptions {
  checkers: number;
  intervalMs: number;
  timeoutMs: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  apps: number;
}

export class HealthStack {
  cp!: EmbeddedControlPlane;
  dispatcher!: DispatcherConnection;
  readonly checkers = new Map<string, { proc: TestProcess; admin: string }>();
  proxy!: TestProcess;
  outboundPort = 0;
  apps: App[] = [];
  private readonly dir = mkdtempSync(join(tmpdir(), 'octo-health-'));

  constructor(readonly opts: StackOptions) {}

  async start(): Promise<void> {
    this.cp = new EmbeddedControlPlane({ root: REPO_ROOT, pilots: 1 });
    await this.cp.start();
    this.dispatcher = new DispatcherConnection(this.cp.dispatcherAddress);
    for (let i = 0; i < this.opts.apps; i++) {
      const app = new App(`catalog-${i}`);
      await app.listen();
      this.apps.push(app);
    }
    await this.dispatcher.apply({ apiVersion: MODEL_API_VERSION, kind: 'Service', metadata: { name: 'catalog', namespace: 'shop' }, spec: { ports: [{ name: 'http', port: 8080, protocol: 'http' }] } } as never);
    await this.dispatcher.apply({
      apiVersion: MODEL_API_VERSION,
      kind: 'ServiceEndpoints',
      metadata: { name: 'catalog', namespace: 'shop' },
      spec: { endpoints: this.apps.map((a) => ({ address: '127.0.0.1', port: a.port, labels: {}, healthy: true, instance: a.name })) },
    } as never);
    await this.dispatcher.apply({
      apiVersion: 'mesh.octo.io/v1alpha1',
      kind: 'RoutePolicy',
      metadata: { name: 'catalog', namespace: 'shop' },
      spec: {
        targetRef: { service: 'catalog' },
        healthCheck: {
          http: { path: '/health' },
          interval: `${this.opts.intervalMs}ms`,
          timeout: `${this.opts.timeoutMs}ms`,
          unhealthyThreshold: this.opts.unhealthyThreshold,
          healthyThreshold: this.opts.healthyThreshold,
        },
      },
    } as never);
    for (let i = 0; i < this.opts.checkers; i++) await this.startChecker(`checker-${String.fromCharCode(97 + i)}`);
    await this.startProxy();
  }

  async startChecker(id: string): Promise<void> {
    const proc = startProcess('packages/health/dist/main.js', [
      '--checker-id', id,
      '--dispatcher-address', this.cp.dispatcherAddress,
      '--meta-server-address', this.cp.metaAddress,
      '--admin-host', '127.0.0.1', '--admin-port', '0',
      '--log-level', 'info',
    ]);
    const line = await proc.line<{ adminPort: number }>('listening');
    const admin = `127.0.0.1:${line.adminPort}`;
    this.checkers.set(id, { proc, admin });
    await waitFor(`${id} ready`, async () => (await fetch(`http://${admin}/readyz`)).status, (s) => s === 200, { timeoutMs: 15_000, intervalMs: 100, retryErrors: true });
  }

  private async startProxy(): Promise<void> {
    this.outboundPort = await freePort();
    const [adminPort, inboundPort] = [await freePort(), await freePort()];
    const file = join(this.dir, 'proxy.yaml');
    writeFileSync(
      file,
      JSON.stringify({
        metaAddress: this.cp.metaAddress,
        nodeId: 'frontend-0.shop',
        workload: 'frontend',
        namespace: 'shop',
        dependencies: [HOST],
        adminHost: '127.0.0.1',
        adminPort,
        outboundHost: '127.0.0.1',
        outboundPort: this.outboundPort,
        inboundHost: '127.0.0.1',
        inboundPort,
        accessLog: 'off',
      }),
    );
    this.proxy = startProcess('packages/proxy/dist/main.js', ['--config', file, '--log-level', 'warn']);
    await waitFor('proxy routes catalog', () => this.call(), (r) => r.startsWith('catalog-'), { timeoutMs: 20_000, intervalMs: 200, retryErrors: true });
  }

  /** One request through the proxy's outbound listener; resolves with the body or the error. */
  call(timeoutMs = 300): Promise<string> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: this.outboundPort, path: '/item', headers: { host: HOST }, agent: false, timeout: timeoutMs }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve(res.statusCode === 200 ? body : `HTTP ${res.statusCode}`));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (err) => resolve(`error ${err.message}`));
      req.end();
    });
  }

  /** Requests through the proxy every `everyMs` until stopped. */
  load(everyMs = 20): { stop: () => Promise<void> } {
    let on = true;
    const loop = (async () => {
      while (on) {
        void this.call();
        await new Promise((r) => setTimeout(r, everyMs));
      }
    })();
    return { stop: async () => ((on = false), await loop) };
  }

  async verdicts(): Promise<EndpointHealth | undefined> {
    return (await this.dispatcher.get('EndpointHealth', SERVICE).catch(() => undefined)) as EndpointHealth | undefined;
  }

  async checksOf(id: string): Promise<{ services: { service: string }[] }> {
    return (await (await fetch(`http://${this.checkers.get(id)!.admin}/debug/checks`)).json()) as { services: { service: string }[] };
  }

  /** The checker replica that checks SERVICE now. */
  async owner(): Promise<string | undefined> {
    for (const id of this.checkers.keys()) {
      if (this.checkers.get(id)!.proc.child.exitCode !== null || this.checkers.get(id)!.proc.child.signalCode) continue;
      const v = await this.checksOf(id).catch(() => undefined);
      if (v?.services.some((s) => s.service === SERVICE)) return id;
    }
    return undefined;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.checkers.values()].map((c) => c.proc.stop(3000)));
    await this.proxy?.stop(3000);
    this.dispatcher?.close();
    await this.cp?.stop();
    await Promise.allSettled(this.apps.map((a) => a.close()));
  }
}
