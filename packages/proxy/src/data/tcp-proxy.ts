import net from 'node:net';
import type tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from '@octo-mesh/runtime';
import type { TcpFilterChain } from '../model.js';
import type { ClusterManager, ClusterRuntime } from './cluster-manager.js';
import { TLS_HANDSHAKE_ALLOWANCE_MS, tlsFailure } from './tls.js';
import { AttemptError } from './upstream.js';
import { matchRoute, pickWeighted, selectVirtualHost } from './router.js';
import type { HttpContext } from './http-proxy.js';
import type { ProxyStats } from '../stats.js';
import type { Host } from './load-balancer.js';
import { DOWNSTREAM_READ_BUFFER, readDirect } from './lean-http.js';
import { deadline } from './timer-list.js';

/** One read buffer for every upstream TCP/upgrade connection; each read is copied out at once. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Connects to `h`; everything the host sends goes straight to `to` (from the start: a server may
 * speak first). Reads skip the Readable machinery (`onread`): each one is copied out of the
 * shared buffer and written, and a full `to` stops reading until it drains.
 */
function connectTo(h: Host, timeoutMs: number, to: Duplex): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const a = h.address;
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number, buf: Buffer): boolean => {
        if (to.destroyed) return true;
        const chunk = Buffer.allocUnsafe(n);
        buf.copy(chunk, 0, 0, n);
        if (to.write(chunk)) return true;
        to.once('drain', () => s.resume());
        return false;
      },
    };
    // Half-open: the host's FIN is passed on (see `splice`) while bytes still flow to it.
    const s = a.kind === 'tcp' ? net.connect({ host: a.host, port: a.port, noDelay: true, allowHalfOpen: true, onread }) : net.connect({ path: a.path, allowHalfOpen: true, onread });
    const t = deadline(timeoutMs, () => s.destroy(new Error('connect timeout')));
    s.once('connect', () => {
      t.cancel();
      resolve(s);
    });
    s.once('error', (e) => {
      t.cancel();
      reject(e);
    });
  });
}

/**
 * `connectTo` for a cluster with a TLS transport socket: the connection is made by the cluster
 * (ClusterRuntime.tlsConnect, the HTTP path's TLS: its SNI, trust bundle, SAN matchers and client
 * certificate, the handshake counted by result) and is ready once the handshake is done, within
 * the connect timeout plus the TLS allowance. ALPN offers what the context lists (Envoy's
 * tcp_proxy: no HTTP layer to choose). What the host sends goes to `to` from then on. A refused
 * handshake rejects with its reason (`AttemptError.reason`, e.g. `upstream-tls-fail-verify-san`).
 */
function tlsConnectTo(c: ClusterRuntime, h: Host, to: Duplex): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    let s: tls.TLSSocket;
    try {
      s = c.tlsConnect(h.address, c.model.tls!.alpn, { allowHalfOpen: true })!;
    } catch (err) {
      return reject(err);
    }
    const t = deadline(c.model.connectTimeoutMs + TLS_HANDSHAKE_ALLOWANCE_MS, () => s.destroy(new AttemptError('connect-failure', 'upstream connect timeout (TCP and TLS handshake)')));
    s.once('secureConnect', () => {
      t.cancel();
      s.on('data', (chunk: Buffer) => {
        if (to.destroyed || to.write(chunk)) return;
        s.pause();
        to.once('drain', () => s.resume());
      });
      resolve(s);
    });
    s.once('error', (e) => {
      t.cancel();
      reject(tlsFailure(s) ?? e);
    });
  });
}

/**
 * Holds a downstream connection until it is spliced: no bytes are consumed, and the client's
 * half-close does not close it (bytes and a FIN sent before the upstream connects stay buffered
 * in the socket, in order, for `splice`). Call before the first await.
 */
function hold(down: Duplex): void {
  down.pause();
  down.allowHalfOpen = true;
}

/**
 * Splices a downstream socket (held by `hold`) to an upstream one made by `connectTo` (which
 * already forwards upstream → downstream). Bytes that arrived before are delivered first. A FIN
 * is passed on after the bytes before it (half-close: the other direction keeps flowing until
 * its side ends too). An error, a reset or a local destroy of either side destroys both; a side
 * that closes cleanly (both directions ended) leaves the other to finish writing and close.
 */
function splice(down: Duplex, up: net.Socket, idleMs = 0): void {
  // Bytes read before the splice (or every read, when direct reading is unavailable) come as `data`.
  down.on('data', (c: Buffer) => {
    if (!up.write(c)) {
      down.pause();
      up.once('drain', () => down.resume());
    }
  });
  if (down instanceof net.Socket)
    readDirect(down, DOWNSTREAM_READ_BUFFER, (n, buf) => {
      const chunk = Buffer.allocUnsafe(n);
      buf.copy(chunk, 0, 0, n);
      if (up.write(chunk)) return true;
      up.once('drain', () => down.resume());
      return false;
    });
  // `end` comes after the last `data`: the FIN follows the bytes it came after.
  if (down.readableEnded) up.end();
  else down.once('end', () => up.end());
  if (up.readableEnded) down.end();
  else up.once('end', () => down.end());
  const abort = () => {
    down.destroy();
    up.destroy();
  };
  const clean = (s: Duplex) => s.readableEnded && s.writableFinished;
  down.once('error', abort).once('close', () => {
    if (!clean(down)) up.destroy();
  });
  up.once('error', abort).once('close', () => {
    if (!clean(up)) down.destroy();
  });
  if (idleMs > 0 && down instanceof net.Socket) {
    down.setTimeout(idleMs, abort);
  }
  down.resume();
}

