/**
 * Automatic dependency learning: a request on an HTTP listener whose Host matches no virtual
 * host makes the proxy ask its pilot for that service on the ADS stream it already has, hold the
 * request until the route (and the clusters behind it) are in force, and route it then; past
 * `learnTimeoutMs` it gets `404 no-route`. Declared `dependencies` only pre-warm.
 *
 * The ask is an EDS subscription to the service's cluster name, `outbound|<port>||<name>.<ns>.svc`
 * — the port from the Host, or 0 when the Host has none: Pilot learns the whole service from any
 * of its cluster names (`Pilot.learn`), and its routes carry port-less domains for the first HTTP
 * port, so the port only spells the name. EDS is the one type the proxy subscribes to by name in
 * both SotW and delta, so asking needs no new protocol. The asked names live here, not in the
 * stream: every new stream (a reconnect, another pilot) subscribes to them again, and since what
 * a stream made a pilot learn ends with the stream, that is what makes the new pilot learn them.
 *
 * A service whose Host has not been used for `learnTtlMs` is released: its ask and the EDS names
 * of its clusters leave the subscription, and Pilot, seeing no name of it subscribed any more,
 * forgets it (`Pilot.forget`) and stops pushing it. Use is read from the request counters per
 * cluster on a sweep, so the data path pays nothing for it.
 */
import { Counter, type Logger, type Registry } from '@octo-mesh/runtime';
import type { ProxySnapshot, RouteTable } from '../model.js';
import { selectVirtualHost } from '../data/router.js';

/** What a Host names: the service, its `<name>.<ns>.svc` host and the EDS name to ask with. */
export interface AskTarget {
  /** `namespace/name`. */
  service: string;
  /** `<name>.<namespace>.svc`: the suffix of every cluster name of the service. */
  host: string;
  /** `outbound|<port>||<name>.<namespace>.svc`; port 0 when the Host carried none. */
  name: string;
}

