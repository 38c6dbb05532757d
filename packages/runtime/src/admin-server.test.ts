import { describe, expect, it } from '@jest/globals';
import { NotFoundError } from './errors.js';
import { Counter, createMetricsRegistry } from './metrics.js';
import { startAdminServer } from './admin-server.js';

describe('admin server', () => {
  it('serves /healthz, /readyz with named failing checks, /metrics and debug routes', async () => {
    const registry = createMetricsRegistry('test');
    const c = new Counter({ name: 'octo_test_total', help: 'test', registers: [registry] });
    c.inc(3);
    let ready: boolean | string = 'xds not synced';
    const admin = await startAdminServer({
      port: 0,
      registry,
      readiness: { xds: () => ready },
      routes: { '/debug/x': () => ({ a: 1 }), '/debug/missing': () => { throw new NotFoundError('no such sidecar'); } },
    });
    const base = `http://127.0.0.1:${admin.port}`;
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      const notReady = await fetch(`${base}/readyz`);
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toContain('xds: xds not synced');
      ready = true;
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(metrics).toContain('octo_test_total 3');
      expect(metrics).toContain('octo_build_info{component="test"');
      expect(await (await fetch(`${base}/debug/x`)).json()).toEqual({ a: 1 });
      const missing = await fetch(`${base}/debug/missing`);
      expect(missing.status).toBe(404);
      expect(await missing.json()).toEqual({ error: 'no such sidecar' });
    } finally {
      await admin.close();
    }
  });
});
