/**
 * The gRPC health check against real grpc-js servers on real sockets: one implementing
 * grpc.health.v1.Health whose status the test flips, one without the Health service
 * (UNIMPLEMENTED), one that never answers (deadline), and a closed port. The connections are
 * counted by a TCP relay in front of the server, to show that a channel is reused across rounds
 * and closed when its endpoint goes away.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freePort, waitFor } from '@octo-mesh/runtime';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, GrpcHealthChannels } from './grpc-probe.js';
import { CountingRelay, HealthServer } from './test-support/grpc-health.js';

const healthy = new HealthServer(true);
const bare = new HealthServer(false);
let relay: CountingRelay;
const spec = (port: number, over: Partial<{ service: string; timeoutMs: number; authority: string }> = {}) => ({
  address: '127.0.0.1',
  port,
  timeoutMs: 1000,
  service: '',
  authority: 'catalog.shop.svc',
  ...over,
});

beforeAll(async () => {
  await healthy.listen();
  await bare.listen();
  relay = new CountingRelay(healthy.port);
  await relay.listen();
  healthy.statuses.set('', 1);
  healthy.statuses.set('shop.Catalog', 1);
});

afterAll(async () => {
  await relay.close();
  await healthy.stop();
  await bare.stop();
});

describe('HealthCheckRequest / HealthCheckResponse codec', () => {
  // bytes, status
  it.each([
    ['', 0],
    ['0801', 1],
    ['0802', 2],
    ['0803', 3],
    ['1203616263' + '0801', 1], // an unknown string field first is skipped
    ['0801' + '1801', 1], // an unknown varint field after it is skipped
  ])('decodes %j as status %d', (hex, want) => {
    expect(decodeHealthCheckResponse(Buffer.from(hex, 'hex'))).toBe(want);
  });

  it.each([['08'], ['0a05ab'], ['0b']])('rejects malformed %j', (hex) => {
    expect(() => decodeHealthCheckResponse(Buffer.from(hex, 'hex'))).toThrow();
  });

  it('encodes the service name as field 1, and nothing for the whole server', () => {
    expect(encodeHealthCheckRequest('').length).toBe(0);
    expect(encodeHealthCheckRequest('shop.Catalog').toString('hex')).toBe('0a0c' + Buffer.from('shop.Catalog').toString('hex'));
  });
});

describe('gRPC health check on real servers', () => {
  it('follows the server\'s status: SERVING → NOT_SERVING → SERVING, and sends the authority', async () => {
    const ch = new GrpcHealthChannels(500);
    try {
      expect(await ch.check(spec(healthy.port, { service: 'shop.Catalog' }))).toMatchObject({ ok: true });
      healthy.statuses.set('shop.Catalog', 2);
      expect(await ch.check(spec(healthy.port, { service: 'shop.Catalog' }))).toMatchObject({ ok: false, reason: 'NOT_SERVING' });
      healthy.statuses.set('shop.Catalog', 3);
      expect(await ch.check(spec(healthy.port, { service: 'shop.Catalog' }))).toMatchObject({ ok: false, reason: 'SERVICE_UNKNOWN' });
      healthy.statuses.set('shop.Catalog', 1);
      expect(await ch.check(spec(healthy.port, { service: 'shop.Catalog' }))).toMatchObject({ ok: true });
      expect(healthy.lastAuthority).toBe('catalog.shop.svc');
    } finally {
      ch.close();
    }
  });

  // what, endpoint, spec overrides, expected reason
  it.each([
    ['a server without the Health service', () => bare.port, {}, /^gRPC UNIMPLEMENTED/],
    ['an unknown service name', () => healthy.port, { service: 'shop.Nope' }, /^gRPC NOT_FOUND: unknown service shop\.Nope/],
    ['a status the server does not know (UNKNOWN)', () => healthy.port, { service: 'shop.Unknown' }, /^UNKNOWN$/],
  ])('fails for %s', async (_what, port, over, reason) => {
    healthy.statuses.set('shop.Unknown', 0);
    const ch = new GrpcHealthChannels();
    try {
      const r = await ch.check(spec(port(), over));
      expect(r.ok).toBe(false);
      expect(r.reason).toMatch(reason);
    } finally {
      ch.close();
    }
  });

  it('fails at the deadline when the server never answers, and when nothing listens', async () => {
    const ch = new GrpcHealthChannels();
    healthy.hang = true;
    try {
      const r = await ch.check(spec(healthy.port, { timeoutMs: 300 }));
      expect(r).toMatchObject({ ok: false, reason: 'timeout after 300 ms' });
      expect(r.ms).toBeGreaterThanOrEqual(250);
      expect(r.ms).toBeLessThan(300 + 2000);
    } finally {
      healthy.hang = false;
      ch.close();
    }
    const closed = await freePort();
    const ch2 = new GrpcHealthChannels();
    try {
      const r = await ch2.check(spec(closed, { timeoutMs: 1000 }));
      expect(r.ok).toBe(false);
      expect(r.reason).toMatch(/^(gRPC UNAVAILABLE|timeout after)/);
    } finally {
      ch2.close();
    }
  });

  it('a reused channel sees its server die (UNAVAILABLE) and the same channel sees it back on the same port', async () => {
    const first = new HealthServer(true);
    first.statuses.set('', 1);
    await first.listen();
    const port = first.port;
    const ch = new GrpcHealthChannels(500);
    const again = new HealthServer(true);
    again.statuses.set('', 1);
    try {
      expect(await ch.check(spec(port))).toMatchObject({ ok: true });
      first.kill();
      const down = await waitFor('a failed check', () => ch.check(spec(port)), (r) => !r.ok, { timeoutMs: 5000, intervalMs: 50 });
      expect(down.reason).toMatch(/^gRPC UNAVAILABLE/);
      expect(down.reason).not.toMatch(/Resolution note/);
      await again.listen(port);
      const back = Date.now();
      // The checker would ask once per interval; the channel's backoff is capped at 500 ms here.
      await waitFor('a passing check on the same channel', () => ch.check(spec(port)), (r) => r.ok, { timeoutMs: 500 + 3000, intervalMs: 100 });
      expect(Date.now() - back).toBeLessThan(500 + 3000);
      expect(ch.size).toBe(1);
    } finally {
      ch.close();
      first.kill();
      again.kill();
    }
  });

  it('reuses one connection per endpoint across rounds and closes it when the endpoint goes away', async () => {
    const ch = new GrpcHealthChannels();
    const before = relay.opened;
    const checksBefore = healthy.checks;
    for (let round = 0; round < 5; round++) expect(await ch.check(spec(relay.port))).toMatchObject({ ok: true });
    expect(healthy.checks - checksBefore).toBe(5);
    expect(relay.opened - before).toBe(1);
    expect(ch.size).toBe(1);
    // Still checked: kept. Gone: its channel is closed and its connection with it.
    expect(ch.retain(new Set([GrpcHealthChannels.key(spec(relay.port))]))).toBe(0);
    expect(relay.open.size).toBe(1);
    expect(ch.retain(new Set())).toBe(1);
    expect(ch.size).toBe(0);
    await waitFor('the connection closes', async () => relay.open.size, (n) => n === 0, { timeoutMs: 5000, intervalMs: 20 });
  });
});
