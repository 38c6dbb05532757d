/**
 * The health checker end to end on real sockets and processes: a dispatcher, a meta server, a
 * pilot, two checker replicas and an octo-proxy (child processes), catalog's two instances as
 * real HTTP servers. An instance that stops answering must stop getting traffic through the
 * proxy within interval × unhealthyThreshold (+ timeout + the push), and get it back when it
 * recovers; the replica checking the service is killed and the other takes over; with every
 * replica down the last verdict stays.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitFor } from '@octo-mesh/runtime';
import { stopAll } from '@octo-mesh/testing';
import { HealthStack, SERVICE } from './test-support/stack.js';

const INTERVAL = 500;
const TIMEOUT = 200;
const UNHEALTHY = 2;
/** interval × threshold, the timeout of the last failing check, and up to 1.5 s for the write, the pilot's debounce and the push. */
const BUDGET_MS = INTERVAL * UNHEALTHY + TIMEOUT + 1500;

const stack = new HealthStack({ checkers: 2, intervalMs: INTERVAL, timeoutMs: TIMEOUT, unhealthyThreshold: UNHEALTHY, healthyThreshold: 1, apps: 2 });

/** Waits until `app` has had no traffic for `quietMs`; returns when its last request arrived. */
async function quietSince(app: { lastArrival(): number }, quietMs: number, timeoutMs: number): Promise<number> {
  const last = await waitFor(`no traffic for ${quietMs} ms`, async () => app.lastArrival(), (t) => Date.now() - t >= quietMs, { timeoutMs, intervalMs: 50 });
  return last;
}

beforeAll(async () => {
  await stack.start();
}, 90_000);

afterAll(async () => {
  await stack.stop();
  await stopAll();
}, 30_000);

describe('central health checking through a real proxy', () => {
  it('an instance that stops answering gets no traffic within interval × threshold + push, and gets it back when it recovers', async () => {
    const [a, b] = stack.apps as [typeof stack.apps[0], typeof stack.apps[0]];
    const load = stack.load();
    try {
      await waitFor('both instances get traffic', async () => [a.arrivals.length, b.arrivals.length], ([x, y]) => x! > 5 && y! > 5, { timeoutMs: 10_000, intervalMs: 50 });
      const died = Date.now();
      b.mode = 'hang';
      const last = await quietSince(b, 1500, BUDGET_MS + 5000);
      const ms = last - died;
      // The figure the bench reports; the test holds it to the budget.
      process.stderr.write(`health: endpoint dead → last request reaching it: ${ms} ms (budget ${BUDGET_MS} ms)\n`);
      expect(ms).toBeLessThanOrEqual(BUDGET_MS);
      const v = await stack.verdicts();
      expect(v?.spec.endpoints.find((e) => e.port === b.port)).toMatchObject({ healthy: false, reason: `timeout after ${TIMEOUT} ms` });
      expect(v?.spec.endpoints.find((e) => e.port === a.port)).toMatchObject({ healthy: true });
      // Recovery: one successful check (healthyThreshold 1) brings it back.
      const before = b.arrivals.length;
      b.mode = 'ok';
      await waitFor('recovered instance gets traffic again', async () => b.arrivals.length - before, (n) => n > 5, { timeoutMs: INTERVAL * 2 + 3000, intervalMs: 50 });
    } finally {
      await load.stop();
    }
  }, 60_000);

  it('a killed replica\'s service is taken over by the other; with every replica down the last verdict stays', async () => {
    const [a, b] = stack.apps as [typeof stack.apps[0], typeof stack.apps[0]];
    const owner = await waitFor('a replica checks the service', () => stack.owner(), (o) => o !== undefined, { timeoutMs: 10_000, intervalMs: 100 });
    const other = [...stack.checkers.keys()].find((id) => id !== owner)!;
    const killed = Date.now();
    stack.checkers.get(owner!)!.proc.child.kill('SIGKILL');
    // The meta server's lease (3 s) lapses, the survivor's next heartbeat (1 s) shows it alone.
    await waitFor(`${other} takes ${SERVICE} over`, () => stack.checksOf(other), (v) => v.services.some((s) => s.service === SERVICE), { timeoutMs: 10_000, intervalMs: 100 });
    process.stderr.write(`health: replica killed → service taken over in ${Date.now() - killed} ms\n`);
    const load = stack.load();
    try {
      const n = a.arrivals.length;
      await waitFor('instance a gets traffic', async () => a.arrivals.length - n, (d) => d > 5, { timeoutMs: 10_000, intervalMs: 50 });
      const died = Date.now();
      a.mode = 'hang';
      expect((await quietSince(a, 1500, BUDGET_MS + 5000)) - died).toBeLessThanOrEqual(BUDGET_MS);
      const v = await stack.verdicts();
      expect(v?.spec.checker).toBe(other);
      expect(v?.spec.endpoints.find((e) => e.port === a.port)?.healthy).toBe(false);
      // Every replica down: nothing rewrites the verdicts, the proxy keeps avoiding the dead one.
      await stack.checkers.get(other)!.proc.stop(3000);
      const beforeArrivals = a.arrivals.length;
      await new Promise((r) => setTimeout(r, INTERVAL * 4));
      expect((await stack.verdicts())?.spec.endpoints.find((e) => e.port === a.port)?.healthy).toBe(false);
      expect(a.arrivals.length).toBe(beforeArrivals);
      expect(b.arrivals.length).toBeGreaterThan(0);
    } finally {
      await load.stop();
      a.mode = 'ok';
    }
  }, 60_000);
});
