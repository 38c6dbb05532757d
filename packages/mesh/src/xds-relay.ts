import { connect, createServer, type Server, type Socket } from 'node:net';
import { locatePilot } from '@octo-mesh/meta-server/client.js';
import type { Logger } from '@octo-mesh/runtime';

export interface XdsRelayOptions {
  metaAddress: string;
  nodeId: string;
  namespace: string;
  workload: string;
  logger: Logger;
  /**
   * Ask the meta server this often whether the sidecar still belongs to its pilot; when it was
   * moved (rebalancing after a pilot joined), drop the connection so the proxy reconnects to the
   * new one — what a pilot does when told to shed a sidecar. 0 disables. Default 2000 ms.
   */
  recheckMs?: number;
}

/**
 * Gives a proxy that knows one fixed xDS address the meta server's "which pilot serves me?":
 * the proxy dials this relay on loopback, and each connection is forwarded (bytes, so HTTP/2 and
 * gRPC pass untouched) to the pilot the meta server names for the sidecar. When that pilot's end
 * breaks, the relay drops the proxy's connection too; the proxy reconnects with its own backoff,
 * and the relay asks the meta server again, naming the pilot it lost so it is not handed back.
 * Meanwhile the proxy keeps serving traffic on its last good config.
 *
 * Interim: the proxy itself should call Locate (`locatePilot` in @octo-mesh/meta-server);
 * until it does, the embedded mesh puts one relay in front of each sidecar.
 */
export class XdsRelay {
  private server: Server | undefined;
  private lost: string | undefined;
  private readonly sockets = new Set<Socket>();
  private recheck: NodeJS.Timeout | undefined;
  private current: Socket | undefined;
  private elsewhere = 0;
  /** The pilot the current (or last) connection goes to. */
  pilot: string | undefined;
  moves = 0;

  constructor(private readonly opts: XdsRelayOptions) {}

  /** Listens on 127.0.0.1:port (0 = any); resolves with the port. */
  async listen(port = 0): Promise<number> {
    this.server = createServer((down) => void this.relay(down));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, '127.0.0.1', resolve);
    });
    const every = this.opts.recheckMs ?? 2000;
    if (every > 0) this.recheck = setInterval(() => void this.checkAssignment(), every);
    return (this.server.address() as { port: number }).port;
  }

  /** Drops the connection when the meta server now assigns the sidecar to another live pilot. */
  private async checkAssignment(): Promise<void> {
    if (!this.current || this.current.destroyed || !this.pilot) return;
    try {
      const r = await locatePilot({ ...this.opts, timeoutMs: 1000 });
      // Twice in a row, so a meta server that just restarted (and has not yet adopted the
      // pilots' reported sidecars) does not cause a pointless move.
      this.elsewhere = r.pilotId !== this.pilot ? this.elsewhere + 1 : 0;
      if (this.elsewhere >= 2 && this.current && !this.current.destroyed) {
        this.elsewhere = 0;
        this.opts.logger.info('sidecar reassigned by the meta server; moving', { nodeId: this.opts.nodeId, from: this.pilot, to: r.pilotId });
        this.current.destroy();
      }
    } catch {
      // meta server unreachable: stay where we are
    }
  }

  private async relay(down: Socket): Promise<void> {
    const { logger, nodeId } = this.opts;
    this.sockets.add(down);
    down.on('close', () => this.sockets.delete(down));
    down.pause();
    let target: { pilotId: string; xdsAddress: string };
    try {
      target = await locatePilot({ ...this.opts, metaAddress: this.opts.metaAddress, ...(this.lost ? { unreachablePilotId: this.lost } : {}), timeoutMs: 3000 });
    } catch (err) {
      logger.warn('no pilot for sidecar yet', { nodeId, error: (err as Error).message });
      down.destroy();
      return;
    }
    if (down.destroyed) return;
    if (this.pilot !== undefined && this.pilot !== target.pilotId) {
      this.moves++;
      logger.info('sidecar moves to another pilot', { nodeId, from: this.pilot, to: target.pilotId });
    }
    this.pilot = target.pilotId;
    const [host, port] = target.xdsAddress.split(':');
    const up = connect({ host: host === '0.0.0.0' ? '127.0.0.1' : host!, port: Number(port) });
    this.sockets.add(up);
    let closing = false;
    const closeBoth = (why: string, lostPilot: boolean) => {
      if (closing) return;
      closing = true;
      if (lostPilot) this.lost = target.pilotId;
      logger.debug('xds relay connection closed', { nodeId, pilot: target.pilotId, why });
      up.destroy();
      down.destroy();
    };
    up.on('connect', () => {
      this.lost = undefined;
      this.current = down;
      down.pipe(up);
      up.pipe(down);
      down.resume();
    });
    up.on('error', (err) => closeBoth(`pilot: ${err.message}`, true));
    up.on('close', () => {
      this.sockets.delete(up);
      closeBoth('pilot closed', true);
    });
    down.on('error', (err) => closeBoth(`proxy: ${err.message}`, false));
    down.on('close', () => closeBoth('proxy closed', false));
  }

  async close(): Promise<void> {
    clearInterval(this.recheck);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
