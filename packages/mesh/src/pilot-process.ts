#!/usr/bin/env node
/**
 * A pilot with a meta server membership: packages/pilot's `startPilot` (reading the dispatcher
 * at `--dispatcher-address`, its own flag) plus registration, heartbeats with the connected
 * sidecars, and deregistration on SIGTERM. Takes every pilot flag plus `--meta-address host:port`.
 *
 * Interim: when pilot's own main registers with the meta server, the embedded runner should
 * start that instead and this file goes away.
 */
import { PilotMembership } from '@octo-mesh/meta-server/client.js';
import { pilotConfig, startPilot } from '@octo-mesh/pilot';
import { ConfigError, GracefulShutdown, createLogger, loadConfig, parseFlags } from '@octo-mesh/runtime';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const metaAddress = parseFlags(argv)['metaAddress'];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--meta-address') i++;
    else if (!argv[i]!.startsWith('--meta-address=')) rest.push(argv[i]!);
  }
  let config;
  try {
    config = loadConfig(pilotConfig, { envPrefix: 'OCTO_PILOT_', argv: rest });
    if (!config.dispatcherAddress) throw new ConfigError('invalid configuration', [{ path: 'dispatcherAddress', message: 'required (flag --dispatcher-address host:port)' }]);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`octo-pilot: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger('pilot', config.logLevel).child({ pilotId: config.pilotId });
  const running = await startPilot(config, logger);
  const shutdown = new GracefulShutdown({ logger, timeoutMs: (config.shutdownGraceSeconds + 5) * 1000 }).install();
  shutdown.add('pilot', () => running.stop());
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
      onShed: (ids) => logger.info('asked to shed sidecars; their relays re-locate and move them', { sidecars: ids }),
      logger,
    });
    membership.start();
    // Deregister first (registered last): sidecars are sent elsewhere before the streams end.
    shutdown.add('meta server membership', () => membership.stop());
  }
  logger.info('listening', { xdsPort: running.xdsPort, adminPort: running.admin.port, dispatcher: config.dispatcherAddress, metaAddress });
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-pilot: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
