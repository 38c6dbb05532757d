import { Writable } from 'node:stream';
import { createLogger } from '@octo-mesh/runtime';
import { Registry } from '@octo-mesh/runtime';
import { Proxy, type ProxyOptions, type StaticResources } from '../proxy.js';
import type { SocketSpec } from '../data/listeners.js';

/** A silent logger (tests assert on behaviour, not log lines). */
export const quietLogger = () => createLogger('proxy-test', 'error', new Writable({ write: (_c, _e, cb) => cb() }));

/** Starts a proxy on 127.0.0.1 port 0 with an `outbound` listener socket (and optional extra sockets). */
export async function startProxy(
  staticResources: StaticResources,
  extra: Partial<ProxyOptions> & { sockets?: { name: string; spec: SocketSpec }[] } = {},
): Promise<Proxy & { port: number }> {
  const p = await Proxy.start({
    node: { id: 'test-proxy', cluster: 'test', metadata: {} } as ProxyOptions['node'],
    sockets: [{ name: 'outbound', spec: { kind: 'bind', address: { kind: 'tcp', host: '127.0.0.1', port: 0 } } }],
    staticResources,
    logger: quietLogger(),
    registry: new Registry(),
    ...extra,
  });
  const a = p.addresses.get('outbound');
  return Object.assign(p, { port: a && a.kind === 'tcp' ? a.port : 0 });
}
