import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

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
  return registry;
}
