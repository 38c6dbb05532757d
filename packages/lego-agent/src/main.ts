#!/usr/bin/env node
import { watchFile } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, Counter, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig } from '@octo-mesh/runtime';
import { publicKeys } from '@octo-mesh/proxy-package/signing.js';
import { startAgentAdmin } from './admin.js';
import { LegoAgent } from './agent.js';
import { AgentConfigSchema, type AgentConfig } from './config.js';
import { ListeningSockets } from './sockets.js';
import { parseTarget, readTargetFile } from './target.js';

async function main(): Promise<void> {
  let cfg: AgentConfig;
  try {
    cfg = loadConfig(AgentConfigSchema, { envPrefix: 'OCTO_AGENT_' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`octo-lego-agent: ${err.message}\n`);
    process.exit(2);
  }
  const logger = createLogger('lego-agent', cfg.logLevel);
  const registry = createMetricsRegistry('lego-agent');
  const errors = new Counter({ name: 'octo_lego_main_errors_total', help: 'Errors caught in the agent process, by where.', labelNames: ['where'], registers: [registry] });
  let keys;
  try {
    keys = publicKeys(await Promise.all(cfg.trustedKeys.map((f) => readFile(f, 'utf8'))));
  } catch (err) {
    process.stderr.write(`octo-lego-agent: invalid configuration: trustedKeys: ${(err as Error).message}\n`);
    process.exit(2);
  }
  if (cfg.trustedKeys.length && keys.length === 0) {
    process.stderr.write('octo-lego-agent: invalid configuration: trustedKeys: no PEM public key in the files\n');
    process.exit(2);
  }

  // The sockets: bound once, held for the agent's life, handed to every proxy child.
  const sockets = new ListeningSockets();
  sockets.bindTcp('outbound', 'outbound', cfg.outboundHost, cfg.outboundPort);
  if (cfg.outboundSocket) sockets.bindUnix('outbound', 'outbound-unix', cfg.outboundSocket);
  sockets.bindTcp('inbound', 'inbound', cfg.inboundHost, cfg.inboundPort);

  // Every child's bootstrap: the proxy section, with the sockets from the agent and a private admin port.
  await mkdir(cfg.stateDir, { recursive: true });
  const bootstrapFile = join(cfg.stateDir, 'proxy-bootstrap.json');
  await writeFile(
    bootstrapFile,
    JSON.stringify({
      instanceId: cfg.instanceId,
      drainTimeoutMs: cfg.drainTimeoutMs,
      ...cfg.proxy,
      socketsFrom: 'parent',
      adminHost: '127.0.0.1',
      adminPort: 0,
      ...(cfg.outboundSocket ? { outboundSocket: cfg.outboundSocket } : {}),
    }),
  );

  const agent = new LegoAgent({ config: cfg, sockets, logger, registry, trustedKeys: keys, bootstrapFile });
  agent.onPilotTarget = (raw) => {
    try {
      agent.setTarget(parseTarget(raw), 'pilot');
    } catch (err) {
      errors.inc({ where: 'pilot-target' });
      logger.error('ignoring an upgrade target from the pilot', { error: (err as Error).message });
    }
  };
  const admin = await startAgentAdmin({ host: cfg.adminHost, port: cfg.adminPort, agent, registry, logger, onError: () => errors.inc({ where: 'admin' }) });
  new GracefulShutdown({ logger, timeoutMs: cfg.drainTimeoutMs + 10_000 })
    .add('sockets', () => sockets.close())
    .add('admin', () => admin.close())
    .add('proxy', () => agent.stop())
    .install();
  await agent.start();

  if (cfg.targetFile) {
    const file = cfg.targetFile;
    const read = async () => {
      try {
        agent.setTarget(await readTargetFile(file), `file ${file}`);
      } catch (err) {
        errors.inc({ where: 'target-file' });
        logger.warn('cannot read the target file; keeping the current target', { file, error: (err as Error).message });
      }
    };
    await read();
    watchFile(file, { interval: 100 }, () => void read());
  }
  logger.info('lego agent started', {
    admin: admin.port,
    sockets: sockets.held.map((s) => ({ id: s.id, address: s.address })),
    proxyPid: agent.childPid,
    running: agent.status.runningVersion,
  });
  process.send?.({ type: 'octo.agent.started', adminPort: admin.port, sockets: sockets.held.map((s) => ({ id: s.id, address: s.address })) });
}

main().catch((err: Error) => {
  process.stderr.write(`octo-lego-agent: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
