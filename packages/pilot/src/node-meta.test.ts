import { describe, expect, it } from '@jest/globals';
import { Node } from '@octo-mesh/proto';
import { inboundService } from './authz-status.js';
import { nodeIdentity } from './node-meta.js';

const node = (metadata: Record<string, unknown>) => Node.fromPartial({ id: 'n1', metadata: { workload: 'ratings', namespace: 'demo', ...metadata } });

describe('nodeIdentity: where the application listens', () => {
  // columns: metadata, expected appPort / appSocket, or the error's substring
  it.each([
    [{ app_port: 9080 }, { appPort: 9080 }, null],
    [{ appSocket: '/var/run/octo/app.sock' }, { appSocket: '/var/run/octo/app.sock' }, null],
    [{ app_socket: '/var/run/octo/app.sock' }, { appSocket: '/var/run/octo/app.sock' }, null],
    [{ app_socket: '' }, {}, null],
    [{ app_socket: 'run/app.sock' }, null, 'node.metadata.app_socket: must be an absolute path, got "run/app.sock"'],
    [{ app_socket: 7 }, null, 'node.metadata.app_socket: must be an absolute path'],
    [{ app_socket: `/${'x'.repeat(107)}` }, null, 'is longer than 107 bytes'],
    [{ app_socket: '/run/app.sock', app_port: 9080 }, null, 'node.metadata.app_socket: give app_port or app_socket, not both'],
  ])('%j', (metadata, want, error) => {
    if (error) {
      expect(() => nodeIdentity(node(metadata))).toThrow(error);
      return;
    }
    const id = nodeIdentity(node(metadata));
    expect({ ...(id.appPort ? { appPort: id.appPort } : {}), ...(id.appSocket ? { appSocket: id.appSocket } : {}) }).toEqual(want);
  });

  it('guards the inbound listener of an application on a Unix socket with its own service\'s policies', () => {
    expect(inboundService(nodeIdentity(node({ app_socket: '/run/app.sock' })))).toBe('demo/ratings');
    expect(inboundService(nodeIdentity(node({})))).toBeUndefined();
  });
});
