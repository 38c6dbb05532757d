// One share of bench/scale's simulated sidecars: a child process holding MockSidecars
// (packages/mock-sidecar; each a real ADS stream on its own gRPC connection) so that 10,000 of
// them spread over several processes and the simulator is not one event loop the control plane
// waits on. The parent asks questions over IPC; every time crossing the process boundary is
// absolute (performance.timeOrigin + performance.now(), ms), so the parent's "change applied at"
// and a sidecar's "response arrived at" are on one clock.
//
// Parent → child: {cmd: 'start', specs, discovery, client, locate, perTick, tickMs} (client, locate: 'grpc-js' | 'lean'), {cmd: 'synced'},
//   {cmd: 'pushed', since, types, deps?} (first arrival of each type since `since`, per sidecar
//   that depends on `deps`; latency = last required type − since), {cmd: 'victims', pilotId},
//   {cmd: 'rehomed', pilotId, at}, {cmd: 'probe', pilotId, count}, {cmd: 'reconnect', count, at}, {cmd: 'back', at},
//   {cmd: 'churn', from, to, deps?, windowMs}, {cmd: 'trim'}, {cmd: 'usage'}, {cmd: 'exit'}
// Child → parent: {id, ...answer} for each command that carries an id.
import { monitorEventLoopDelay, performance as perf } from 'node:perf_hooks';
import { MockSidecar } from '@octo-mesh/mock-sidecar';

const abs = (t) => performance.timeOrigin + t;
/** @type {MockSidecar[]} */
let sidecars = [];
/** Sidecars that a kill or a storm cut off, with when they lost their stream. */
let victims = [];
/** The push being waited for (see `pushed`). */
let watch;
/**
 * This process's own event loop during a pilot kill (from `victims` to the final `rehomed`): a
 * sidecar's timestamps are taken when its events run here, so a busy simulator adds its own delay
 * to every step it reports.
 */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let eluFrom = perf.eventLoopUtilization();

const depends = (s, dep) => !dep || s.spec.dependencies.includes(dep);

function firstSince(s, since, types) {
  let latest = 0;
  for (const t of types) {
    const r = s.received.find((x) => x.type === t && abs(x.at) >= since);
    if (!r) return undefined;
    latest = Math.max(latest, abs(r.at));
  }
  return latest - since;
}

