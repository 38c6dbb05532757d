/**
 * gRPC health checks end to end: a dispatcher and a meta server (child processes), one checker
 * replica (child process), and three real grpc-js servers as `shop/inventory`'s endpoints — one
 * implementing grpc.health.v1.Health whose status the test flips (behind a TCP relay that counts
 * connections), one SERVING throughout, one without the Health service. The published verdicts
 * must follow: SERVING healthy, NOT_SERVING unhealthy, back to SERVING healthy, UNIMPLEMENTED
 * unhealthy; the flipping endpoint's checks ride one connection, closed when it leaves the service.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MODEL_API_VERSION, type EndpointHealth } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { EmbeddedControlPlane } from '@octo-mesh/mock-sidecar';
import { waitFor } from '@octo-mesh/runtime';
import { REPO_ROOT, startProcess, stopAll, type TestProcess } from '@octo-mesh/testing';
import { CountingRelay, HealthServer } from './test-support/grpc-health.js';

const SERVICE = 'shop/inventory';
const GRPC_SERVICE = 'shop.Inventory';
const INTERVAL = 300;
/** Rounds needed (threshold 1) plus the write; generous for a loaded CI machine. */
const WITHIN = { timeoutMs: INTERVAL * 2 + 8000, intervalMs: 50 };

let cp: EmbeddedControlPlane;
let dispatcher: DispatcherConnection;
let checker: TestProcess;
let admin = '';
const flipping = new HealthServer(true);
const steady = new HealthServer(true);
const bare = new HealthServer(false);
let relay: CountingRelay;

const endpoints = (ports: number[]) => ({
  apiVersion: MODEL_API_VERSION,
  kind: 'ServiceEndpoints',
  metadata: { name: 'inventory', namespace: 'shop' },
  spec: { endpoints: ports.map((port, i) => ({ address: '127.0.0.1', port, labels: {}, healthy: true, instance: `inventory-${i}` })) },
});

const verdicts = async () => (await dispatcher.get('EndpointHealth', SERVICE).catch(() => undefined)) as EndpointHealth | undefined;
const verdictOf = async (port: number) => (await verdicts())?.spec.endpoints.find((e) => e.port === port);

beforeAll(async () => {
  for (const s of [flipping, steady, bare]) await s.listen();
  flipping.statuses.set(GRPC_SERVICE, 1);
  steady.statuses.set(GRPC_SERVICE, 1);
  relay = new CountingRelay(flipping.port);
  await relay.listen();
  cp = new EmbeddedControlPlane({ root: REPO_ROOT, pilots: 0 });
  await cp.start();
  dispatcher = new DispatcherConnection(cp.dispatcherAddress);
  await dispatcher.apply({ apiVersion: MODEL_API_VERSION, kind: 'Service', metadata: { name: 'inventory', namespace: 'shop' }, spec: { ports: [{ name: 'grpc', port: 9090, protocol: 'grpc' }] } } as never);
  await dispatcher.apply(endpoints([relay.port, steady.port, bare.port]) as never);
  await dispatcher.apply({
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'RoutePolicy',
    metadata: { name: 'inventory', namespace: 'shop' },
    spec: { targetRef: { service: 'inventory' }, healthCheck: { grpc: { service: GRPC_SERVICE }, interval: `${INTERVAL}ms`, timeout: '200ms', unhealthyThreshold: 1, healthyThreshold: 1 } },
  } as never);
  // The panic rule would hold a second failing endpoint of three healthy (default 50 %): this
  // test is about the check, so every failure is published.
  checker = startProcess('packages/health/dist/main.js', [
    '--checker-id', 'checker-grpc',
    '--dispatcher-address', cp.dispatcherAddress,
    '--meta-server-address', cp.metaAddress,
    '--admin-host', '127.0.0.1', '--admin-port', '0',
    '--max-unhealthy-percent', '100',
    '--log-level', 'debug',
  ]);
  admin = `127.0.0.1:${(await checker.line<{ adminPort: number }>('listening')).adminPort}`;
}, 90_000);

afterAll(async () => {
  await checker?.stop(3000);
  dispatcher?.close();
  await cp?.stop();
  await relay?.close();
  await Promise.allSettled([flipping, steady, bare].map((s) => s.stop()));
  await stopAll();
}, 30_000);

describe('central gRPC health checks (grpc.health.v1) through real processes', () => {
  it('verdicts follow SERVING → NOT_SERVING → SERVING; a server without Health is unhealthy (UNIMPLEMENTED)', async () => {
    await waitFor('first verdicts', () => verdicts(), (v) => v?.spec.endpoints.length === 3, WITHIN);
    expect(await verdictOf(bare.port)).toMatchObject({ healthy: false, reason: expect.stringMatching(/^gRPC UNIMPLEMENTED/) });
    expect(await verdictOf(relay.port)).toMatchObject({ healthy: true });
    expect(await verdictOf(steady.port)).toMatchObject({ healthy: true });

    flipping.statuses.set(GRPC_SERVICE, 2);
    await waitFor('NOT_SERVING published unhealthy', () => verdictOf(relay.port), (v) => v?.healthy === false, WITHIN);
    expect(await verdictOf(relay.port)).toMatchObject({ reason: 'NOT_SERVING' });
    expect(await verdictOf(steady.port)).toMatchObject({ healthy: true });

    flipping.statuses.set(GRPC_SERVICE, 1);
    await waitFor('SERVING published healthy again', () => verdictOf(relay.port), (v) => v?.healthy === true, WITHIN);

    const metrics = await (await fetch(`http://${admin}/metrics`)).text();
    expect(metrics).toMatch(/octo_health_checks_total\{[^}]*protocol="grpc"[^}]*result="ok"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/octo_health_checks_total\{[^}]*protocol="grpc"[^}]*result="fail"[^}]*\} [1-9]/);
  }, 60_000);

  it('checks an endpoint over one reused connection and closes it when the endpoint leaves the service', async () => {
    const checks = flipping.checks;
    await waitFor('several more rounds', async () => flipping.checks - checks, (n) => n >= 3, WITHIN);
    // Every round so far (at least 5 in all) rode the connection opened by the first one.
    expect(relay.opened).toBe(1);
    expect(relay.open.size).toBe(1);
    await dispatcher.apply(endpoints([steady.port, bare.port]) as never);
    await waitFor('the removed endpoint\'s connection closes', async () => relay.open.size, (n) => n === 0, WITHIN);
    const after = flipping.checks;
    await waitFor('the others are still checked', async () => steady.checks, (n) => n > 0, WITHIN);
    const steadyBefore = steady.checks;
    await waitFor('two more rounds', async () => steady.checks - steadyBefore, (n) => n >= 2, WITHIN);
    expect(flipping.checks).toBe(after);
    expect(relay.opened).toBe(1);
  }, 60_000);
});
