#!/usr/bin/env node
/**
 * `npm start`: runs the embedded mesh (see embedded.ts) and shows a live dashboard until Ctrl-C.
 * Flags: --ports fixed|auto (default fixed: the control plane on its well-known ports),
 * --rps 50, --pilots 2, --manifests examples/embedded, --state-dir .octo/embedded,
 * --log-level info (children), --quiet (no dashboard; for tests and CI), --security false (no
 * mesh CA, plaintext everywhere; default: every component and sidecar holds a certificate and
 * the control plane speaks mTLS).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ConfigError, GracefulShutdown, createLogger, loadConfig } from '@octo-mesh/runtime';
import { renderDashboard } from './dashboard.js';
import { EmbeddedMesh } from './embedded.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

const config = z
  .object({
    ports: z.enum(['fixed', 'auto']).default('fixed'),
    rps: z.coerce.number().min(0).max(5000).default(50),
    pilots: z.coerce.number().int().min(1).max(3).default(2),
    manifests: z.string().default(resolve(ROOT, 'examples/embedded')),
    stateDir: z.string().default(resolve(process.cwd(), '.octo/embedded')),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    quiet: z.enum(['true', 'false']).default('false'),
    security: z.enum(['true', 'false']).default('true'),
  })
  .strict();

async function main(): Promise<void> {
  let cfg: z.infer<typeof config>;
  try {
    cfg = loadConfig(config, { envPrefix: 'OCTO_EMBEDDED_' });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-mesh: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const quiet = cfg.quiet === 'true' || !process.stdout.isTTY;
  const logger = createLogger('embedded', quiet ? 'info' : 'warn');
  const mesh = new EmbeddedMesh({
    root: ROOT,
    manifests: resolve(cfg.manifests),
    stateDir: resolve(cfg.stateDir),
    fixedPorts: cfg.ports === 'fixed',
    pilots: cfg.pilots,
    rps: cfg.rps,
    logger,
    logLevel: cfg.logLevel,
    security: cfg.security === 'true',
  });
  const shutdown = new GracefulShutdown({ logger, timeoutMs: 30_000 }).install();
  shutdown.add('embedded mesh', () => mesh.stop());
  if (!quiet) process.stdout.write('Starting the embedded mesh (dispatcher, meta server, pilots, demo sidecars)...\n');
  try {
    await mesh.start();
  } catch (err) {
    process.stderr.write(`octo-mesh: ${(err as Error).message}\n`);
    await mesh.stop();
    process.exit(1);
  }
  logger.info('embedded mesh running', { state: mesh.state });
  const started = Date.now();
  const draw = () => {
    const t = mesh.traffic();
    const screen = renderDashboard({
      state: mesh.state,
      rates: new Map(Object.entries(t.rates)),
      requests: t.requests,
      failures: t.failures,
      pilotOf: new Map(Object.entries(t.pilots)),
      agents: new Map(Object.entries(t.agents)),
      exits: t.exits,
      uptimeS: (Date.now() - started) / 1000,
    });
    if (quiet) logger.info('traffic', { requests: t.requests, failures: t.failures, rates: t.rates, pilots: t.pilots });
    else process.stdout.write(`\x1b[2J\x1b[H${screen}`);
  };
  setInterval(draw, quiet ? 5000 : 1000).unref();
  draw();
}

void main();