/** RFC 1035 label (a Service name) and RFC 1123 label (a namespace). */
const SERVICE_LABEL = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAMESPACE_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The service a request's authority names, in the forms the mesh's routes answer to: `name`
 * (the proxy's namespace), `name.ns`, `name.ns.svc`, `name.ns.svc.cluster.local`, each with an
 * optional `:port`. Anything else (an IP, an external name such as `api.example.com`) is not a
 * mesh service and is never asked for: it gets its 404 at once.
 */
export function askTarget(authority: string, namespace: string): AskTarget | undefined {
  let host = authority.toLowerCase();
  let port = 0;
  const m = /^(.*):(\d{1,5})$/.exec(host);
  if (m) {
    host = m[1]!;
    port = Number(m[2]);
    if (port < 1 || port > 65535) return undefined;
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  const qualified = /\.svc(\.cluster\.local)?$/.exec(host);
  const labels = (qualified ? host.slice(0, qualified.index) : host).split('.');
  if (qualified ? labels.length !== 2 : labels.length > 2) return undefined;
  const name = labels[0]!;
  const ns = labels[1] ?? namespace;
  if (!SERVICE_LABEL.test(name) || !NAMESPACE_LABEL.test(ns)) return undefined;
  const svcHost = `${name}.${ns}.svc`;
  return { service: `${ns}/${name}`, host: svcHost, name: `outbound|${port}||${svcHost}` };
}

/** A declared dependency (`name`, `name.ns[.svc[.cluster.local]]` or `ns/name`) as `namespace/name`. */
export function dependencyKey(dep: string, namespace: string): string | undefined {
  const slash = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(dep);
  if (slash) return `${slash[1]}/${slash[2]}`;
  return askTarget(dep, namespace)?.service;
}

export interface DependencyLearnerOptions {
  /** The node's namespace: a bare Host name is a service of it. */
  namespace: string;
  /** Declared dependencies: Pilot sends them anyway, so they are never asked for nor released. */
  declared: readonly string[];
  /** How long a request waits for its route. */
  timeoutMs: number;
  /** A service unused this long is unsubscribed. */
  ttlMs: number;
  /** At most this many services asked for at once (Pilot ends a stream that asks for 1,000 names it lacks). */
  maxNames?: number;
  snapshot: () => ProxySnapshot;
  /** Sends the EDS subscription again (AdsClient.refresh): called when the asked names change. */
  refresh: () => void;
  /** Requests finished so far per cluster name (ProxyStats.requestsByCluster). */
  requestsByCluster: () => ReadonlyMap<string, number>;
  registry: Registry;
  logger: Logger;
  now?: () => number;
}

interface Waiter {
  listener: string;
  authority: string;
  resolve: () => void;
}

interface Ask extends AskTarget {
  /** pending: waiting for the route; routed: it came; missing: the bound passed without it. */
  state: 'pending' | 'routed' | 'missing';
  waiters: Waiter[];
  timer: NodeJS.Timeout | undefined;
  lastUsed: number;
  /** Requests counted on the service's clusters at the last sweep. */
  lastCount: number;
}

export const DEFAULT_LEARN_MAX_NAMES = 500;

export class DependencyLearner {
  private readonly asks = new Map<string, Ask>();
  /** Hosts (`name.ns.svc`) released: their clusters' EDS names are withheld until the clusters are gone. */
  private readonly released = new Set<string>();
  private readonly declared: Set<string>;
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;
  private warnedFull = false;
  private readonly metrics: { asks: Counter<never>; held: Counter<'result'>; timeouts: Counter<never>; released: Counter<never> };

  constructor(private readonly opts: DependencyLearnerOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.declared = new Set(opts.declared.map((d) => dependencyKey(d, opts.namespace)).filter((k): k is string => !!k));
    const registers = [opts.registry];
    this.metrics = {
      asks: new Counter({ name: 'octo_proxy_learn_asks_total', help: 'Services asked of the pilot because a request named a host with no route.', registers }),
      held: new Counter({
        name: 'octo_proxy_learn_held_requests_total',
        help: 'Requests held while their service was asked for, by result (routed, timeout).',
        labelNames: ['result'],
        registers,
      }),
      timeouts: new Counter({ name: 'octo_proxy_learn_timeouts_total', help: 'Asks whose route did not arrive within learnTimeoutMs.', registers }),
      released: new Counter({ name: 'octo_proxy_learn_released_total', help: 'Learned services unsubscribed after learnTtlMs without a request.', registers }),
    };
    this.sweeper = setInterval(() => this.sweep(), Math.max(20, Math.min(opts.ttlMs / 4, 30_000)));
    this.sweeper.unref();
  }

  /**
   * A request for `authority` on HTTP listener `listener` found no virtual host. Returns a promise that settles when it may
   * be routed again (its route is in force, or the bound passed), or undefined when there is
   * nothing to wait for (not a mesh service, a declared or known one, or asked already and not
   * there: the name stays subscribed, and Pilot pushes the service if it appears).
   */
  learn(listener: string, authority: string): Promise<void> | undefined {
    const t = askTarget(authority, this.opts.namespace);
    if (!t || this.declared.has(t.service)) return undefined;
    let a = this.asks.get(t.service);
    if (!a) {
      const suffix = `|${t.host}`;
      for (const c of this.opts.snapshot().clusters.keys()) if (c.endsWith(suffix)) return undefined; // known: this port has no route
      if (this.asks.size >= (this.opts.maxNames ?? DEFAULT_LEARN_MAX_NAMES)) {
        if (!this.warnedFull) this.opts.logger.warn('not asking the pilot for more services: too many asked already', { host: authority, max: this.opts.maxNames ?? DEFAULT_LEARN_MAX_NAMES });
        this.warnedFull = true;
        return undefined;
      }
      a = { ...t, state: 'pending', waiters: [], timer: undefined, lastUsed: this.now(), lastCount: this.countOf(t.host) };
      this.asks.set(t.service, a);
      this.released.delete(t.host);
      const ask = a;
      ask.timer = setTimeout(() => this.expire(ask), this.opts.timeoutMs);
      this.metrics.asks.inc();
      this.opts.logger.info('asking the pilot for an undeclared dependency', { host: authority, service: t.service, name: t.name });
      this.opts.refresh();
    }
    a.lastUsed = this.now();
    if (a.state !== 'pending') return undefined;
    const ask = a;
    return new Promise<void>((resolve) => ask.waiters.push({ listener, authority, resolve }));
  }

  /** EDS names to subscribe to: those of the clusters in force, less released services', plus the asks. */
  endpointNames(fromClusters: readonly string[]): string[] {
    const out = new Set<string>();
    const stillThere = new Set<string>();
    for (const n of fromClusters) {
      const host = n.slice(n.lastIndexOf('|') + 1);
      if (this.released.has(host)) stillThere.add(host);
      else out.add(n);
    }
    for (const h of this.released) if (!stillThere.has(h)) this.released.delete(h);
    for (const a of this.asks.values()) out.add(a.name);
    return [...out].sort();
  }

  /** Whether any name is asked for (the xDS client then subscribes to EDS first on a new stream). */
  get asking(): boolean {
    return this.asks.size > 0;
  }

  /** A new snapshot is in force: requests whose route (and every cluster behind it) is there go on. */
  onSnapshot(s: ProxySnapshot): void {
    for (const a of this.asks.values()) {
      if (a.state !== 'pending' || !a.waiters.length) continue;
      const waiting: Waiter[] = [];
      for (const w of a.waiters) {
        if (routable(s, w.listener, w.authority)) {
          this.metrics.held.inc({ result: 'routed' });
          w.resolve();
        } else waiting.push(w);
      }
      if (waiting.length === a.waiters.length) continue;
      a.waiters = waiting;
      if (!waiting.length) {
        a.state = 'routed';
        clearTimeout(a.timer);
        this.opts.logger.info('learned a dependency from the pilot', { service: a.service });
      }
    }
  }

  private expire(a: Ask): void {
    if (a.state !== 'pending') return;
    a.state = 'missing';
    this.metrics.timeouts.inc();
    this.opts.logger.info('no route arrived for an undeclared dependency within learnTimeoutMs', { service: a.service, name: a.name, requests: a.waiters.length, timeoutMs: this.opts.timeoutMs });
    for (const w of a.waiters) {
      this.metrics.held.inc({ result: 'timeout' });
      w.resolve();
    }
    a.waiters = [];
  }

  private countOf(host: string, counts = this.opts.requestsByCluster()): number {
    const suffix = `|${host}`;
    let n = 0;
    for (const [c, k] of counts) if (c.endsWith(suffix)) n += k;
    return n;
  }

  /** Releases services not used for the TTL. */
  sweep(): void {
    if (!this.asks.size) return;
    const now = this.now();
    const counts = this.opts.requestsByCluster();
    const gone: Ask[] = [];
    for (const a of this.asks.values()) {
      const n = this.countOf(a.host, counts);
      if (n !== a.lastCount) {
        a.lastCount = n;
        a.lastUsed = now;
      }
      if (a.state !== 'pending' && now - a.lastUsed >= this.opts.ttlMs) gone.push(a);
    }
    if (!gone.length) return;
    for (const a of gone) {
      this.asks.delete(a.service);
      this.released.add(a.host);
      this.metrics.released.inc();
    }
    this.opts.logger.info('unsubscribed dependencies unused for learnTtlMs', { services: gone.map((a) => a.service), ttlMs: this.opts.ttlMs });
    this.opts.refresh();
  }

  /** For /config_dump: what is asked for and in what state. */
  dump(): { service: string; name: string; state: string; idleMs: number }[] {
    const now = this.now();
    return [...this.asks.values()].map((a) => ({ service: a.service, name: a.name, state: a.state, idleMs: Math.round(now - a.lastUsed) }));
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const a of this.asks.values()) {
      clearTimeout(a.timer);
      for (const w of a.waiters) w.resolve();
      a.waiters = [];
    }
  }
}

/** The request's listener has a virtual host for `authority`, and every cluster its routes name is in force (not warming). */
function routable(s: ProxySnapshot, listener: string, authority: string): boolean {
  const l = s.listeners.get(listener);
  if (!l || l.filter.kind !== 'http') return false;
  const t: RouteTable | undefined = l.filter.routeTable ?? (l.filter.rdsName ? s.routeTables.get(l.filter.rdsName) : undefined);
  const vh = t && selectVirtualHost(t, authority);
  return !!vh && vh.routes.every((r) => r.action.kind !== 'cluster' || r.action.clusters.every((c) => s.clusters.has(c.cluster)));
}
