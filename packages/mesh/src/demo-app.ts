#!/usr/bin/env node
/**
 * A demo service of the embedded mesh: a tiny node:http app that answers with who it is and,
 * for `frontend`, with what its dependencies answered — called through its sidecar's outbound
 * listener, so every hop is routed by the mesh. It registers itself (with its sidecar's inbound
 * port as the endpoint) in the meta server's service registry, the path for workloads outside
 * Kubernetes. With `--socket` it listens on a Unix socket instead of a port, and with
 * `--outbound-socket` it calls out through its sidecar's outbound Unix socket (OCTO's app ↔
 * sidecar path); every reply says which way the request reached it (`via`).
 */
import { rmSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { RegisteredInstance } from '@octo-mesh/clients';
import { ConfigError, GracefulShutdown, createLogger, loadConfig } from '@octo-mesh/runtime';

export const demoAppConfig = z
  .object({
    service: z.string().min(1),
    version: z.string().min(1),
    namespace: z.string().default('demo'),
    instanceId: z.string().min(1),
    /** The port to listen on (127.0.0.1); or give `socket`. */
    port: z.coerce.number().int().min(0).max(65535).optional(),
    /** The Unix socket path to listen on instead of a port. */
    socket: z.string().startsWith('/', 'must be an absolute path').optional(),
    /** Services called through the sidecar, comma-separated. */
    calls: z.string().default(''),
    /** host:port of the sidecar's outbound listener. */
    outbound: z.string().optional(),
    /** The sidecar's outbound Unix socket: calls go through it instead of `outbound`. */
    outboundSocket: z.string().startsWith('/', 'must be an absolute path').optional(),
    metaAddress: z.string().optional(),
    /** The port peers reach this instance on (its sidecar's inbound listener). */
    endpointPort: z.coerce.number().int().min(1).max(65535).optional(),
    servicePort: z.coerce.number().int().min(1).max(65535).default(8080),
    /** Its sidecar's certificate directory: the registration is made as the workload, over mTLS. */
    tlsDir: z.string().min(1).optional(),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('warn'),
  })
  .strict()
  .refine((c) => (c.port === undefined) !== (c.socket === undefined), { message: 'give port or socket (one of them)', path: ['socket'] });

export type DemoAppConfig = z.infer<typeof demoAppConfig>;

/** What a demo app answers: itself, and the answers of the services it called. */
export interface DemoReply {
  service: string;
  version: string;
  instance: string;
  /** How the request reached the app: `unix:<path>` (its Unix socket) or `tcp:<port>`. */
  via?: string;
  /** How it calls out: `unix:<path>` (its sidecar's outbound Unix socket) or `tcp:<host:port>`. */
  outbound?: string;
  calls?: Record<string, DemoReply | { error: string }>;
}

/** Where calls out go: the sidecar's outbound listener, as a TCP address or a Unix socket path. */
type Outbound = { socketPath: string } | { host: string; port: number };

function call(outbound: Outbound, host: string, timeoutMs: number): Promise<DemoReply> {
  return new Promise((resolve, reject) => {
    const req = request({ ...outbound, path: '/', headers: { host }, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${host}: HTTP ${res.statusCode} ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body) as DemoReply);
        } catch {
          reject(new Error(`${host}: not JSON: ${body.slice(0, 200)}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${host}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

async function main(): Promise<void> {
  let cfg: DemoAppConfig;
  try {
    cfg = loadConfig(demoAppConfig, { envPrefix: 'OCTO_DEMO_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`demo-app: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(`demo-${cfg.service}`, cfg.logLevel);
  const calls = cfg.calls.split(',').map((s) => s.trim()).filter(Boolean);
  const [outHost, outPort] = (cfg.outbound ?? '127.0.0.1:15001').split(':');
  const outbound: Outbound = cfg.outboundSocket ? { socketPath: cfg.outboundSocket } : { host: outHost!, port: Number(outPort) };
  const outboundVia = cfg.outboundSocket ? `unix:${cfg.outboundSocket}` : `tcp:${outHost}:${outPort}`;
  let via = '';
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    const reply: DemoReply = { service: cfg.service, version: cfg.version, instance: cfg.instanceId, via, ...(calls.length ? { outbound: outboundVia } : {}) };
    let status = 200;
    if (calls.length) {
      reply.calls = {};
      await Promise.all(
        calls.map(async (dep) => {
          try {
            reply.calls![dep] = await call(outbound, `${dep}.${cfg.namespace}.svc:${cfg.servicePort}`, 3000);
          } catch (err) {
            status = 502;
            reply.calls![dep] = { error: (err as Error).message };
          }
        }),
      );
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply));
  };
  const server = createServer((req, res) => void handle(req, res));
  if (cfg.socket) {
    const path = cfg.socket;
    rmSync(path, { force: true }); // a socket file left by a previous run of this instance
    await new Promise<void>((resolve) => server.listen(path, resolve));
    via = `unix:${path}`;
  } else {
    await new Promise<void>((resolve) => server.listen(cfg.port, '127.0.0.1', resolve));
    via = `tcp:${(server.address() as { port: number }).port}`;
  }
  const shutdown = new GracefulShutdown({ logger, timeoutMs: 5000 }).install();
  shutdown.add('http server', () => new Promise<void>((r) => server.close(() => r())));
  if (cfg.metaAddress && cfg.endpointPort) {
    const reg = new RegisteredInstance({
      metaAddress: cfg.metaAddress,
      ...(cfg.tlsDir ? { tls: { certDir: cfg.tlsDir } } : {}),
      namespace: cfg.namespace,
      service: cfg.service,
      instanceId: cfg.instanceId,
      address: '127.0.0.1',
      port: cfg.endpointPort,
      labels: { app: cfg.service, version: cfg.version },
      servicePort: cfg.servicePort,
      ttlMs: 3000,
      logger,
    });
    reg.start();
    shutdown.add('registration', () => reg.stop());
  }
  logger.warn('listening', { via, service: cfg.service, version: cfg.version });
  process.send?.({ type: 'octo.demo.started', via });
}

void main();