/** Plain TCP proxying of one downstream connection (the `tcp_proxy` network filter). */
export async function handleTcp(
  clusters: ClusterManager,
  stats: ProxyStats,
  listener: string,
  f: TcpFilterChain,
  down: net.Socket,
  random: () => number = Math.random,
  logger?: Logger,
): Promise<void> {
  hold(down);
  down.on('error', () => undefined);
  const total = f.clusters.reduce((s, c) => s + c.weight, 0);
  const name = pickWeighted(f.clusters, total, random());
  const c = clusters.get(name);
  stats.tcpConnections.inc({ listener, cluster: name });
  if (!c || c.overflow()) {
    down.destroy();
    return;
  }
  if (c.model.tls) {
    // A TLS cluster whose secrets are not there yet is warming: nothing is sent, least of all in cleartext.
    const why = c.tlsWarming();
    if (why) {
      stats.tlsHandshakes.inc({ side: 'upstream', result: 'warming' });
      logTcpFailure(logger, listener, name, undefined, `upstream TLS not ready: ${why}`);
      down.destroy();
      return;
    }
  }
  c.active++;
  down.once('close', () => c.active--);
  let prev: Host | undefined;
  for (let i = 0; i < f.maxConnectAttempts; i++) {
    const host = c.hosts.choose(undefined, prev);
    if (!host) break;
    prev = host;
    try {
      const up = c.model.tls ? await tlsConnectTo(c, host, down) : await connectTo(host, c.model.connectTimeoutMs, down);
      if (down.destroyed) {
        up.destroy();
        return;
      }
      c.report(host, 'success');
      host.active++;
      up.once('close', () => host.active--);
      splice(down, up, f.idleTimeoutMs);
      return;
    } catch (err) {
      // A failed TLS handshake is already counted by its reason (octo_proxy_tls_handshakes_total).
      c.report(host, 'local-failure');
      stats.tcpConnectFailures.inc({ listener, cluster: name, reason: err instanceof AttemptError && err.reason ? err.reason : 'upstream-connect-failure' });
      logTcpFailure(logger, listener, name, host.key, err instanceof Error ? err.message : String(err));
    }
  }
  down.destroy();
}

/** A TCP connection that could not reach its cluster, logged with where it was going. */
function logTcpFailure(logger: Logger | undefined, listener: string, cluster: string, host: string | undefined, error: string): void {
  logger?.warn('tcp_proxy: upstream connection failed', { listener, cluster, ...(host ? { host } : {}), error });
}

/**
 * HTTP/1.1 `Upgrade` (WebSocket and the like): routed like any request, then the handshake is
 * replayed to the chosen host and the two connections are spliced. The upgrade type must be
 * enabled on the listener (HCM `upgrade_configs`) or the route.
 */
export interface UpgradeRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawHeaders: readonly string[];
}

export async function handleUpgrade(ctx: HttpContext, listener: string, req: UpgradeRequest, socket: Duplex, head: Buffer): Promise<void> {
  const refuse = (status: number, reason: string) => {
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nx-octo-reason: ${reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    socket.resume(); // see the client's end (the lean server pauses an upgraded socket)
  };
  socket.on('error', () => undefined);
  hold(socket);
  const snap = ctx.snapshot();
  const l = snap.listeners.get(listener);
  if (!l || l.filter.kind !== 'http') return refuse(503, 'listener-not-configured');
  const table = l.filter.routeTable ?? (l.filter.rdsName ? snap.routeTables.get(l.filter.rdsName) : undefined);
  if (!table) return refuse(503, 'route-config-not-ready');
  const authority = String(req.headers['host'] ?? '');
  const vh = selectVirtualHost(table, authority);
  const route = vh && matchRoute(vh, { method: req.method ?? 'GET', path: req.url ?? '/', authority, headers: req.headers });
  if (!route) return refuse(404, 'no-route');
  if (route.action.kind !== 'cluster') return refuse(route.action.status, 'direct-response');
  const type = String(req.headers['upgrade'] ?? '').toLowerCase();
  const allowed = route.action.upgrades[type] ?? l.filter.upgrades.includes(type);
  if (!allowed) return refuse(403, 'upgrade-not-allowed');
  const name = pickWeighted(route.action.clusters, route.action.totalWeight, Math.random());
  const c = ctx.clusters.get(name);
  if (!c) return refuse(503, 'cluster-not-found');
  const host = c.hosts.choose();
  if (!host) return refuse(503, 'no-healthy-upstream');
  let up: net.Socket;
  try {
    up = await connectTo(host, c.model.connectTimeoutMs, socket);
  } catch {
    c.report(host, 'local-failure');
    return refuse(503, 'upstream-connect-failure');
  }
  let headText = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2) headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  up.write(headText + '\r\n');
  if (head.length) up.write(head);
  splice(socket, up);
}
