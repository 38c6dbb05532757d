import { afterEach, describe, expect, it } from '@jest/globals';
import type { Endpoint, Service } from '@octo-mesh/api';
import { Node, TYPE_URL } from '@octo-mesh/proto';
import { Pilot } from './pilot.js';
import { AdsServer } from './server/ads.js';
import { adsClient, SotwClient } from './sim/ads-client.js';
import { MemoryMeshSource } from './source.js';

const svc = (name: string): Service => ({ apiVersion: 'model.mesh.octo.io/v1', kind: 'Service', metadata: { name, namespace: 'demo' }, spec: { ports: [{ name: 'http', port: 80, protocol: 'http' }] } });
const ep = (address: string): Endpoint => ({ address, port: 15006, labels: {}, healthy: true });
const node = (id: string, deps: string[]) => Node.fromPartial({ id, metadata: { namespace: 'demo', dependencies: deps } });

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function setup(debounce = { quietMs: 30, maxDelayMs: 200 }) {
  const source = new MemoryMeshSource();
  for (const n of ['a', 'b', 'c']) source.upsertService(svc(n), [ep(`10.0.0.${n.charCodeAt(0)}`)]);
  const pilot = new Pilot({ source, debounce });
  const server = new AdsServer({ cache: pilot.cache, callbacks: pilot.callbacks });
  const port = await server.listen(0, '127.0.0.1');
  const client = adsClient(`127.0.0.1:${port}`);
  const streams: SotwClient[] = [];
  cleanup.push(async () => {
    for (const s of streams) s.close();
    client.close();
    pilot.close();
    await server.close(100);
  });
  const connect = async (id: string, deps: string[]) => {
    const s = new SotwClient(client, node(id, deps));
    streams.push(s);
    s.subscribe(TYPE_URL.cluster);
    s.ack(await s.next());
    s.subscribe(TYPE_URL.endpoint, deps.map((d) => `outbound|80||${d}.demo.svc`));
    s.ack(await s.next(), deps.map((d) => `outbound|80||${d}.demo.svc`));
    return s;
  };
  return { source, pilot, connect };
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
};

describe('Pilot', () => {
  it('coalesces a burst of endpoint changes into one push', async () => {
    const { source, connect } = await setup();
    const s = await connect('n1', ['a']);
    for (let i = 1; i <= 10; i++) source.setEndpoints('demo/a', [ep(`10.1.0.${i}`)]);
    const push = await s.next();
    expect(push.typeUrl).toBe(TYPE_URL.endpoint);
    s.ack(push, ['outbound|80||a.demo.svc']);
    expect(await s.quiet(200)).toBe(true);
  });

  it('holds and watches only the services of connected sidecars, and lets go when they leave', async () => {
    const { source, pilot, connect } = await setup();
    const s1 = await connect('n1', ['a', 'b']);
    await connect('n2', ['b']);
    expect(pilot.describe().services.map((s) => s.key).sort()).toEqual(['demo/a', 'demo/b']);
    expect(pilot.describe().scopes).toBe(2);
    s1.close();
    await until(() => pilot.connectedNodes === 1);
    expect(pilot.describe().services.map((s) => s.key)).toEqual(['demo/b']);
    const fetches = source.fetches;
    source.setEndpoints('demo/a', [ep('10.9.9.9')]); // no longer watched: not even fetched
    source.setEndpoints('demo/c', [ep('10.9.9.8')]);
    await new Promise((r) => setTimeout(r, 100));
    await pilot.idle();
    expect(source.fetches).toBe(fetches);
  });

  it('shares one snapshot between sidecars of the same scope', async () => {
    const { pilot, connect } = await setup();
    await connect('n1', ['a', 'b']);
    await connect('n2', ['b', 'a']);
    expect(pilot.cache.getSnapshot('n1')).toBe(pilot.cache.getSnapshot('n2'));
    expect(pilot.describe().scopes).toBe(1);
  });
});
