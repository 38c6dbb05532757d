/**
 * One active check of one endpoint over a real socket: HTTP (a GET of the policy's path, healthy
 * when the status is expected) or TCP (healthy when a connection opens). Every probe ends within
 * its timeout and never throws: the result says why it failed.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { httpCheckHealthy } from '@octo-mesh/contracts/endpoint-health.js';

export interface ProbeSpec {
  address: string;
  port: number;
  timeoutMs: number;
  /** HTTP: the path and the Host header (the service's host); absent = TCP. */
  http?: { path: string; host: string; expectedStatuses?: readonly number[] };
}

export interface ProbeResult {
  ok: boolean;
  /** Why it failed (`HTTP 503`, `timeout after 1000 ms`, `ECONNREFUSED`). */
  reason?: string;
  ms: number;
}

export function probe(spec: ProbeSpec): Promise<ProbeResult> {
  const started = performance.now();
  const done = (ok: boolean, reason?: string): ProbeResult => ({ ok, ...(reason ? { reason } : {}), ms: Math.round(performance.now() - started) });
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const finish = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      finish(done(false, `timeout after ${spec.timeoutMs} ms`));
      cleanup();
    }, spec.timeoutMs);
    let cleanup = () => {};
    if (!spec.http) {
      const sock = connect({ host: spec.address, port: spec.port });
      cleanup = () => sock.destroy();
      sock.once('connect', () => (finish(done(true)), sock.destroy()));
      sock.once('error', (err: NodeJS.ErrnoException) => (finish(done(false, err.code ?? err.message)), sock.destroy()));
      return;
    }
    const http = spec.http;
    const req = request({
      host: spec.address,
      port: spec.port,
      path: http.path,
      method: 'GET',
      agent: false,
      headers: { host: http.host, 'user-agent': 'octo-health-checker', connection: 'close' },
    });
    cleanup = () => req.destroy();
    req.once('response', (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      finish(httpCheckHealthy(code, http.expectedStatuses) ? done(true) : done(false, `HTTP ${code}`));
      req.destroy();
    });
    req.once('error', (err: NodeJS.ErrnoException) => finish(done(false, err.code ?? err.message)));
    req.end();
  });
}
