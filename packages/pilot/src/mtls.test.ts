// Pilot with mTLS on ADS (issue 21): a sidecar needs a certificate from the mesh CA, and may only
// speak for its certificate's namespace. Real pilot, real gRPC streams over real TLS; the
// certificates come from openssl (packages/testing), not from the CA under test.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { credentials } from '@grpc/grpc-js';
import { meshChannelCredentials } from '@octo-mesh/clients';
import { AggregatedDiscoveryServiceClient, Node, TYPE_URL } from '@octo-mesh/proto';
import { createLogger } from '@octo-mesh/runtime';
import { meshTestPki } from '@octo-mesh/testing/mesh-pki.js';
import { pilotConfig } from './config.js';
import { startPilot, type RunningPilot } from './main.js';
import { nodeNamespaceDenied } from './server/ads.js';
import { SotwClient } from './sim/ads-client.js';

const TD = 'spiffe://cluster.local';
const dir = mkdtempSync(join(tmpdir(), 'pilot-mtls-'));
const pki = meshTestPki(join(dir, 'pki'));
let pilot: RunningPilot;
const clients: AggregatedDiscoveryServiceClient[] = [];

beforeAll(async () => {
  writeFileSync(
    join(dir, 'mesh.yaml'),
    `apiVersion: model.mesh.octo.io/v1
kind: Service
metadata: { name: catalog, namespace: demo }
spec: { ports: [{ port: 8080 }] }
`,
  );
  const logger = createLogger('pilot', 'error', new Writable({ write: (_c, _e, cb) => cb() }));
  const tlsDir = pki.issue('pilot', `${TD}/ns/octo-system/sa/octo-pilot`);
  pilot = await startPilot(pilotConfig.parse({ xdsPort: 0, adminPort: 0, xdsHost: '127.0.0.1', resources: dir, shutdownGraceSeconds: 0.1, tlsDir, xdsMtls: 'true' }), logger);
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await pilot?.stop();
});

function stream(creds: ReturnType<typeof credentials.createInsecure>, namespace: string): SotwClient {
  const client = new AggregatedDiscoveryServiceClient(`127.0.0.1:${pilot.xdsPort}`, creds);
  clients.push(client);
  const s = new SotwClient(client, Node.fromPartial({ id: `sidecar-${namespace}-${clients.length}`, metadata: { namespace, dependencies: ['catalog.demo'] } }));
  s.subscribe(TYPE_URL.cluster);
  return s;
}

describe('pilot ADS over mTLS', () => {
  it.each([
    [`${TD}/ns/demo/sa/web`, { namespace: 'demo' }, undefined],
    [`${TD}/ns/demo/sa/web`, undefined, /node.metadata.namespace "default" is not the namespace of .*ns\/demo\/sa\/web/],
    [`${TD}/ns/shop/sa/web`, { namespace: 'demo' }, /"demo" is not the namespace/],
    [undefined, { namespace: 'demo' }, /no workload identity/],
    ['spiffe://cluster.local/not-a-workload', { namespace: 'demo' }, /no workload identity .*path: /],
  ])('a caller %s claiming %j: %s', (uri, metadata, refused) => {
    const why = nodeNamespaceDenied(uri, metadata);
    if (refused) expect(why).toMatch(refused);
    else expect(why).toBeUndefined();
  });

  it('serves a sidecar whose certificate names its namespace', async () => {
    const s = stream(meshChannelCredentials({ certDir: pki.issue('web', `${TD}/ns/demo/sa/web`) }, 'pilot'), 'demo');
    const r = await s.next(20_000);
    expect(r.typeUrl).toBe(TYPE_URL.cluster);
    expect(r.resources.length).toBeGreaterThan(0);
  }, 30_000);

  it('ends the stream of a sidecar that claims another namespace than its certificate', async () => {
    const s = stream(meshChannelCredentials({ certDir: pki.issue('spy', `${TD}/ns/shop/sa/spy`) }, 'pilot'), 'demo');
    await expect(s.next(20_000)).rejects.toMatchObject({ code: 7, details: expect.stringContaining('"demo" is not the namespace') });
  }, 30_000);

  it('refuses a plaintext sidecar and one with a certificate from another root', async () => {
    await expect(stream(credentials.createInsecure(), 'demo').next(20_000)).rejects.toMatchObject({ code: 14 });
    const foreign = pki.foreign().issue('web', `${TD}/ns/demo/sa/web`);
    await expect(stream(meshChannelCredentials({ certDir: foreign }, 'pilot'), 'demo').next(20_000)).rejects.toMatchObject({ code: 14 });
  }, 60_000);
});
