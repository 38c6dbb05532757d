#!/usr/bin/env node
import { constants, watchFile } from 'node:fs';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
// The runtime's modules one by one, not its index: the index also loads its admin server, whose
// ESM import of node:http costs ~16 MB RSS (see admin.ts), for an agent that has its own admin.
import { loadConfig } from '@octo-mesh/runtime/config.js';
import { ConfigError } from '@octo-mesh/runtime/errors.js';
import { createLogger } from '@octo-mesh/runtime/logger.js';
import { Counter, createMetricsRegistry } from '@octo-mesh/runtime/metrics.js';
import { GracefulShutdown } from '@octo-mesh/runtime/shutdown.js';
import { publicKeys } from '@octo-mesh/proxy-package/signing.js';
import { startAgentAdmin } from './admin.js';
import { LegoAgent } from './agent.js';
import { AgentConfigSchema, caSettings, type AgentConfig } from './config.js';
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
  // The CA's files are checked now, so a wrong path stops the agent naming the field (the token
  // is read again at each use: a projected token is rewritten by the kubelet).
  const ca = caSettings(cfg);
  let caTrustBundle: string[] = [];
  // The identity library (X.509, CSR, the CA client, the rotator) loads only with a CA: an
  // agent without one never uses it (issue 22, the sidecar's footprint).
  const idm = ca ? await import('./identity.js') : undefined;
  if (ca && idm) {
    const { parseTrustBundle, readTrustBundleFile } = idm;
    try {
      if (ca.caTrustBundleFile) caTrustBundle = await readTrustBundleFile(ca.caTrustBundleFile);
      else {
        try {
          caTrustBundle = parseTrustBundle(ca.caTrustBundle!);
        } catch (err) {
          throw new Error(`caTrustBundle: ${(err as Error).message}`);
        }
      }
      await access(ca.caTokenFile, constants.R_OK).catch((err: Error) => {
        throw new Error(`caTokenFile: cannot read ${ca.caTokenFile}: ${err.message}`);
      });
      await mkdir(ca.certDir, { recursive: true, mode: 0o700 });
      // It holds the private key: only the agent (and the proxy, same user) may read it.
      await chmod(ca.certDir, 0o700).catch((err: Error) => {
        throw new Error(`certDir: cannot make ${ca.certDir} private (0700): ${err.message}`);
      });
    } catch (err) {
      process.stderr.write(`octo-lego-agent: invalid configuration: ${(err as Error).message}\n`);
      process.exit(2);
    }
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

  const agent = new LegoAgent({ config: cfg, sockets, logger, registry, trustedKeys: keys, bootstrapFile, ...(ca && cfg.proxyTlsDir ? { tlsDir: ca.certDir } : {}) });
  const identity = ca && idm ? new idm.AgentIdentity({ settings: ca, trustBundle: caTrustBundle, logger, registry, onChange: (s) => agent.setIdentity(s) }) : undefined;
  if (identity) agent.setIdentity(identity.status);
  agent.onPilotTarget = (raw) => {
    try {
      agent.setTarget(parseTarget(raw), 'pilot');
    } catch (err) {
      errors.inc({ where: 'pilot-target' });
      logger.error('ignoring an upgrade target from the pilot', { error: (err as Error).message });
    }
  };
  const admin = await startAgentAdmin({ host: cfg.adminHost, port: cfg.adminPort, agent, registry, logger, onError: () => errors.inc({ where: 'admin' }), ...(identity ? { identity } : {}) });
  const shutdown = new GracefulShutdown({ logger, timeoutMs: cfg.drainTimeoutMs + 10_000 })
    .add('sockets', () => sockets.close())
    .add('admin', () => admin.close());
  if (identity) shutdown.add('identity', () => identity.stop());
  shutdown.add('proxy', () => agent.stop()).install();
  if (identity && ca) {
    // The first proxy starts with its certificate in place when the CA answers within
    // certWaitMs; past that it starts without one (plaintext service goes on; the proxy picks the
    // files up when they appear) and /readyz says why the agent is not ready.
    identity.start();
    if (await identity.waitFirst(ca.certWaitMs)) logger.info('workload certificate obtained', { ...identity.status, certDir: ca.certDir });
    else logger.warn('no workload certificate within certWaitMs; starting the proxy without one, not ready until one arrives', { certWaitMs: ca.certWaitMs, caUrl: ca.caUrl, reason: identity.notReady() });
  }
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
