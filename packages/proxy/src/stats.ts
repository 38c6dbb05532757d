import { Counter, type Registry } from '@octo-mesh/runtime';

/**
 * The proxy's counters and histograms, on the component's Prometheus registry. Label values
 * are names from the config (listener, route, cluster), so cardinality follows the config.
 */
export class ProxyStats {
  readonly retries: Counter<'cluster'>;
  readonly staleConnectionRetries: Counter<'cluster'>;
  readonly overflow: Counter<'cluster' | 'reason'>;
  readonly rateLimited: Counter<'listener'>;
  readonly ejections: Counter<'cluster'>;
  readonly tcpConnections: Counter<'listener' | 'cluster'>;
  /** tcp_proxy connection attempts that failed, by reason (`upstream-connect-failure`, `upstream-tls-<result>`). */
  readonly tcpConnectFailures: Counter<'listener' | 'cluster' | 'reason'>;
  readonly xdsUpdates: Counter<'type' | 'result'>;
  /** LEGO agent status reports forwarded to the pilot, by result (sent, failed). */
  readonly agentStatusReports: Counter<'result'>;
  /** Kept-alive connections moved between proxy processes in a LEGO swap (see ListenerManager.drain). */
  readonly connectionHandovers: Counter<'direction' | 'result'>;
  /** Exceptions contained in one connection's read callback, which closed that connection (see data/contain.ts). */
  readonly containedErrors: Counter<'side'>;
  /** Requests the RBAC filter denied / let through, by listener and the policy that decided ('' when none did). */
  readonly rbacDenied: Counter<'listener' | 'policy'>;
  readonly rbacAllowed: Counter<'listener' | 'policy'>;
  /** TLS handshakes by side (downstream, upstream) and result (`success` or Envoy's failure stat name). */
  readonly tlsHandshakes: Counter<'side' | 'result'>;
  /** Downstream connections closed because no filter chain matches their transport (STRICT: plaintext), or their TLS context is warming. */
  readonly noFilterChain: Counter<'listener' | 'transport'>;
  /** SDS file reads by result (accepted, rejected, error). */
  readonly sdsUpdates: Counter<'result'>;
  /**
   * Downstream connections closed as they were accepted, by listener and reason:
   * `connection_limit` (the listener's `listenerConnectionLimit`; Envoy's `downstream_cx_overflow`)
   * or `overload` (the overload rule's stop-accepting level; Envoy's `downstream_cx_overload_reject`).
   */
  readonly refusedConnections: Counter<'listener' | 'reason'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    registry.registerMetric(this.requestMetrics.counter() as never);
    registry.registerMetric(this.requestMetrics.histogram() as never);
    this.retries = new Counter({ name: 'octo_proxy_upstream_retries_total', help: 'Retries sent per cluster.', labelNames: ['cluster'], registers });
    this.staleConnectionRetries = new Counter({
      name: 'octo_proxy_upstream_stale_connection_retries_total',
      help: 'Safe requests (GET, HEAD, OPTIONS, TRACE) sent again on a new connection because the kept-alive one they went out on was closed by the upstream before any response byte (not counted as retries or host failures).',
      labelNames: ['cluster'],
      registers,
    });
    this.overflow = new Counter({
      name: 'octo_proxy_circuit_breaker_overflow_total',
      help: 'Requests or retries refused by a circuit breaker threshold.',
      labelNames: ['cluster', 'reason'],
      registers,
    });
    this.rateLimited = new Counter({ name: 'octo_proxy_rate_limited_total', help: 'Requests refused by the local rate limit.', labelNames: ['listener'], registers });
    this.containedErrors = new Counter({
      name: 'octo_proxy_contained_errors_total',
      help: 'Exceptions while handling one connection, contained by closing that connection (side: downstream, upstream).',
      labelNames: ['side'],
      registers,
    });
    this.tlsHandshakes = new Counter({
      name: 'octo_proxy_tls_handshakes_total',
      help: 'TLS handshakes by side (downstream, upstream) and result (success, fail_verify_san, fail_verify_error, fail_verify_no_cert, connection_error, warming).',
      labelNames: ['side', 'result'],
      registers,
    });
    this.noFilterChain = new Counter({
      name: 'octo_proxy_no_filter_chain_total',
      help: 'Downstream connections closed because no filter chain matches their transport (tls, raw_buffer).',
      labelNames: ['listener', 'transport'],
      registers,
    });
    this.refusedConnections = new Counter({
      name: 'octo_proxy_downstream_connections_refused_total',
      help: 'Downstream connections closed at accept, by listener and reason (connection_limit: the listener is at its limit; overload: the overload rule stopped accepting).',
      labelNames: ['listener', 'reason'],
      registers,
    });
    this.sdsUpdates = new Counter({ name: 'octo_proxy_sds_updates_total', help: 'SDS file reads by result (accepted, rejected, error).', labelNames: ['result'], registers });
    this.rbacDenied = new Counter({ name: 'octo_proxy_rbac_denied_total', help: 'Requests denied by the RBAC filter (403), by the DENY policy that matched (empty: no ALLOW policy matched).', labelNames: ['listener', 'policy'], registers });
    this.rbacAllowed = new Counter({ name: 'octo_proxy_rbac_allowed_total', help: 'Requests the RBAC filter let through, by the ALLOW policy that matched (empty: no ALLOW filter).', labelNames: ['listener', 'policy'], registers });
    this.ejections = new Counter({ name: 'octo_proxy_outlier_ejections_total', help: 'Hosts ejected by outlier detection.', labelNames: ['cluster'], registers });
    this.tcpConnections = new Counter({
      name: 'octo_proxy_tcp_connections_total',
      help: 'Proxied TCP connections.',
      labelNames: ['listener', 'cluster'],
      registers,
    });
    this.tcpConnectFailures = new Counter({
      name: 'octo_proxy_tcp_connect_failures_total',
      help: 'tcp_proxy upstream connection attempts that failed, by reason (a TLS handshake refusal is upstream-tls-<result>).',
      labelNames: ['listener', 'cluster', 'reason'],
      registers,
    });
    this.xdsUpdates = new Counter({
      name: 'octo_proxy_xds_updates_total',
      help: 'xDS responses by type URL and result: accepted, rejected, or unchanged (accepted, every resource byte for byte one in force: nothing rebuilt).',
      labelNames: ['type', 'result'],
      registers,
    });
    this.agentStatusReports = new Counter({
      name: 'octo_proxy_agent_status_reports_total',
      help: 'LEGO agent status reports forwarded to the pilot, by result (sent, failed).',
      labelNames: ['result'],
      registers,
    });
    this.connectionHandovers = new Counter({
      name: 'octo_proxy_connection_handovers_total',
      help: 'Kept-alive downstream connections handed to the next proxy (out) or adopted from the previous one (in), by result.',
      labelNames: ['direction', 'result'],
      registers,
    });
  }

  private readonly requestMetrics = new RequestMetrics();

  /** Counts a finished request (on every request: plain arithmetic, rendered on scrape). */
  recordRequest(listener: string, route: string, cluster: string, status: number, seconds: number): void {
    this.requestMetrics.record(listener, route, cluster, status, seconds);
  }

  /** Requests finished so far per cluster name (the dependency learner reads which services are in use). */
  requestsByCluster(): Map<string, number> {
    return this.requestMetrics.countsByCluster();
  }

  /** Envoy-style `name: value` lines, as `/stats` prints them. */
  async text(): Promise<string> {
    const lines: string[] = [];
    for (const m of await this.registry.getMetricsAsJSON()) {
      if (!m.name.startsWith('octo_proxy_')) continue;
      for (const v of m.values as { labels: Record<string, string | number>; value: number; metricName?: string }[]) {
        const labels = Object.entries(v.labels)
          .map(([k, x]) => `${k}=${x}`)
          .join(',');
        lines.push(`${v.metricName ?? m.name}${labels ? `{${labels}}` : ''}: ${v.value}`);
      }
    }
    return lines.sort().join('\n') + '\n';
  }
}

