import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

/**
 * `octo_errors_total{where}`: errors a component handled without failing — a retry, a dropped
 * watcher callback, a best-effort call — counted so that none of them is silent. Shared by every
 * registry of the process (see {@link recordError}).
 */
export const handledErrors = new Counter({
  name: 'octo_errors_total',
  help: 'Errors handled without stopping (retried, skipped or best effort), by where they happened.',
  labelNames: ['where'],
  registers: [],
});

/**
 * The one way to swallow an error: log it with its context (`where` plus `fields`) at `level`
 * and count it in `octo_errors_total{where}`. Use it wherever an error is caught and not
 * rethrown, instead of an empty catch.
 */
export function recordError(
  logger: { log(level: string, message: string, meta?: Record<string, unknown>): unknown } | undefined,
  where: string,
  err: unknown,
  fields: Record<string, unknown> = {},
  level: 'warn' | 'error' | 'debug' = 'warn',
): void {
  handledErrors.inc({ where });
  logger?.log(level, `${where} failed`, { ...fields, error: err instanceof Error ? err.message : String(err) });
}

/**
 * A Prometheus registry for one component, with the process metrics (CPU, memory, event loop
 * lag) and a constant `octo_build_info{component,version}` gauge.
 */
export function createMetricsRegistry(component: string, version = '0.1.0'): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'octo_build_info',
    help: 'Always 1; labels say which component and version runs.',
    labelNames: ['component', 'version'],
    registers: [registry],
  });
  info.set({ component, version }, 1);
  registry.registerMetric(handledErrors);
  return registry;
}
