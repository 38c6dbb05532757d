import { chmodSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { getSystemErrorName } from 'node:util';

/** Mode of the Unix sockets the agent binds: any uid in the pod may connect. */
export const UNIX_SOCKET_MODE = 0o666;

/** A bound listening socket the agent holds for the proxy children. */
export interface HeldSocket {
  /** Listener name the proxy asks for (`outbound`, `inbound`). */
  name: string;
  /** Tells two sockets of one listener apart (`outbound`, `outbound-unix`). */
  id: string;
  /** `host:port` or the socket path. */
  address: string;
  /** The raw TCP/Pipe handle sent to each child (`child.send(msg, handle)`). */
  handle: object;
}

interface NativeHandle {
  getsockname?(out: { address?: string; port?: number }): number;
  close(): void;
}

/** Node's own bind-without-accept (what the cluster module's primary does for shared handles). */
type CreateServerHandle = (address: string, port: number, addressType: number, fd?: number, flags?: number) => NativeHandle | number;

const createServerHandle = (net as unknown as { _createServerHandle: CreateServerHandle })._createServerHandle;

/**
 * The proxy's listening sockets, bound once and held for the agent's lifetime. The agent binds
 * them but never accepts on them: each proxy child gets a duplicate of the descriptor over IPC
 * and calls `listen` on it; the socket keeps listening while the agent holds it, so connections
 * that arrive while no child accepts (a crash, a swap) wait in the kernel's backlog for the next
 * child instead of being refused.
 */
export class ListeningSockets {
  readonly held: HeldSocket[] = [];

  bindTcp(name: string, id: string, host: string, port: number): HeldSocket {
    const h = createServerHandle(host, port, net.isIPv6(host) ? 6 : 4);
    if (typeof h === 'number') throw new Error(`cannot bind ${name} on ${host}:${port}: ${errname(h)}`);
    const out: { address?: string; port?: number } = {};
    h.getsockname?.(out);
    const s = { name, id, address: `${out.address ?? host}:${out.port ?? port}`, handle: h };
    this.held.push(s);
    return s;
  }

  bindUnix(name: string, id: string, path: string): HeldSocket {
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot replace ${path}: ${(err as Error).message}`);
    }
    const h = createServerHandle(path, -1, -1);
    if (typeof h === 'number') throw new Error(`cannot bind ${name} on ${path}: ${errname(h)}`);
    // connect(2) on a Unix socket needs write permission on its file, which bind(2) creates with
    // the umask (0755 here): the application containers of a pod run as other uids than the
    // sidecar, so the socket must be writable by all. The directory (the pod's shared emptyDir)
    // is what limits who sees it.
    try {
      chmodSync(path, UNIX_SOCKET_MODE);
    } catch (err) {
      h.close();
      throw new Error(`cannot chmod ${path} to ${UNIX_SOCKET_MODE.toString(8)}: ${(err as Error).message}`);
    }
    const s = { name, id, address: path, handle: h };
    this.held.push(s);
    return s;
  }

  find(name: string, id: string | undefined): HeldSocket | undefined {
    return this.held.find((s) => s.name === name && s.id === (id ?? name));
  }

  port(id: string): number {
    const s = this.held.find((x) => x.id === id);
    return Number(s?.address.split(':').pop());
  }

  close(): void {
    for (const s of this.held) (s.handle as NativeHandle).close();
    this.held.length = 0;
  }
}

function errname(code: number): string {
  return `${getSystemErrorName(code)} (${code})`;
}