const CODES = ['1xx', '2xx', '3xx', '4xx', '5xx'];
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Series {
  listener: string;
  route: string;
  cluster: string;
  code: string;
  count: number;
  sum: number;
  /** Per bucket (not cumulative); the last slot is +Inf. */
  buckets: number[];
}

/**
 * Request count and latency per (listener, route, cluster, status class) in plain numbers: the
 * hot path does one map lookup and a few additions instead of prom-client's per-call label
 * hashing. Exposed to the registry as a counter and a histogram (by listener and cluster) that
 * are computed on scrape.
 */
class RequestMetrics {
  private readonly series = new Map<string, Series>();

  /** listener → route → cluster → series per status class: lookups, no per-request key string. */
  private readonly index = new Map<string, Map<string, Map<string, (Series | undefined)[]>>>();

  record(listener: string, route: string, cluster: string, status: number, seconds: number): void {
    const c = status < 200 ? 0 : status < 300 ? 1 : status < 400 ? 2 : status < 500 ? 3 : 4;
    let byRoute = this.index.get(listener);
    if (!byRoute) this.index.set(listener, (byRoute = new Map()));
    let byCluster = byRoute.get(route);
    if (!byCluster) byRoute.set(route, (byCluster = new Map()));
    let byCode = byCluster.get(cluster);
    if (!byCode) byCluster.set(cluster, (byCode = [undefined, undefined, undefined, undefined, undefined]));
    let s = byCode[c];
    if (!s) {
      const code = CODES[c]!;
      const key = `${listener}\u0000${route}\u0000${cluster}\u0000${code}`;
      s = this.series.get(key);
      if (!s) this.series.set(key, (s = { listener, route, cluster, code, count: 0, sum: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) }));
      byCode[c] = s;
    }
    s.count++;
    s.sum += seconds;
    let i = 0;
    while (i < BUCKETS.length && seconds > BUCKETS[i]!) i++;
    s.buckets[i]!++;
  }

  countsByCluster(): Map<string, number> {
    const out = new Map<string, number>();
    for (const s of this.series.values()) if (s.cluster) out.set(s.cluster, (out.get(s.cluster) ?? 0) + s.count);
    return out;
  }

  /** Forgets every series (the registry's reset). */
  private clear(): void {
    this.series.clear();
    this.index.clear();
  }

  counter(): object {
    const series = this.series;
    return {
      name: 'octo_proxy_requests_total',
      help: 'Downstream HTTP requests by listener, route, cluster and status class.',
      type: 'counter',
      aggregator: 'sum',
      get: () => ({
        name: 'octo_proxy_requests_total',
        help: 'Downstream HTTP requests by listener, route, cluster and status class.',
        type: 'counter',
        aggregator: 'sum',
        values: [...series.values()].map((s) => ({ labels: { listener: s.listener, route: s.route, cluster: s.cluster, code: s.code }, value: s.count })),
      }),
      reset: () => this.clear(),
    };
  }

  histogram(): object {
    const series = this.series;
    const name = 'octo_proxy_request_duration_seconds';
    const help = 'Downstream request latency, first byte in to last byte out.';
    const get = () => {
      const byKey = new Map<string, { listener: string; cluster: string; count: number; sum: number; buckets: number[] }>();
      for (const s of series.values()) {
        const k = `${s.listener}\u0000${s.cluster}`;
        let h = byKey.get(k);
        if (!h) byKey.set(k, (h = { listener: s.listener, cluster: s.cluster, count: 0, sum: 0, buckets: new Array<number>(BUCKETS.length + 1).fill(0) }));
        h.count += s.count;
        h.sum += s.sum;
        s.buckets.forEach((n, i) => (h!.buckets[i]! += n));
      }
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const h of byKey.values()) {
        let cum = 0;
        BUCKETS.forEach((le, i) => {
          cum += h.buckets[i]!;
          values.push({ labels: { le, listener: h.listener, cluster: h.cluster }, value: cum, metricName: `${name}_bucket` });
        });
        values.push({ labels: { le: '+Inf', listener: h.listener, cluster: h.cluster }, value: h.count, metricName: `${name}_bucket` });
        values.push({ labels: { listener: h.listener, cluster: h.cluster }, value: h.sum, metricName: `${name}_sum` });
        values.push({ labels: { listener: h.listener, cluster: h.cluster }, value: h.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    };
    return { name, help, type: 'histogram', aggregator: 'sum', get, reset: () => this.clear() };
  }
}
