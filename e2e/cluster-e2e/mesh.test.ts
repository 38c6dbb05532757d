// The mesh on a real single-node Kubernetes cluster, end to end, in pods: images imported
// without a registry → `helm install` → control plane Ready → least-privilege RBAC as documented
// → a labelled namespace gets native sidecars → demo traffic app → Unix socket → sidecar → peer
// sidecar → app → every sidecar holds a mesh-CA certificate and sidecars talk mTLS → an app on
// a Unix socket is reached through its sidecar → an 80/20 RoutePolicy splits 2,000 requests within ±3 % → the pilot serving the
// demo is deleted while traffic flows: sidecars re-home, 0 requests fail → `octoctl package push`
// to the chart's package repository and a ProxyVersion naming it upgrade every sidecar in place
// → a Job with a sidecar completes → bad pods are denied, opted-out pods are left alone → `helm upgrade` → `helm
// uninstall` leaves only what docs/kubernetes.md lists. The steps share the cluster and run in
// order; figures for the docs are printed and written to dist/cluster-e2e-figures.json.
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import { adminGet, type MeshTls } from '@octo-mesh/clients';
import { createCsr, requestCertificate } from '@octo-mesh/identity';
import { MetaServerClient } from '@octo-mesh/proto';
import { buildMeshImages } from '@octo-mesh/images';
import { REPO_ROOT, clusterCommand, clusterCommandAsync, kubeBinDir, nodeClusterInfo } from '@octo-mesh/testing';
import { demoImage, demoJob, demoManifests, healthCheckPolicy, routePolicy, socketAppManifests } from './demo.js';
import { mib, workingSetBytes } from './measure.js';

const NS = 'octo-system';
const RELEASE = 'octo';
const DEMO = 'demo';
const CHART = join(REPO_ROOT, 'charts/octo-mesh');
const helmBin = () => join(kubeBinDir(false), 'helm');
const kubectl = (args: string[], input?: string) => clusterCommand('kubectl', args, input === undefined ? {} : { input });
const helm = (args: string[]) => clusterCommandAsync(helmBin(), args, { timeoutMs: 400_000 });
const figures: Record<string, unknown> = {};

function ok(r: { status: number; stdout: string; stderr: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status}):\n${r.stderr}\n${r.stdout}`);
  return r.stdout;
}
const json = <T>(args: string[]): T => JSON.parse(ok(kubectl([...args, '-o', 'json']), `kubectl ${args.join(' ')}`)) as T;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(500);
  }
}

interface Pod {
  metadata: { name: string; uid: string; labels?: Record<string, string> };
  spec: { containers: { name: string }[]; initContainers?: { name: string; restartPolicy?: string }[] };
  status: { podIP?: string; phase?: string; containerStatuses?: { name: string; containerID?: string; ready: boolean }[]; initContainerStatuses?: { name: string; containerID?: string }[] };
}
const podsOf = (ns: string, selector: string) => json<{ items: Pod[] }>(['get', 'pods', '-n', ns, '-l', selector]).items;

/** Asks the frontend (from the node, through the bridge) to call catalog through its sidecar. */
async function drive(query: string, target = 'catalog'): Promise<{ ok: number; failed: number; byVersion: Record<string, number>; byVia: Record<string, number>; errors: string[] }> {
  const ip = podsOf(DEMO, 'app=frontend')[0]!.status.podIP!;
  return fetchJson(`http://${ip}:8080/run?target=${target}&${query}`, 180_000);
}

/** GET and parse JSON; a failure names the URL and the socket-level cause (undici hides it). */
async function fetchJson<T>(url: string, timeoutMs = 10_000): Promise<T> {
  const started = Date.now();
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return (await r.json()) as T;
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`GET ${url} failed after ${Date.now() - started} ms: ${(err as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''}`);
  }
}

/**
 * An administrator's certificate (`sa/octo-admin`, issue 21) as an operator of the cluster gets
 * one: a ServiceAccount, a token for audience octo-ca, a CSR to the mesh CA. The control plane's
 * debug endpoints answer only such a certificate (or the operator's).
 */
