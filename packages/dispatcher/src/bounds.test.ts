// Issue 18, "bounds on every input" and "no message-size cliff", against a real DispatcherGrpc:
// every refused call ends with a gRPC status that names the problem, a hostile body is refused
// before any parser runs, and List/fetch page so any number of objects flows.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { RoutePolicy } from '@octo-mesh/api';
import { DispatcherConnection, DispatcherMeshSource, SOURCE_ANNOTATION, startGrpcServer, type StartedGrpc } from '@octo-mesh/clients';
import { ValidationError, createLogger, createMetricsRegistry } from '@octo-mesh/runtime';
import { MemoryStore } from './memory-store.js';
import { DispatcherGrpc, DispatcherService } from './server.js';
import { routePolicyFixture, serviceFixture } from './store-contract.js';

const quiet = () => createLogger('test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

/** A RoutePolicy of about `bytes` of JSON (a long annotation), targeting `service`. */
function bulkyPolicy(name: string, service: string, bytes: number): RoutePolicy {
  const p = routePolicyFixture(name, 'bulk');
  p.spec.targetRef = { service };
  p.metadata.annotations = { 'example.com/notes': 'p'.repeat(Math.max(0, bytes - 600)) };
  return p;
}

describe('dispatcher bounds', () => {
  let store: MemoryStore;
  let grpc: StartedGrpc;
  let conn: DispatcherConnection;

  beforeAll(async () => {
    store = MemoryStore.open({ historySize: 100 });
    const service = new DispatcherGrpc({ store, logger: quiet(), registry: createMetricsRegistry('bounds-test') });
    grpc = await startGrpcServer('127.0.0.1', 0, (s) => s.addService(DispatcherService, service.implementation()));
    conn = new DispatcherConnection(`127.0.0.1:${grpc.port}`);
  });
  afterAll(async () => {
    conn.close();
    await grpc.close();
    await store.close();
  });

  it('a Watch resuming from "banana" ends with INVALID_ARGUMENT naming resume_version (not a bare close)', async () => {
    const stream = conn.watch();
    const ended = new Promise<ServiceError>((resolve) => {
      stream.on('error', (e: ServiceError) => resolve(e));
      stream.on('data', () => {});
    });
    stream.write({ clientId: 'fuzz', subscriptions: [], resumeVersion: 'banana' });
    const err = await ended;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/resume_version: .*"banana"/);
  });

  it('a 200 KB body of nested brackets is refused at once with INVALID_ARGUMENT', async () => {
    const body = '['.repeat(200 * 1024);
    const t0 = performance.now();
    const err = await conn.apply(body).catch((e: unknown) => e);
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/nested deeper than 32 levels/);
    expect(ms).toBeLessThan(500); // the YAML parser alone took ~2.5 s of CPU on it
    // Deep block indentation is nesting too; an oversized object is refused by size.
    const deepYaml = Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n');
    await expect(conn.apply(deepYaml)).rejects.toThrow(/nested deeper/);
    await expect(conn.apply(JSON.stringify(bulkyPolicy('huge', 'x', 1_100_000)))).rejects.toThrow(/bytes; at most 1048576/);
    // An ordinary object still goes through, marked as written through the API.
    const ok = await conn.apply(routePolicyFixture('fine'));
    expect(ok.metadata.annotations?.[SOURCE_ANNOTATION]).toBe('api');
  });

  it('10 MB of RoutePolicies in one namespace: List pages through all of them, and a pilot fetch gets a service’s policies', async () => {
    // 4,800 policies of ~2.2 KB: ~10.5 MB, two and a half times gRPC's 4 MiB message limit.
    const N = 4800;
    const t0 = performance.now();
    for (let i = 0; i < N; i += 200)
      await Promise.all(Array.from({ length: Math.min(200, N - i) }, (_, j) => conn.apply(bulkyPolicy(`p-${String(i + j).padStart(5, "0")}`, i + j < 2400 ? "big" : `other-${(i + j) % 7}`, 2300))));
    const applyMs = performance.now() - t0;
    await conn.apply(serviceFixture('big', 'bulk'));

    const t1 = performance.now();
    const all = await conn.list('RoutePolicy', 'bulk');
    const listMs = performance.now() - t1;
    expect(all.items).toHaveLength(N);
    const bytes = all.items.reduce((sum, o) => sum + JSON.stringify(o).length, 0);
    expect(bytes).toBeGreaterThan(10 * 1024 * 1024);
    expect(new Set(all.items.map((o) => o.metadata.name)).size).toBe(N);

    // The pilot's fetch: only the policies of the service, ~5.3 MB, paged too.
    const source = new DispatcherMeshSource({ connection: conn, clientId: 'pilot-bounds' });
    const t2 = performance.now();
    const data = await source.fetch(['bulk/big']);
    const fetchMs = performance.now() - t2;
    expect(data.get('bulk/big')?.policies).toHaveLength(2400);
    process.stdout.write(`10 MB namespace: ${N} policies, ${(bytes / 1048576).toFixed(1)} MiB, applied in ${Math.round(applyMs)} ms, listed in ${Math.round(listMs)} ms, one service fetched in ${Math.round(fetchMs)} ms\n`);
  }, 120_000);
});
