import { Counter, Histogram, type Registry } from '@octo-mesh/runtime';

/**
 * The proxy's counters and histograms, on the component's Prometheus registry. Label values
 * are names from the config (listener, route, cluster), so cardinality follows the config.
 */
export class ProxyStats {
  readonly requests: Counter<'listener' | 'route' | 'cluster' | 'code'>;
  readonly duration: Histogram<'listener' | 'cluster'>;
  readonly retries: Counter<'cluster'>;
  readonly overflow: Counter<'cluster' | 'reason'>;
  readonly rateLimited: Counter<'listener'>;
  readonly ejections: Counter<'cluster'>;
  readonly tcpConnections: Counter<'listener' | 'cluster'>;
  readonly xdsUpdates: Counter<'type' | 'result'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'octo_proxy_requests_total',
      help: 'Downstream HTTP requests by listener, route, cluster and status class.',
      labelNames: ['listener', 'route', 'cluster', 'code'],
      registers,
    });
    this.duration = new Histogram({
      name: 'octo_proxy_request_duration_seconds',
      help: 'Downstream request latency, first byte in to last byte out.',
      labelNames: ['listener', 'cluster'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.retries = new Counter({ name: 'octo_proxy_upstream_retries_total', help: 'Retries sent per cluster.', labelNames: ['cluster'], registers });
    this.overflow = new Counter({
      name: 'octo_proxy_circuit_breaker_overflow_total',
      help: 'Requests or retries refused by a circuit breaker threshold.',
      labelNames: ['cluster', 'reason'],
      registers,
    });
    this.rateLimited = new Counter({ name: 'octo_proxy_rate_limited_total', help: 'Requests refused by the local rate limit.', labelNames: ['listener'], registers });
    this.ejections = new Counter({ name: 'octo_proxy_outlier_ejections_total', help: 'Hosts ejected by outlier detection.', labelNames: ['cluster'], registers });
    this.tcpConnections = new Counter({
      name: 'octo_proxy_tcp_connections_total',
      help: 'Proxied TCP connections.',
      labelNames: ['listener', 'cluster'],
      registers,
    });
    this.xdsUpdates = new Counter({
      name: 'octo_proxy_xds_updates_total',
      help: 'xDS responses by type URL and result (accepted, rejected).',
      labelNames: ['type', 'result'],
      registers,
    });
  }

  private readonly requestChildren = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } }>();

  /** Counts a finished request; label children are cached since this runs on every request. */
  recordRequest(listener: string, route: string, cluster: string, status: number, seconds: number): void {
    const code = status < 200 ? '1xx' : status < 300 ? '2xx' : status < 400 ? '3xx' : status < 500 ? '4xx' : '5xx';
    const key = `${listener}\u0000${route}\u0000${cluster}\u0000${code}`;
    let c = this.requestChildren.get(key);
    if (!c) {
      c = { count: this.requests.labels(listener, route, cluster, code), time: this.duration.labels(listener, cluster) };
      this.requestChildren.set(key, c);
    }
    c.count.inc();
    c.time.observe(seconds);
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
