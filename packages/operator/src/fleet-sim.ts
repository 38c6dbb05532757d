/**
 * A simulated fleet for tests and benchmarks (a test peer, like mock-sidecar): N pilots on
 * loopback answering `GET /debug/rollouts` and `GET /debug/routepolicyz` per the contract
 * contract, and a meta server answering `GET /debug/pilots`. Its instances follow their targets
 * the way agents do — the target comes from the injected target function (pilot's `targetFor`, the
 * real rule), the swap takes `swapMs`, an instance is ready `readyMs` later, and a release listed
 * in `badVersions` never becomes ready: the agent reports it bad and goes back to what it ran.
 * Nothing here decides anything the operator decides.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyVersion } from '@octo-mesh/api';
import type { PilotRollouts, RolloutAggregate } from './aggregate.js';

export interface SimInstance {
  instanceId: string;
  pilot: string;
  running: string;
  /** When `running` became ready (ms), undefined while it is not. */
  readyAt: number | undefined;
  /** A swap in progress: to this version, done at `at`. */
  swapping?: { version: string; rollout: string; at: number } | undefined;
  /** Versions the agent reported bad (it will not try them again). */
  bad: Map<string, string>;
}

/** Which release an instance should run: pilot's `targetFor` in tests; `rollout` is namespace/name. */
export type SimTargetFunction = (instanceId: string, proxyVersions: readonly ProxyVersion[]) => { version: string; rollout: string } | undefined;

export interface FleetSimOptions {
  pilots: number;
  instances: number;
  /** The version every instance runs at the start. */
  initialVersion: string;
  targetOf: SimTargetFunction;
  swapMs?: number;
  readyMs?: number;
  badVersions?: readonly string[];
  /** Report the `batch` field (the proposed contract addition). Default true. */
  reportBatch?: boolean;
  now?: () => number;
}

export class FleetSim {
  readonly instances: SimInstance[];
  private proxyVersions: ProxyVersion[] = [];
  private servers: Server[] = [];
  private pilotIds: string[];
  private pilotPorts = new Map<string, number>();
  /** Pilots that do not answer (simulates a pilot that hangs or died without the meta server noticing). */
  readonly silent = new Set<string>();
  /** What each pilot answers on `/debug/authorizationpolicyz` (PilotAuthorizationPolicyView[]); default none. */
  readonly authorizationViews = new Map<string, unknown[]>();
  metaUrl = '';
  private readonly now: () => number;

  constructor(private readonly opts: FleetSimOptions) {
    this.now = opts.now ?? Date.now;
    this.pilotIds = Array.from({ length: opts.pilots }, (_, i) => `pilot-${i}`);
    this.instances = Array.from({ length: opts.instances }, (_, i) => ({
      instanceId: `sidecar-${i}`,
      pilot: this.pilotIds[i % opts.pilots]!,
      running: opts.initialVersion,
      readyAt: 0,
      bad: new Map(),
    }));
  }

  /** What the pilots know of the ProxyVersions (their view through the dispatcher). */
  setProxyVersions(pvs: readonly ProxyVersion[]): void {
    this.proxyVersions = [...pvs];
  }

  /** Advances every instance toward its target at `now`. */
  step(now = this.now()): void {
    const { swapMs = 200, readyMs = 200, badVersions = [] } = this.opts;
    for (const inst of this.instances) {
      if (inst.swapping && now >= inst.swapping.at) {
        const { version } = inst.swapping;
        inst.swapping = undefined;
        if (badVersions.includes(version)) {
          inst.bad.set(version, 'NotReady');
        } else {
          inst.running = version;
          inst.readyAt = now + readyMs;
        }
      }
      if (inst.swapping) continue;
      const target = this.opts.targetOf(inst.instanceId, this.proxyVersions);
      if (target && target.version !== inst.running && !inst.bad.has(target.version)) {
        inst.swapping = { version: target.version, rollout: target.rollout, at: now + swapMs };
      }
    }
  }

  /** One pilot's answer to `GET /debug/rollouts`. */
  rollouts(pilot: string, now = this.now()): PilotRollouts {
    const mine = this.instances.filter((i) => i.pilot === pilot);
    const rollouts: RolloutAggregate[] = this.proxyVersions.map((pv) => {
      const key = `${pv.metadata.namespace ?? 'default'}/${pv.metadata.name}`;
      const version = pv.spec.version;
      let targeted = 0;
      let upgraded = 0;
      let ready = 0;
      let failed = 0;
      let newest: number | undefined;
      const failures: RolloutAggregate['failures'] = [];
      for (const inst of mine) {
        const t = this.opts.targetOf(inst.instanceId, this.proxyVersions);
        if (t?.rollout !== key) continue;
        targeted++;
        if (inst.bad.has(version)) {
          failed++;
          if (failures.length < 20) failures.push({ instanceId: inst.instanceId, reason: inst.bad.get(version)!, message: `${version} did not become ready` });
          continue;
        }
        if (inst.running !== version) continue;
        upgraded++;
        if (inst.readyAt !== undefined && inst.readyAt <= now) {
          ready++;
          if (newest === undefined || inst.readyAt > newest) newest = inst.readyAt;
        }
      }
      return {
        rollout: key,
        generation: (pv.metadata as { generation?: number }).generation ?? 1,
        version,
        inScope: mine.length,
        targeted,
        upgraded,
        ready,
        failed,
        newestReadyAt: newest === undefined ? null : new Date(newest).toISOString(),
        failures,
        ...(this.opts.reportBatch === false ? {} : { batch: pv.status?.currentBatch ?? 0 }),
      };
    });
    return { pilotId: pilot, observedAt: new Date(now).toISOString(), rollouts };
  }

  /** Starts the pilots' and the meta server's HTTP endpoints on loopback. */
  async start(): Promise<void> {
    const listen = async (handler: (path: string) => unknown): Promise<number> => {
      const server = createServer((req, res) => {
        const body = handler(new URL(req.url ?? '/', 'http://x').pathname);
        if (body === undefined) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      this.servers.push(server);
      return (server.address() as AddressInfo).port;
    };
    for (const id of this.pilotIds) {
      const port = await listen((path) => {
        if (this.silent.has(id)) return undefined;
        if (path === '/debug/rollouts') return this.rollouts(id);
        if (path === '/debug/routepolicyz') return [];
        if (path === '/debug/authorizationpolicyz') return this.authorizationViews.get(id) ?? [];
        return undefined;
      });
      this.pilotPorts.set(id, port);
    }
    // The meta server's answer as MetaPilotView (@octo-mesh/contracts) has it.
    const meta = await listen((path) =>
      path === '/debug/pilots'
        ? this.pilotIds.map((id) => ({
            id,
            xdsAddress: '127.0.0.1:0',
            adminAddress: `127.0.0.1:${this.pilotPorts.get(id)}`,
            sidecars: this.instances.filter((i) => i.pilot === id).length,
            suspect: false,
            lastHeartbeat: new Date(this.now()).toISOString(),
          }))
        : undefined,
    );
    this.metaUrl = `http://127.0.0.1:${meta}`;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.close(() => r());
            s.closeAllConnections();
          }),
      ),
    );
    this.servers = [];
  }

  /** Instances per running version. */
  versions(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const i of this.instances) out[i.running] = (out[i.running] ?? 0) + 1;
    return out;
  }
}
