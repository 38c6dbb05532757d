import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Registry } from 'prom-client';
import { httpStatusOf } from './errors.js';
import { processFailure } from './process-errors.js';

// node:http as its CommonJS object, not an ESM import: an ESM import of node:http makes Node 24
// load undici through its lazy WebSocket getters (~5 MB RSS in every process; lego-agent/src/admin.ts).
const { createServer } = process.getBuiltinModule('node:http');

/** A readiness check: resolves to true when ready, or to a reason string when not. */
export type ReadinessCheck = () => boolean | string | Promise<boolean | string>;

/**
 * Handles one debug route. Return a value to answer it as JSON (a string is sent as text/plain);
 * throw an OctoError to answer with its mapped HTTP status.
 */
export type RouteHandler = (req: IncomingMessage, url: URL) => unknown | Promise<unknown>;

/** What the admin server knows of a caller on its HTTPS port (the TLS layer's verdict on its certificate). */
export interface AdminTlsPeer {
  /** The client presented a certificate that chains to `ca`. */
  authorized: boolean;
  /** Why it is not authorized (no certificate, unknown issuer, expired …). */
  authorizationError?: string;
  /** The verified certificate's subjectAltName as Node prints it (`URI:spiffe://…`). */
  subjectAltName?: string;
}

/** PEM material of the admin port's TLS: our chain and key, and the roots client certificates must chain to. */
export interface AdminTlsMaterial {
  key: string;
  cert: string;
  ca: string;
}

/**
 * HTTPS on the admin port. `/healthz`, `/readyz` and `/metrics` stay open to any TLS client
 * (probes, Prometheus); every other route is answered only when `authorize` says so.
 */
export interface AdminTls {
  /** The current material; undefined keeps what is in use (unchanged, or unreadable — the caller logs that). */
  material(): AdminTlsMaterial | undefined;
  /** How often `material` is asked for a rotated certificate (default 5 s); new connections use it. */
  refreshMs?: number;
  authorize(peer: AdminTlsPeer, path: string): true | { status: 401 | 403; reason: string };
}

export interface AdminServerOptions {
  host?: string;
  /** 0 picks a free port (see `port` on the result). */
  port: number;
  registry: Registry;
  /** All must pass for /readyz to answer 200; each failing check is named in the body. */
  readiness?: Record<string, ReadinessCheck>;
  /** Extra GET routes by exact path, e.g. debug APIs. */
  routes?: Record<string, RouteHandler>;
  /** Serve HTTPS, with the debug routes behind `tls.authorize`; plain HTTP without it. */
  tls?: AdminTls;
}

export interface AdminServer {
  readonly port: number;
  readonly server: Server;
  /** Adds (or replaces) a GET route after start. */
  route(path: string, handler: RouteHandler): void;
  close(): Promise<void>;
}

/**
 * The HTTP endpoint every long-running component exposes: `/healthz` (the process serves),
 * `/readyz` (its readiness checks pass, and the process has not failed — `processFailure`), `/metrics` (Prometheus text format) and debug routes.
 */
export async function startAdminServer(opts: AdminServerOptions): Promise<AdminServer> {
  const routes = new Map<string, RouteHandler>(Object.entries(opts.routes ?? {}));
  const send = (res: ServerResponse, status: number, body: unknown, type?: string) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body, null, 2);
    res.writeHead(status, { 'content-type': type ?? (typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json') });
    res.end(text);
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      if (url.pathname === '/healthz') return send(res, 200, 'ok\n');
      if (url.pathname === '/readyz') {
        const failing: string[] = [];
        const fatal = processFailure();
        if (fatal) failing.push(`process: ${fatal}`);
        for (const [name, check] of Object.entries(opts.readiness ?? {})) {
          const r = await check();
          if (r !== true) failing.push(`${name}: ${r === false ? 'not ready' : r}`);
        }
        return failing.length ? send(res, 503, `not ready\n${failing.join('\n')}\n`) : send(res, 200, 'ok\n');
      }
      if (url.pathname === '/metrics') return send(res, 200, await opts.registry.metrics(), opts.registry.contentType);
      if (opts.tls) {
        const socket = req.socket as TLSSocket;
        const peer: AdminTlsPeer = { authorized: socket.authorized };
        if (socket.authorizationError) peer.authorizationError = String(socket.authorizationError);
        if (socket.authorized) {
          const san = socket.getPeerCertificate().subjectaltname;
          if (san) peer.subjectAltName = san;
        }
        const verdict = opts.tls.authorize(peer, url.pathname);
        if (verdict !== true) return send(res, verdict.status, { error: verdict.reason });
      }
      const handler = routes.get(url.pathname);
      if (!handler) return send(res, 404, { error: `no route ${url.pathname}` });
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: `${req.method} not allowed` });
      return send(res, 200, await handler(req, url));
    } catch (err) {
      return send(res, httpStatusOf(err), { error: (err as Error).message });
    }
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => void handle(req, res);
  let server: Server;
  let refresh: NodeJS.Timeout | undefined;
  if (opts.tls) {
    const tls = opts.tls;
    const first = tls.material();
    if (!first) throw new Error('admin server: no TLS certificate to serve yet');
    // Client certificates are asked for, not required: probes and Prometheus present none.
    server = process.getBuiltinModule('node:https').createServer({ ...first, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, onRequest);
    refresh = setInterval(() => {
      const next = tls.material();
      if (next) (server as import('node:https').Server).setSecureContext({ ...next, minVersion: 'TLSv1.2' });
    }, tls.refreshMs ?? 5000);
    refresh.unref();
  } else {
    server = createServer(onRequest);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    server,
    route: (path, handler) => void routes.set(path, handler),
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(refresh);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
