#!/usr/bin/env node
/**
 * A pilot wired into the control plane: packages/pilot's `startPilot` with the dispatcher as its
 * MeshSource and a meta server membership (register, heartbeat with the connected sidecars,
 * deregister on SIGTERM). Takes every pilot flag plus `--dispatcher host:port` and
 * `--meta-address host:port`.
 *
 * Interim: when pilot's own main takes a dispatcher and a meta server, the embedded runner
 * should start that instead and this file goes away.
 */
import { DispatcherConnection, DispatcherMeshSource } from '@octo-mesh/dispatcher';
import { PilotMembership } from '@octo-mesh/meta-server/client.js';
import { pilotConfig, startPilot } from '@octo-mesh/pilot';
import { ConfigError, GracefulShutdown, createLogger, loadConfig, parseFlags } from '@octo-mesh/runtime';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const own = parseFlags(argv);
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--dispatcher' || argv[i] === '--meta-address') i++;
    else if (argv[i]!.startsWith('--dispatcher=') || argv[i]!.startsWith('--meta-address=')) continue;
    else rest.push(argv[i]!);
  }
  const dispatcher = own['dispatcher'];
  const metaAddress = own['metaAddress'];
  let config;
  try {
    if (!dispatcher) throw new ConfigError('invalid configuration', [{ path: 'dispatcher', message: 'required (flag --dispatcher host:port)' }]);
    config = loadConfig(pilotConfig, { envPrefix: 'OCTO_PILOT_', argv: rest });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-pilot: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('pilot', config.logLevel).child({ pilotId: config.pilotId });
  const connection = new DispatcherConnection(dispatcher);
  const source = new DispatcherMeshSource({ connection, clientId: config.pilotId, logger });
  const running = await startPilot(config, logger, source);
  const shutdown = new GracefulShutdown({ logger, timeoutMs: (config.shutdownGraceSeconds + 5) * 1000 }).install();
  shutdown.add('pilot', () => running.stop());
  shutdown.add('dispatcher connection', () => connection.close());
  if (metaAddress) {
    const host = config.xdsHost === '0.0.0.0' ? '127.0.0.1' : config.xdsHost;
    const adminHost = config.adminHost === '0.0.0.0' ? '127.0.0.1' : config.adminHost;
    const membership = new PilotMembership({
      metaAddress,
      pilotId: config.pilotId,
      xdsAddress: `${host}:${running.xdsPort}`,
      adminAddress: `${adminHost}:${running.admin.port}`,
      // The meta server knows each node's workload from its Locate call.
      sidecars: () => running.pilot.describe().nodes.map((n) => ({ nodeId: n.id, namespace: '', workload: '' })),
      onShed: (ids) => logger.warn('asked to shed sidecars; they move when their stream next breaks', { sidecars: ids }),
      logger,
    });
    membership.start();
    // Deregister first (registered last): sidecars are sent elsewhere before the streams end.
    shutdown.add('meta server membership', () => membership.stop());
  }
  logger.info('listening', { xdsPort: running.xdsPort, adminPort: running.admin.port, dispatcher, metaAddress });
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-pilot: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
