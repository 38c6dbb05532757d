/** The executable: a bad setting stops it naming the field; SIGTERM leaves the ring and exits 0. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { startProcess, stopAll } from '@octo-mesh/testing';

afterAll(() => stopAll());

describe('octo-health-checker', () => {
  it.each([
    // columns: flags, what the message must name
    [['--dispatcher-address', 'nowhere'], 'dispatcherAddress'],
    [['--dispatcher-address', '127.0.0.1:1', '--max-unhealthy-percent', '150'], 'maxUnhealthyPercent'],
    [[], 'dispatcherAddress'],
  ])('%j exits 2 naming %s', async (args, field) => {
    const p = startProcess('packages/health/dist/main.js', args);
    expect(await p.exited).toBe(2);
    expect(p.output()).toContain(field);
  });

  it('serves /healthz and /metrics, and exits 0 on SIGTERM', async () => {
    const p = startProcess('packages/health/dist/main.js', ['--dispatcher-address', '127.0.0.1:1', '--admin-host', '127.0.0.1', '--admin-port', '0', '--checker-id', 'c-test']);
    const { adminPort } = await p.line<{ adminPort: number }>('listening');
    expect((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).toContain('octo_health_checks_total');
    // No dispatcher: not ready, saying why.
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(503);
    expect(await p.stop(5000)).toBe(0);
  }, 30_000);
});