const handlers = {
  async start({ specs, discovery, client = 'grpc-js', locate = client, perTick = 50, tickMs = 50 }) {
    for (let i = 0; i < specs.length; i += perTick) {
      for (const spec of specs.slice(i, i + perTick)) {
        const s = new MockSidecar(spec, discovery, { client, locate });
        sidecars.push(s);
        s.start();
      }
      await new Promise((r) => setTimeout(r, tickMs));
    }
    return { started: sidecars.length };
  },
  synced() {
    const done = sidecars.filter((s) => s.synced);
    const errors = [...new Set(sidecars.filter((s) => !s.synced && s.lastError).map((s) => s.lastError))].slice(0, 3);
    const byPilot = {};
    for (const s of done) byPilot[s.pilotId] = (byPilot[s.pilotId] ?? 0) + 1;
    return { done: done.length, synced: done.length, total: sidecars.length, byPilot, errors, bytes: sidecars.reduce((n, s) => n + s.bytes, 0) };
  },
  /**
   * Polled every 50 ms during a push, on the cores the control plane is measured on: rescanning
   * every sidecar at each poll was ~18 % of a simulator process's CPU during a push at 10,000
   * (a CPU profile, 2026-12-07). So one watch per question: the sidecars still waiting, each
   * looked at only while it has received something it has not yet been checked for.
   */
  pushed({ since, types, deps, final }) {
    const key = `${since}|${types}|${deps}`;
    if (watch?.key !== key) {
      const chosen = sidecars.filter((s) => depends(s, deps));
      watch = { key, total: chosen.length, waiting: chosen.map((s) => ({ s, seen: 0 })), lat: [] };
    }
    watch.waiting = watch.waiting.filter((w) => {
      if (w.s.received.length === w.seen) return true;
      w.seen = w.s.received.length;
      const l = firstSince(w.s, since, types);
      if (l === undefined) return true;
      watch.lat.push(l);
      return false;
    });
    return { done: watch.lat.length, total: watch.total, latencies: final ? watch.lat : undefined };
  },
  victims({ pilotId }) {
    victims = sidecars.filter((s) => s.connected && s.pilotId === pilotId);
    for (const s of victims) s.before = { locateFailures: s.locateFailures, streamsLost: s.streamsLost };
    for (const s of sidecars) s.probes.length = 0;
    loopDelay.reset();
    eluFrom = perf.eventLoopUtilization();
    return { victims: victims.length };
  },
  /** Where the victims are right now (a re-home timeline): per state, and synced on another pilot. */
  timeline({ pilotId }) {
    const out = { locating: 0, backoff: 0, waiting: 0, receiving: 0, synced: 0, stillOnVictim: 0, locateFailures: 0 };
    for (const s of victims) {
      out.locateFailures += s.locateFailures - s.before.locateFailures;
      if (s.synced && s.pilotId !== pilotId) out.synced++;
      else if (s.synced) out.stillOnVictim++;
      else if (s.state === 'streaming') out[s.firstResponseAt === undefined ? 'waiting' : 'receiving']++;
      else out[s.state === 'backoff' ? 'backoff' : 'locating']++;
    }
    return out;
  },
  rehomed({ pilotId, at, final }) {
    const home = (s) => s.synced && s.pilotId !== pilotId && abs(s.syncedAt) > at;
    const done = victims.filter(home);
    const out = { done: done.length, total: victims.length };
    if (final) {
      out.sinceKill = done.map((s) => abs(s.syncedAt) - at);
      // From the moment this sidecar saw its stream end to synced on the new pilot: locate +
      // connect + the whole initial configuration — the control plane's response to it.
      out.response = done.map((s) => s.syncedAt - s.lostAt);
      // The response in steps (of the last attempt): stream lost → locate answered → first
      // response on the new stream (admission, connect) → synced; and what went wrong on the way.
      out.locateMs = done.map((s) => s.locatedAt - s.lostAt);
      // …and the locate in its parts: the backoff before the call, the call (retries included).
      out.backoffMs = done.map((s) => s.locateStartedAt - s.lostAt);
      out.locateCallMs = done.map((s) => s.locatedAt - s.locateStartedAt);
      out.firstResponseMs = done.map((s) => s.firstResponseAt - s.locatedAt);
      // …and the first response in its parts: connection + HTTP/2 stream until the pilot's
      // handler ran (its response headers), then the pilot's handling until the first response.
      out.headersMs = done.map((s) => s.headersAt - s.locatedAt);
      out.handlingMs = done.map((s) => s.firstResponseAt - s.headersAt);
      // The new stream's first DiscoveryRequest → first DiscoveryResponse (a per-request latency).
      out.requestMs = done.map((s) => s.firstResponseAt - s.requestedAt);
      // Sidecars that were not moved: their probes' request → response during the storm.
      out.probeMs = sidecars.flatMap((s) => s.probes);
      const elu = perf.eventLoopUtilization(eluFrom);
      out.simLoop = [{ elu: elu.utilization, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 }];
      out.syncMs = done.map((s) => s.syncedAt - s.firstResponseAt);
      out.locateFailures = done.map((s) => s.locateFailures - s.before.locateFailures);
      out.streamsLost = done.map((s) => s.streamsLost - s.before.streamsLost);
      out.errors = [...new Set(victims.filter((s) => !home(s)).map((s) => s.lastError))].slice(0, 3);
    }
    return out;
  },
  /** `count` random sidecars synced on a pilot other than `pilotId` re-ask for EDS (MockSidecar.probe). */
  probe({ pilotId, count }) {
    let asked = 0;
    for (let tries = 0; asked < count && tries < count * 10 && sidecars.length; tries++) {
      const s = sidecars[Math.floor(Math.random() * sidecars.length)];
      if (s.synced && s.pilotId !== pilotId && s.probe('eds')) asked++;
    }
    return { asked };
  },
  reconnect({ count }) {
    victims = sidecars.slice(0, count);
    for (const s of victims) s.reconnectNow();
    return { victims: victims.length };
  },
  back({ at, final }) {
    const back = (s) => s.synced && abs(s.syncedAt) > at;
    const done = victims.filter(back);
    return { done: done.length, total: victims.length, latencies: final ? done.map((s) => abs(s.syncedAt) - at) : undefined };
  },
  churn({ from, to, deps, windowMs }) {
    const chosen = sidecars.filter((s) => deps.some((d) => depends(s, d)));
    let pushes = 0;
    let windows = 0;
    let crowded = 0; // windows with more than one EDS push
    let maxInWindow = 0;
    for (const s of chosen) {
      const per = new Map();
      for (const r of s.received) {
        const t = abs(r.at);
        if (r.type !== 'eds' || t < from || t > to) continue;
        pushes++;
        const w = Math.floor((t - from) / windowMs);
        per.set(w, (per.get(w) ?? 0) + 1);
      }
      windows += Math.ceil((to - from) / windowMs);
      for (const n of per.values()) {
        if (n > 1) crowded++;
        maxInWindow = Math.max(maxInWindow, n);
      }
    }
    return { sidecars: chosen.length, pushes, windows, crowded, maxInWindow };
  },
  /** When each sidecar last received EDS (to see a storm settle). */
  lastEds() {
    let last = 0;
    for (const s of sidecars) for (let i = s.received.length - 1; i >= 0; i--) if (s.received[i].type === 'eds') { last = Math.max(last, abs(s.received[i].at)); break; }
    return { last };
  },
  trim() {
    for (const s of sidecars) s.received.length = 0;
    watch = undefined;
    return {};
  },
  usage() {
    const c = process.cpuUsage();
    return { cpuMs: (c.user + c.system) / 1000, rss: process.memoryUsage().rss };
  },
  exit() {
    for (const s of sidecars) s.close();
    sidecars = [];
    setTimeout(() => process.exit(0), 200);
    return {};
  },
};

process.on('message', async (m) => {
  try {
    const answer = await handlers[m.cmd](m);
    process.send({ id: m.id, ...answer });
  } catch (err) {
    console.error(`fleet ${process.pid}: ${m.cmd} failed: ${err.stack}`);
    process.send({ id: m.id, error: `${m.cmd}: ${err.message}` });
  }
});
process.send({ ready: true });
