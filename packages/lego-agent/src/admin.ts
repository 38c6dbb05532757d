import type { ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, type Logger, type Registry } from '@octo-mesh/runtime';
import type { LegoAgent } from './agent.js';

/**
 * node:http as its CommonJS object, not an ESM import: Node 24 builds an ESM facade of a built-in
 * by reading every export, and node:http's lazy `WebSocket`/`CloseEvent`/`MessageEvent` getters
 * then load undici — measured +16 MB RSS (+7 MB anonymous) and ~70 ms of CPU for a process that
 * never uses them (issue 22). Every ESM `import … from 'node:http'` in the process triggers it,
 * so the agent has none.
 */
const http = process.getBuiltinModule('node:http');

/**
 * What any peer may read on the agent's admin port: probes, status and metrics (kubelet,
 * Prometheus, tools). The rest — the proxy's `/config_dump` (every route, cluster and secret
 * name the sidecar holds), `/clusters`, every POST — is for the pod itself: in Kubernetes the
 * port binds the pod IP for the kubelet, so those answer loopback peers only (`kubectl
 * port-forward` and `kubectl exec` arrive on loopback). Pure, for the tests' tables.
 */
const OPEN_PATHS = new Set(['/healthz', '/readyz', '/status', '/metrics', '/ready', '/stats/prometheus']);
const isLoopback = (address: string | undefined) => !!address && (address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.'));
export function agentAdminAccess(method: string | undefined, path: string, remoteAddress: string | undefined): true | string {
  if (isLoopback(remoteAddress)) return true;
  if (OPEN_PATHS.has(path) && (method === 'GET' || method === 'HEAD')) return true;
  return `${method ?? 'GET'} ${path} answers only on the pod's loopback (kubectl port-forward or exec); from ${remoteAddress ?? 'an unknown peer'} only ${[...OPEN_PATHS].join(', ')} (GET)`;
}

/**
 * The agent's admin endpoint, stable across swaps (default 15000, the proxy admin port users
 * know): its own `/healthz`, `/readyz` (200 while a proxy child serves and is ready and, with a
 * CA configured, a certificate valid now is held; else 503 with the reasons), `/metrics`,
 * `/status` (AgentStatus JSON), `/proxy` (`{pid, adminPort, version}` of the serving child); every other path is proxied to the serving child's admin (which
 * listens on 127.0.0.1 at a port of its own): `/ready`, `/config_dump`, `/clusters`, `/stats`, …
 * Peers outside the pod get only what {@link agentAdminAccess} opens to them.
 */
export async function startAgentAdmin(opts: {
  host: string;
  port: number;
  agent: LegoAgent;
  registry: Registry;
  logger: Logger;
  onError: () => void;
  /** The workload certificate (with a CA): null when a valid one is held, else why not. */
  identity?: { notReady(): string | null };
}): Promise<{ port: number; close(): Promise<void> }> {
  const { agent, registry, logger } = opts;
  const refused = new Counter({ name: 'octo_agent_admin_refused_total', help: 'Admin requests refused because they came from outside the pod for a loopback-only path.', registers: [registry] });
  const send = (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://admin').pathname;
    const access = agentAdminAccess(req.method, path, req.socket.remoteAddress);
    if (access !== true) {
      refused.inc();
      logger.warn('admin request refused', { path, method: req.method, peer: req.socket.remoteAddress });
      return send(res, 403, `${access}\n`);
    }
    if (path === '/healthz') return send(res, 200, 'ok\n');
    if (path === '/readyz') {
      const reasons: string[] = [];
      if (!agent.status.ready) reasons.push(`proxy: ${agent.status.phase === 'Idle' ? (agent.childPid ? 'not ready' : 'not started') : agent.status.phase}`);
      const identity = opts.identity?.notReady();
      if (identity) reasons.push(`identity: ${identity}`);
      return reasons.length ? send(res, 503, `not ready\n${reasons.join('\n')}\n`) : send(res, 200, 'ok\n');
    }
    if (path === '/status') return send(res, 200, `${JSON.stringify(agent.status, null, 2)}\n`, 'application/json');
    // Not part of the status contract: which process serves now (for operators and tests).
    if (path === '/proxy') return send(res, 200, `${JSON.stringify({ pid: agent.childPid ?? null, adminPort: agent.childAdminPort ?? null, version: agent.status.runningVersion })}\n`, 'application/json');
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => send(res, 200, text, registry.contentType),
        (err: Error) => {
          opts.onError();
          logger.error('metrics failed', { error: err.message });
          send(res, 500, err.message);
        },
      );
      return;
    }
    const port = agent.childAdminPort;
    if (!port) return send(res, 503, 'no proxy is serving\n');
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (err) => {
      opts.onError();
      logger.warn('proxy admin unreachable', { path, port, error: err.message });
      if (!res.headersSent) send(res, 502, `proxy admin unreachable: ${err.message}\n`);
      else res.destroy();
    });
    req.pipe(up);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