let adminCert: MeshTls | undefined;
async function adminTls(): Promise<MeshTls> {
  if (adminCert) return adminCert;
  kubectl(['create', 'serviceaccount', `${RELEASE}-admin`, '-n', NS]); // exists on a second call: fine
  const token = ok(kubectl(['create', 'token', `${RELEASE}-admin`, '-n', NS, '--audience', 'octo-ca', '--duration', '1h']), 'create token').trim();
  const roots = json<{ data: Record<string, string> }>(['get', 'configmap', `${RELEASE}-ca-root-cert`, '-n', NS]).data['root-cert.pem']!;
  const ca = podsOf(NS, 'app.kubernetes.io/name=ca')[0]!.status.podIP!;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const got = await requestCertificate({ url: `https://${ca}:15016`, trustBundle: [roots], serverName: `${RELEASE}-ca.${NS}.svc` }, { csrPem: createCsr(privateKey), token });
  expect(got.spiffeId).toBe(`spiffe://cluster.local/ns/${NS}/sa/${RELEASE}-admin`);
  const dir = mkdtempSync(join(tmpdir(), 'octo-e2e-admin-'));
  writeFileSync(join(dir, 'cert-chain.pem'), got.certificateChain.join(''));
  writeFileSync(join(dir, 'key.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(join(dir, 'root-cert.pem'), got.trustBundle.join(''));
  return (adminCert = { certDir: dir, controlNamespace: NS, rolePrefix: `${RELEASE}-` });
}

/** The status of a GET over TLS with no client certificate (as a probe or a stranger asks); the server's certificate is not checked. */
function anonymousStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsGet(url, { rejectUnauthorized: false, servername: 'octo-mesh', agent: false, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', (err) => reject(new Error(`GET ${url}: ${err.message}`)));
  });
}

/** A debug read from the meta server's admin port: HTTPS, the administrator's certificate, the server checked by its identity. */
async function metaDebug<T>(path: string): Promise<T> {
  const ip = podsOf(NS, 'app.kubernetes.io/name=meta-server')[0]!.status.podIP!;
  const r = await adminGet(`${ip}:15014`, path, { tls: await adminTls(), timeoutMs: 10_000 }, 'meta-server');
  if (!r.ok) throw new Error(`GET ${r.url}: HTTP ${r.status} ${r.text}`);
  return JSON.parse(r.text) as T;
}

beforeAll(async () => {
  nodeClusterInfo(); // fails fast outside the cluster project
  figures['clusterStartSeconds'] = nodeClusterInfo().startSeconds;
  const started = Date.now();
  const dir = join(tmpdir(), 'octo-cluster-e2e-images');
  mkdirSync(dir, { recursive: true });
  const images = await buildMeshImages({ repoRoot: REPO_ROOT, tag: 'e2e', repository: 'octo.local/octo-mesh' });
  for (const [name, img] of [['control-plane', images.controlPlane], ['sidecar', images.sidecar], ['demo', demoImage()]] as const) {
    const file = join(dir, `${name}.tar`);
    writeFileSync(file, img.archive);
    ok(clusterCommand('ctr', ['--address', nodeClusterInfo().containerdSocket, '-n', 'k8s.io', 'images', 'import', file]), `import ${name}`);
    figures[`image.${name}.MiB`] = mib(img.archive.length);
  }
  figures['imagesBuildAndImportSeconds'] = (Date.now() - started) / 1000;
}, 400_000);

afterAll(() => {
  const out = join(REPO_ROOT, 'dist/cluster-e2e-figures.json');
  mkdirSync(join(REPO_ROOT, 'dist'), { recursive: true });
  writeFileSync(out, JSON.stringify(figures, null, 2) + '\n');
  process.stderr.write(`[cluster-e2e] figures: ${JSON.stringify(figures)}\n`);
});

describe('the chart', () => {
  it('lints clean, and its rendering is accepted by the API server (server-side dry run)', async () => {
    const lint = await helm(['lint', CHART, '--strict', '--set', 'image.tag=e2e']);
    expect(lint.stdout).toContain('0 chart(s) failed');
    const tpl = ok(await helm(['template', RELEASE, CHART, '-n', NS, '--set', 'image.tag=e2e']), 'helm template');
    ok(kubectl(['create', 'namespace', NS]), 'create namespace');
    ok(kubectl(['apply', '--dry-run=server', '-f', '-'], tpl), 'server-side dry run');
  }, 120_000);

  it('refuses a bad value with the path of the value', async () => {
    const r = await helm(['template', RELEASE, CHART, '--set', 'injector.failurePolicy=Sometimes']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('/injector/failurePolicy');
  });

  it('grants no wildcard anywhere', async () => {
    const tpl = ok(await helm(['template', RELEASE, CHART, '-n', NS]), 'helm template');
    const rules = tpl.split('\n---').filter((d) => /^kind: (Cluster)?Role$/m.test(d));
    expect(rules.length).toBeGreaterThan(0);
    for (const d of rules) expect(d).not.toMatch(/["'\s[,]\*["'\s\],]/);
  });
});

describe('helm install', () => {
  it('brings the whole control plane to Ready', async () => {
    const started = Date.now();
    // Certificate rounds every 2 s, so the rotation step below need not wait a minute.
    const r = await helm(['install', RELEASE, CHART, '-n', NS, '--set', 'image.tag=e2e', '--set', 'injector.certCheckIntervalMs=2000', '--wait', '--timeout', '5m']);
    figures['helmInstallToReadySeconds'] = (Date.now() - started) / 1000;
    ok(r, 'helm install');
    type Deploys = { items: { metadata: { name: string }; spec: { replicas: number }; status: { readyReplicas?: number } }[] };
    const notReady = () => json<Deploys>(['get', 'deploy', '-n', NS]).items.filter((d) => d.status.readyReplicas !== d.spec.replicas).map((d) => `${d.metadata.name} ${d.status.readyReplicas ?? 0}/${d.spec.replicas}`);
    expect(json<Deploys>(['get', 'deploy', '-n', NS]).items.map((d) => d.metadata.name).sort()).toEqual(['octo-ca', 'octo-dispatcher', 'octo-health', 'octo-injector', 'octo-meta-server', 'octo-operator', 'octo-package-repository', 'octo-pilot']);
    // helm --wait counts a Deployment done at replicas − maxUnavailable; give stragglers (and a
    // replica that flapped on a loaded machine) a moment, and say which it was.
    const lagging = notReady();
    if (lagging.length) process.stderr.write(`[cluster-e2e] not all Ready when helm returned: ${lagging.join(', ')}\n`);
    await until('every control-plane replica Ready', () => notReady().length === 0, 60_000);
    expect(podsOf(NS, 'app.kubernetes.io/name=meta-server')).toHaveLength(2);
    expect(podsOf(NS, 'app.kubernetes.io/name=pilot')).toHaveLength(2);
    expect(podsOf(NS, 'app.kubernetes.io/name=operator')).toHaveLength(2);
    // The injector issued its certificate and put its CA into the webhook.
    const hook = json<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(['get', 'mutatingwebhookconfiguration', `${NS}-${RELEASE}-injector`]);
    expect(Buffer.from(hook.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString()).toContain('BEGIN CERTIFICATE');
  }, 400_000);

  it('runs every control-plane pod non-root, read-only, without capabilities', () => {
    for (const pod of json<{ items: { metadata: { name: string }; spec: { securityContext?: { runAsNonRoot?: boolean }; containers: { securityContext?: { readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } } }[] } }[] }>(['get', 'pods', '-n', NS]).items) {
      expect(pod.spec.securityContext?.runAsNonRoot).toBe(true);
      for (const c of pod.spec.containers) {
        expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
        expect(c.securityContext?.capabilities?.drop).toEqual(['ALL']);
      }
    }
  });

  it.each([
    // service account, verb, resource, extra args, allowed
    ['dispatcher', 'watch', 'routepolicies.mesh.octo.io', ['-A'], 'yes'],
    ['dispatcher', 'list', 'endpointslices.discovery.k8s.io', ['-A'], 'yes'],
    ['dispatcher', 'create', 'routepolicies.mesh.octo.io', ['-n', DEMO], 'no'],
    ['dispatcher', 'get', 'secrets', ['-n', NS], 'no'],
    ['meta-server', 'update', 'leases.coordination.k8s.io', ['-n', NS], 'yes'],
    ['meta-server', 'delete', 'leases.coordination.k8s.io', ['-n', NS], 'no'],
    ['meta-server', 'create', 'leases.coordination.k8s.io', ['-n', 'default'], 'no'],
    ['meta-server', 'list', 'pods', ['-A'], 'no'],
    ['pilot', 'list', 'services', ['-A'], 'no'],
    ['pilot', 'get', 'leases.coordination.k8s.io', ['-n', NS], 'no'],
    ['operator', 'update', 'routepolicies.mesh.octo.io', ['-n', DEMO, '--subresource=status'], 'yes'],
    ['operator', 'update', 'routepolicies.mesh.octo.io', ['-n', DEMO], 'no'],
    ['operator', 'create', 'events', ['-n', DEMO], 'yes'],
    ['operator', 'get', 'secrets', ['-n', NS], 'no'],
    ['injector', 'update', 'secrets/octo-injector-tls', ['-n', NS], 'yes'],
    ['injector', 'get', 'secrets/other', ['-n', NS], 'no'],
    ['injector', 'list', 'secrets', ['-n', NS], 'no'],
    ['injector', 'update', `mutatingwebhookconfigurations/${NS}-${RELEASE}-injector`, [], 'yes'],
    ['injector', 'update', 'mutatingwebhookconfigurations/someone-else', [], 'no'],
    ['injector', 'create', 'pods', ['-n', DEMO], 'no'],
    ['ca', 'create', 'tokenreviews.authentication.k8s.io', [], 'yes'],
    ['ca', 'get', `secrets/${RELEASE}-ca-root`, ['-n', NS], 'yes'],
    ['ca', 'update', `secrets/${RELEASE}-ca-root`, ['-n', NS], 'no'],
    ['ca', 'get', 'secrets/other', ['-n', NS], 'no'],
    ['ca', 'list', 'secrets', ['-n', NS], 'no'],
    ['ca', 'update', `configmaps/${RELEASE}-ca-root-cert`, ['-n', NS], 'yes'],
    ['injector', 'get', `configmaps/${RELEASE}-ca-root-cert`, ['-n', NS], 'yes'],
    ['injector', 'get', `secrets/${RELEASE}-ca-root`, ['-n', NS], 'no'],
    ['pilot', 'create', 'tokenreviews.authentication.k8s.io', [], 'no'],
    ['package-repository', 'get', 'pods', ['-n', NS], 'no'],
    ['package-repository', 'get', 'proxyversions.mesh.octo.io', ['-n', DEMO], 'no'],
    ['health', 'list', 'endpointslices.discovery.k8s.io', ['-A'], 'no'], // it reads the mesh through the dispatcher
    ['health', 'get', 'leases.coordination.k8s.io', ['-n', NS], 'no'],
  ])('kubectl auth can-i: %s %s %s %j → %s', (sa, verb, resource, extra, want) => {
    const r = kubectl(['auth', 'can-i', verb, resource, ...extra, `--as=system:serviceaccount:${NS}:${RELEASE}-${sa}`]);
    expect(r.stdout.trim()).toBe(want);
  });
});

describe('sidecar injection', () => {
  it('gives every pod of a labelled namespace a native sidecar', async () => {
    ok(kubectl(['apply', '-f', '-'], demoManifests(DEMO)), 'apply demo');
    for (const d of ['catalog-v1', 'catalog-v2', 'frontend']) ok(kubectl(['rollout', 'status', `deploy/${d}`, '-n', DEMO, '--timeout=180s'], undefined), `rollout ${d}`);
    for (const pod of podsOf(DEMO, 'app in (catalog,frontend)')) {
      expect(pod.spec.containers.map((c) => c.name)).toEqual(['app']);
      expect(pod.spec.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([['octo-sidecar', 'Always']]);
      expect(pod.status.containerStatuses?.every((c) => c.ready)).toBe(true);
    }
  }, 240_000);

  it('carries traffic app → Unix socket → sidecar → peer sidecar → app', async () => {
    // Pods are Ready; their endpoints reach frontend's sidecar through EndpointSlice → dispatcher
    // → pilot → EDS a moment later (and a probe timing out on a loaded node takes one out again):
    // wait until both versions answer, then no request of a full run may fail.
    await until('both catalog versions to answer', async () => Object.keys((await drive('n=40&concurrency=4')).byVersion).length === 2, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}\ncatalog EndpointSlices: ${kubectl(['get', 'endpointslices', '-n', DEMO, '-l', 'kubernetes.io/service-name=catalog', '-o', 'jsonpath={range .items[*].endpoints[*]}{.targetRef.name} {.conditions}{"\\n"}{end}']).stdout}`);
    });
    const r = await drive('n=200&concurrency=8');
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(200);
    expect(Object.keys(r.byVersion).sort()).toEqual(['v1', 'v2']);
  }, 200_000);

  // Issue 21 in pods: every sidecar holds a certificate from the mesh CA (TokenReview of its
  // projected token), sidecars call each other over mTLS, and the control plane refuses a
  // plaintext stranger — a fake pilot registration is what an attacker on the pod network tries.
  it('secures the mesh: workload certificates from the mesh CA, mTLS between sidecars, a plaintext stranger refused', async () => {
    const pods = podsOf(DEMO, 'app in (catalog,frontend)');
    for (const p of pods) {
      const s = await fetchJson<{ identity?: { spiffeId: string | null; ready: boolean } }>(`http://${p.status.podIP}:15000/status`);
      expect(s.identity).toMatchObject({ spiffeId: `spiffe://cluster.local/ns/${DEMO}/sa/default`, ready: true });
    }
    // Callee side: catalog's sidecars accepted TLS handshakes from frontend's (the traffic above).
    let handshakes = 0;
    for (const p of pods.filter((q) => q.metadata.labels?.['app'] === 'catalog')) {
      const text = await (await fetch(`http://${p.status.podIP}:15000/stats/prometheus`)).text();
      handshakes += Number(/octo_proxy_tls_handshakes_total\{side="downstream",result="success"\} (\d+)/.exec(text)?.[1] ?? 0);
    }
    expect(handshakes).toBeGreaterThan(0);
    // A sidecar's admin port (pod IP, for the kubelet) gives a stranger probes and stats, not its configuration.
    const dump = await fetch(`http://${pods[0]!.status.podIP}:15000/config_dump`, { signal: AbortSignal.timeout(10_000) });
    expect([dump.status, (await dump.text()).trim()]).toEqual([403, expect.stringContaining("GET /config_dump answers only on the pod's loopback")]);
    // A pilot registration in plaintext from the node: no handshake, no registration.
    const meta = podsOf(NS, 'app.kubernetes.io/name=meta-server')[0]!.status.podIP!;
    const err = await new Promise<ServiceError | null>((resolve) => {
      const c = new MetaServerClient(`${meta}:15011`, credentials.createInsecure());
      c.registerPilot({ pilotId: 'evil', xdsAddress: '10.0.0.66:15010', adminAddress: '', zone: '' }, new Metadata(), { deadline: Date.now() + 10_000 }, (e) => {
        c.close();
        resolve(e);
      });
    });
    expect(err).toMatchObject({ code: 14 });
    const assigned = await metaDebug<{ workloads: Record<string, string> }>('/debug/assignments');
    expect(JSON.stringify(assigned)).not.toContain('evil');
    // The control plane's admin ports serve HTTPS: probes and metrics for anyone (the pods are
    // Ready through HTTPS probes), debug reads only for an administrator or the operator.
    for (const app of ['meta-server', 'pilot', 'dispatcher', 'operator', 'health']) {
      const ip = podsOf(NS, `app.kubernetes.io/name=${app}`)[0]!.status.podIP!;
      const anonymous = await Promise.all(['/readyz', '/metrics', '/debug/syncz', '/debug/pilots'].map((path) => anonymousStatus(`https://${ip}:15014${path}`)));
      expect([app, anonymous]).toEqual([app, [200, 200, 401, 401]]);
    }
  }, 60_000);

  // Issue 19 in pods: an app that listens only for its sidecar on a Unix socket in the pod's
  // shared directory (annotation sidecar.octo.io/app-socket): Pilot gives its sidecar an inbound
  // cluster with a pipe address, and frontend's calls reach the app on the socket, not its port.
  it('reaches an app on a Unix socket (sidecar.octo.io/app-socket) through its sidecar', async () => {
    ok(kubectl(['apply', '-f', '-'], socketAppManifests(DEMO)), 'apply reviews');
    ok(kubectl(['rollout', 'status', 'deploy/reviews', '-n', DEMO, '--timeout=180s']), 'rollout reviews');
    const pod = podsOf(DEMO, 'app=reviews')[0]!;
    const env = (json<{ spec: { initContainers: { name: string; env?: { name: string; value?: string }[] }[] } }>(['get', 'pod', pod.metadata.name, '-n', DEMO]).spec.initContainers[0]!.env ?? []).filter((e) => e.name.startsWith('OCTO_PROXY_APP_'));
    expect(env).toEqual([{ name: 'OCTO_PROXY_APP_SOCKET', value: '/var/run/octo/app.sock' }]);
    // The endpoint reaches frontend's sidecar a moment after the pod is Ready (as for catalog).
    await until('reviews to answer', async () => (await drive('n=5&concurrency=1', 'reviews')).ok === 5, 60_000);
    const r = await drive('n=100&concurrency=4', 'reviews');
    expect(r.errors).toEqual([]);
    expect(r.ok).toBe(100);
    expect(r.byVia).toEqual({ unix: 100 });
    ok(kubectl(['delete', '-f', '-', '--wait=true'], socketAppManifests(DEMO)), 'delete reviews');
  }, 240_000);

  it('splits 80/20 within ±3 % over 2,000 requests once the RoutePolicy is applied', async () => {
    ok(kubectl(['apply', '-f', '-'], routePolicy(DEMO, 80, 20)), 'apply RoutePolicy');
    // The policy reaches the sidecars through dispatcher → pilot → ADS: wait until a small
    // sample shows it (a 50/50 sample of 200 is never within 8 % of 20 %).
    await until('the split to take effect', async () => {
      const probe = await drive('n=200&concurrency=8');
      return Math.abs((probe.byVersion['v2'] ?? 0) / Math.max(1, probe.ok) - 0.2) < 0.08;
    }, 60_000);
    const r = await drive('n=2000&concurrency=8');
    figures['split.v2Share'] = (r.byVersion['v2'] ?? 0) / 2000;
    expect(r.failed).toBe(0);
    expect(r.ok).toBe(2000);
    expect(Math.abs((r.byVersion['v2'] ?? 0) / 2000 - 0.2)).toBeLessThanOrEqual(0.03);
  }, 200_000);

  it('moves the sidecars to another pilot when theirs is deleted, failing no request', async () => {
    const before = await metaDebug<{ workloads: Record<string, string> }>('/debug/assignments');
    const pilot = before.workloads[`${DEMO}/frontend`];
    expect(pilot).toBeDefined();
    const load = drive('durationMs=15000&rps=50');
    await sleep(3000);
    ok(kubectl(['delete', 'pod', '-n', NS, pilot!, '--wait=false']), 'delete pilot');
    const r = await load;
    expect(r.errors).toEqual([]);
    expect(r.failed).toBe(0);
    expect(r.ok).toBeGreaterThan(500);
    const moved = await until('frontend re-homed', async () => {
      const now = (await metaDebug<{ workloads: Record<string, string> }>('/debug/assignments')).workloads[`${DEMO}/frontend`];
      return now && now !== pilot ? now : undefined;
    }, 30_000);
    expect(moved).not.toBe(pilot);
    figures['pilotFailover.requests'] = r.ok;
  }, 200_000);

  // Issue 20 in pods: the central health checker (its own Deployment) probes catalog's instances
  // as the RoutePolicy's healthCheck says; the one that fails is published unhealthy (dispatcher
  // → pilots → EDS) and frontend's sidecar stops sending it requests — none of which fail.
  it('takes an instance the central health checker finds failing out of traffic, and back', async () => {
    ok(kubectl(['apply', '-f', '-'], healthCheckPolicy(DEMO, 'v2')), 'apply the health check');
    const started = Date.now();
    await until('catalog v2 out of traffic', async () => {
      const probe = await drive('n=50&concurrency=4');
      return probe.ok === 50 && !probe.byVersion['v2'];
    }, 90_000);
    figures['healthCheck.ejectSeconds'] = (Date.now() - started) / 1000;
    const r = await drive('n=400&concurrency=8');
    expect(r.errors).toEqual([]);
    expect(r.byVersion).toEqual({ v1: 400 });
    // The verdict, read from the checkers' debug ports with the administrator's certificate: the
    // two replicas know each other (membership in Leases) and exactly one checks catalog.
    type Checks = { members: string[]; services: { service: string; endpoints: Record<string, { healthy: boolean }> }[] };
    const views: Checks[] = [];
    for (const p of podsOf(NS, 'app.kubernetes.io/name=health')) {
      const view = await adminGet(`${p.status.podIP}:15014`, '/debug/checks', { tls: await adminTls(), timeoutMs: 10_000 }, 'health');
      expect(view.status).toBe(200);
      views.push(JSON.parse(view.text) as Checks);
    }
    expect(views.map((v) => v.members.length)).toEqual([2, 2]);
    const checking = views.flatMap((v) => v.services.filter((x) => x.service === `${DEMO}/catalog`));
    expect(checking).toHaveLength(1);
    expect(Object.values(checking[0]!.endpoints).map((e) => e.healthy).sort()).toEqual([false, true]);
    // Once its checks pass again (the path now fails for no version), v2 is back.
    ok(kubectl(['apply', '-f', '-'], healthCheckPolicy(DEMO, 'none')), 'a health check every instance passes');
    await until('catalog v2 back in traffic', async () => ((await drive('n=100&concurrency=4')).byVersion['v2'] ?? 0) > 0, 90_000);
    ok(kubectl(['apply', '-f', '-'], routePolicy(DEMO, 80, 20)), 'restore the split');
  }, 300_000);

  // A ProxyVersion rollout upgrades every sidecar in place: the operator advances it, the pilots
  // target the batches (they see the status the operator writes, mirrored by the dispatcher), each
  // sidecar's agent swaps its proxy; no container restarts and no request fails.
  it('upgrades every sidecar in place with a ProxyVersion from the chart\'s package repository: same containers, 0 failed requests', async () => {
    const { writePackage } = await import('@octo-mesh/proxy-package/build.js');
    const pkg = await writePackage({ version: '0.2.0' }, join(tmpdir(), 'octo-cluster-e2e-packages'));
    // `octoctl package push` to the chart's repository — from the node, at its pod address (as a
    // port-forward would reach it) — printing the URL under the Service name the pods resolve.
    execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/octoctl'], { cwd: REPO_ROOT, stdio: 'pipe' });
    const repoIp = podsOf(NS, 'app.kubernetes.io/name=package-repository')[0]!.status.podIP!;
    const pushed = spawnSync(
      process.execPath,
      [join(REPO_ROOT, 'packages/octoctl/dist/main.js'), 'package', 'push', pkg.path, '--repository', `http://${repoIp}:15018`, '--url-base', `http://${RELEASE}-package-repository.${NS}.svc:15018`],
      { encoding: 'utf8' },
    );
    expect(pushed.status).toBe(0);
    const url = /^url: +(\S+)$/m.exec(pushed.stdout)![1]!;
    expect(url).toBe(`http://${RELEASE}-package-repository.${NS}.svc:15018/packages/${pkg.sha256}`);
    expect(/^sha256: +(\S+)$/m.exec(pushed.stdout)![1]).toBe(pkg.sha256);
    const ids = () =>
      podsOf(DEMO, 'app in (catalog,frontend)')
        .map((p) => `${p.metadata.name} ${p.status.containerStatuses?.map((c) => `${c.containerID}/${(c as { restartCount?: number }).restartCount}`).join()} ${p.status.initContainerStatuses?.map((c) => `${c.containerID}/${(c as { restartCount?: number }).restartCount}`).join()}`)
        .sort();
    const before = ids();
    const load = drive('durationMs=30000&rps=50');
    load.catch(() => undefined); // awaited below; a failure is reported there, not as unhandled
    ok(
      kubectl(
        ['apply', '-f', '-'],
        `apiVersion: mesh.octo.io/v1alpha1\nkind: ProxyVersion\nmetadata: {name: proxy-0-2-0, namespace: ${DEMO}}\nspec:\n  version: 0.2.0\n  package: {url: "${url}", sha256: ${pkg.sha256}}\n  strategy:\n    maxUnavailable: 3\n    pauseBetweenBatches: 0s\n    healthGate: {minReadySeconds: 1, maxFailurePercent: 0, progressDeadline: 2m}\n`,
      ),
      'apply ProxyVersion',
    );
    const agents = () => Promise.all(podsOf(DEMO, 'app in (catalog,frontend)').map((p) => fetchJson<{ runningVersion: string; phase: string; lastError: unknown }>(`http://${p.status.podIP}:15000/status`)));
    await until('every sidecar on 0.2.0', async () => (await agents()).every((a) => a.runningVersion === '0.2.0'), 120_000).catch(async (err: Error) => {
      const pv = kubectl(['get', 'proxyversion', 'proxy-0-2-0', '-n', DEMO, '-o', 'jsonpath={.status}']).stdout;
      throw new Error(`${err.message}\nProxyVersion status: ${pv}\nagents: ${JSON.stringify(await agents())}`);
    });
    const r = await load;
    expect(r.failed).toBe(0);
    expect(ids()).toEqual(before);
    // Every sidecar downloaded it from the repository (one GET each, 3 pods).
    const metrics = await (await fetch(`http://${repoIp}:15014/metrics`)).text();
    expect(Number(/octo_package_repository_requests_total\{method="GET",code="200"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThanOrEqual(3);
  }, 200_000);

  it('lets a Job with a sidecar complete', () => {
    ok(kubectl(['apply', '-f', '-'], demoJob(DEMO, 'caller')), 'apply Job');
    ok(kubectl(['wait', '-n', DEMO, 'job/caller', '--for=condition=complete', '--timeout=120s']), 'Job complete');
    const pod = podsOf(DEMO, 'app=caller')[0]!;
    expect(pod.status.phase).toBe('Succeeded');
    expect(pod.spec.initContainers?.[0]?.name).toBe('octo-sidecar');
  }, 150_000);

  it('denies a pod the sidecar cannot serve, naming the field', () => {
    const r = kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1\nkind: Pod\nmetadata: {name: hostnet, namespace: ${DEMO}}\nspec:\n  hostNetwork: true\n  containers: [{name: app, image: x}]\n`,
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('octo-mesh sidecar injection: spec.hostNetwork');
  });

  it('leaves an opted-out pod alone, and starts faster without the sidecar (figure)', () => {
    const pod = (name: string, optOut: boolean) =>
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: ${name}\n  namespace: ${DEMO}\n  labels: {app: ${name}}\n  annotations: ${optOut ? '{sidecar.octo.io/inject: "false"}' : '{sidecar.octo.io/app-port: "8080"}'}\nspec:\n  containers:\n  - {name: app, image: octo.local/octo-mesh/demo:e2e, imagePullPolicy: IfNotPresent, ports: [{containerPort: 8080}], readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}}\n`;
    const timeToReady = (name: string, optOut: boolean) => {
      const started = Date.now();
      ok(kubectl(['apply', '-f', '-'], pod(name, optOut)), `create ${name}`);
      ok(kubectl(['wait', '-n', DEMO, `pod/${name}`, '--for=condition=Ready', '--timeout=120s']), `${name} Ready`);
      return (Date.now() - started) / 1000;
    };
    figures['podStart.withoutSidecarSeconds'] = timeToReady('plain', true);
    figures['podStart.withSidecarSeconds'] = timeToReady('meshed', false);
    const plain = json<Pod>(['get', 'pod', 'plain', '-n', DEMO]);
    expect(plain.spec.initContainers ?? []).toEqual([]);
    const meshed = json<Pod>(['get', 'pod', 'meshed', '-n', DEMO]);
    const sidecarId = meshed.status.initContainerStatuses?.[0]?.containerID;
    const ws = sidecarId ? workingSetBytes(sidecarId) : undefined;
    if (ws !== undefined) figures['sidecar.workingSetMiB'] = mib(ws);
  }, 300_000);

  it('re-issues its certificate when the Secret is deleted, and no pod creation fails meanwhile', async () => {
    const bundleOf = () =>
      Buffer.from(json<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(['get', 'mutatingwebhookconfiguration', `${NS}-${RELEASE}-injector`]).webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString();
    const before = bundleOf();
    ok(kubectl(['delete', 'secret', '-n', NS, `${RELEASE}-injector-tls`]), 'delete the injector Secret');
    const after = await until('a new CA in the caBundle', () => {
      const b = bundleOf();
      return b !== before && kubectl(['get', 'secret', '-n', NS, `${RELEASE}-injector-tls`]).status === 0 ? b : undefined;
    }, 60_000);
    // The old CA stays trusted while a replica may still serve the certificate it signed.
    expect(after.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    expect(after).toContain(before.trim());
    for (let i = 0; i < 6; i++) {
      const name = `rotated-${i}`;
      ok(kubectl(['apply', '-f', '-'], `apiVersion: v1\nkind: Pod\nmetadata: {name: ${name}, namespace: ${DEMO}}\nspec:\n  containers: [{name: app, image: octo.local/octo-mesh/demo:e2e, imagePullPolicy: IfNotPresent}]\n`), `create ${name}`);
      expect(json<Pod>(['get', 'pod', name, '-n', DEMO]).spec.initContainers?.[0]?.name).toBe('octo-sidecar');
    }
    ok(kubectl(['delete', 'pod', '-n', DEMO, ...Array.from({ length: 6 }, (_, i) => `rotated-${i}`), '--wait=false']), 'delete pods');
  }, 120_000);

  it('control plane memory at rest (figure)', () => {
    let total = 0;
    const per: Record<string, number> = {};
    for (const pod of json<{ items: Pod[] }>(['get', 'pods', '-n', NS]).items) {
      for (const c of pod.status.containerStatuses ?? []) {
        const ws = c.containerID ? workingSetBytes(c.containerID) : undefined;
        if (ws === undefined) continue;
        total += ws;
        const name = pod.metadata.labels?.['app.kubernetes.io/name'] ?? pod.metadata.name;
        per[name] = Math.max(per[name] ?? 0, mib(ws));
      }
    }
    figures['controlPlane.workingSetMiB'] = mib(total);
    figures['controlPlane.perReplicaMaxMiB'] = per;
    expect(total).toBeGreaterThan(0);
  });
});

describe('helm upgrade and uninstall', () => {
  it('upgrade applies changed values', async () => {
    ok(await helm(['upgrade', RELEASE, CHART, '-n', NS, '--reuse-values', '--set', 'pilot.replicas=3', '--wait', '--timeout', '5m']), 'helm upgrade');
    const pilots = json<{ status: { readyReplicas?: number } }>(['get', 'deploy', `${RELEASE}-pilot`, '-n', NS]);
    expect(pilots.status.readyReplicas).toBe(3);
  }, 400_000);

  it('uninstall leaves only the CRDs, the injector Secret, the CA root and its ConfigMap, and the Leases', async () => {
    ok(kubectl(['delete', 'namespace', DEMO, '--wait=true', '--timeout=120s']), 'delete demo namespace');
    ok(await helm(['uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '3m']), 'helm uninstall');
    const left = (kind: string, ns?: string) =>
      ok(kubectl(['get', kind, ...(ns ? ['-n', ns] : []), '-l', 'app.kubernetes.io/part-of=octo-mesh', '-o', 'name']), `get ${kind}`)
        .split('\n')
        .filter(Boolean);
    for (const kind of ['deploy', 'svc', 'sa', 'role', 'rolebinding', 'pdb']) expect(left(kind, NS)).toEqual([]);
    // Pods go with their ReplicaSets, through the garbage collector and a graceful stop.
    await until('control-plane pods gone', () => left('pods', NS).length === 0, 90_000);
    for (const kind of ['clusterrole', 'clusterrolebinding', 'mutatingwebhookconfiguration']) expect(left(kind)).toEqual([]);
    expect(left('crd').sort()).toEqual([
      'customresourcedefinition.apiextensions.k8s.io/authorizationpolicies.mesh.octo.io',
      'customresourcedefinition.apiextensions.k8s.io/proxyversions.mesh.octo.io',
      'customresourcedefinition.apiextensions.k8s.io/routepolicies.mesh.octo.io',
    ]);
    // The mesh CA's root stays (a reinstall keeps trusting the certificates pods hold), as do its
    // public roots; both are created by the CA, not by helm.
    expect(left('secret', NS).sort()).toEqual([`secret/${RELEASE}-ca-root`, `secret/${RELEASE}-injector-tls`]);
    expect(left('configmap', NS)).toEqual([`configmap/${RELEASE}-ca-root-cert`]);
  }, 300_000);
});
