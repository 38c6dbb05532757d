import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TcpFilterChain } from '../model.js';
import type { ClusterManager } from './cluster-manager.js';
import { matchRoute, pickWeighted, selectVirtualHost } from './router.js';
import type { HttpContext } from './http-proxy.js';
import type { ProxyStats } from '../stats.js';
import type { Host } from './load-balancer.js';
import { DOWNSTREAM_READ_BUFFER, readDirect } from './lean-http.js';

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
    const t = setTimeout(() => s.destroy(new Error('connect timeout')), timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(e);
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
    // TCP proxying does not originate TLS: refused (counted) rather than sent in cleartext to a peer expecting TLS.
    stats.tlsHandshakes.inc({ side: 'upstream', result: 'tcp_proxy_not_implemented' });
    down.destroy();
    return;
  }
  c.active++;
  down.once('close', () => c.active--);
  let prev: Host | undefined;
  for (let i = 0; i < f.maxConnectAttempts; i++) {
    const host = c.hosts.choose(undefined, prev);
    if (!host) break;
    prev = host;
    try {
      const up = await connectTo(host, c.model.connectTimeoutMs, down);
      if (down.destroyed) {
        up.destroy();
        return;
      }
      c.report(host, 'success');
      host.active++;
      up.once('close', () => host.active--);
      splice(down, up, f.idleTimeoutMs);
      return;
    } catch {
      c.report(host, 'local-failure');
    }
  }
  down.destroy();
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
