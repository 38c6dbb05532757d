import { afterEach, describe, expect, it } from '@jest/globals';
import { status, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { MetaServerService, type LocateRequest, type LocateResponse } from '@octo-mesh/proto';
import { startGrpcServer, type StartedGrpc } from './grpc-server.js';
import { heartbeatPause, locateAttemptMs, locatePilot } from './meta.js';

describe('heartbeatPause', () => {
  it.each([
    // [interval, the last heartbeat took, pause]
    [1000, 0, 1000],
    [1000, 300, 700],
    [1000, 950, 100],
    [1000, 2500, 100], // answered later than the interval: the next at once (a tenth of it)
    [1000, -5, 1000], // a clock step backwards does not lengthen the period
  ])('interval %d ms, took %d ms → pause %d ms', (interval, took, want) => {
    expect(heartbeatPause(interval, took)).toBe(want);
  });
});

describe('locateAttemptMs', () => {
  it.each([
    // [attempt, time left, deadline of this attempt]
    [0, Infinity, 2000],
    [1, Infinity, 4000],
    [2, Infinity, 8000],
    [5, Infinity, 8000],
    [1, 3000, 3000], // never past the caller's overall deadline
    [0, 0, 1],
  ])('attempt %d with %d ms left → %d ms', (attempt, left, want) => {
    expect(locateAttemptMs(attempt, left)).toBe(want);
  });
});

describe('locatePilot against a slow meta server', () => {
  let server: StartedGrpc | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  // A meta server that answers every Locate after 2.5 s (busy, not down): a fixed 2 s deadline
  // per attempt cancelled every call and retried into the same queue until the caller gave up.
  it('is answered: each retry waits longer than the last', async () => {
    let calls = 0;
    server = await startGrpcServer('127.0.0.1', 0, (s) =>
      s.addService(MetaServerService, {
        locate(_call: ServerUnaryCall<LocateRequest, LocateResponse>, cb: sendUnaryData<LocateResponse>) {
          calls++;
          setTimeout(() => cb(null, { pilotId: 'pilot-a', xdsAddress: '127.0.0.1:1' }), 2500);
        },
      } as never),
    );
    const r = await locatePilot({ metaAddress: `127.0.0.1:${server.port}`, nodeId: 'n', namespace: 'demo', workload: 'w', timeoutMs: 15_000 });
    expect(r).toEqual({ pilotId: 'pilot-a', xdsAddress: '127.0.0.1:1' });
    expect(calls).toBe(2);
  }, 30_000);

  it('gives up at the caller’s deadline with the last error', async () => {
    server = await startGrpcServer('127.0.0.1', 0, (s) =>
      s.addService(MetaServerService, {
        locate(_call: unknown, cb: sendUnaryData<LocateResponse>) {
          cb({ code: status.UNAVAILABLE, details: 'no live pilot' });
        },
      } as never),
    );
    await expect(locatePilot({ metaAddress: `127.0.0.1:${server.port}`, nodeId: 'n', namespace: 'demo', workload: 'w', timeoutMs: 500 })).rejects.toMatchObject({ code: status.UNAVAILABLE, details: 'no live pilot' });
  }, 10_000);

  // The attempt the caller's deadline cuts short ends in DEADLINE_EXCEEDED; the error reported is
  // the failure that made it retry (CI once saw a 1 ms last attempt report "Deadline exceeded").
  it('reports the failure that made it retry, not the deadline of an attempt the caller cut short', async () => {
    let calls = 0;
    server = await startGrpcServer('127.0.0.1', 0, (s) =>
      s.addService(MetaServerService, {
        locate(_call: unknown, cb: sendUnaryData<LocateResponse>) {
          if (++calls === 1) cb({ code: status.UNAVAILABLE, details: 'no live pilot' });
          // later calls are never answered: the caller's 600 ms deadline cuts the second attempt
        },
      } as never),
    );
    await expect(locatePilot({ metaAddress: `127.0.0.1:${server.port}`, nodeId: 'n', namespace: 'demo', workload: 'w', timeoutMs: 600 })).rejects.toMatchObject({ code: status.UNAVAILABLE, details: 'no live pilot' });
    expect(calls).toBe(2);
  }, 10_000);
});
