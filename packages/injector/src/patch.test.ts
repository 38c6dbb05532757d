import { describe, expect, it } from '@jest/globals';
import { APP_ENV, OUTBOUND_SOCKET, SIDECAR_NAME, planInjection, workloadOf, type InjectionSettings, type PatchOp, type PodSpecLike } from './patch.js';

const settings: InjectionSettings = {
  image: 'octo.local/octo-mesh/sidecar:dev',
  imagePullPolicy: 'IfNotPresent',
  metaServerAddress: 'octo-meta-server.octo-system.svc:15011',
  cluster: 'kubernetes',
  resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  runAsUser: 65532,
};

const pod = (over: { metadata?: PodSpecLike['metadata']; spec?: Partial<NonNullable<PodSpecLike['spec']>> } = {}): PodSpecLike => ({
  metadata: { generateName: 'catalog-v1-7f9c-', namespace: 'demo', labels: { app: 'catalog', version: 'v1' }, ...over.metadata },
  spec: { containers: [{ name: 'app', image: 'app:1', ports: [{ containerPort: 8080 }] }], ...over.spec },
});

const sidecarOf = (patch: PatchOp[]) => {
  const op = patch.find((p) => p.path.startsWith('/spec/initContainers'))!;
  return (Array.isArray(op.value) ? op.value[0] : op.value) as Record<string, any>;
};
const envOf = (c: Record<string, any>) => Object.fromEntries((c['env'] as { name: string; value?: string }[]).map((e) => [e.name, e.value]));

describe('planInjection: skip', () => {
  it.each([
    // case, pod, reason
    ['opt-out annotation', pod({ metadata: { annotations: { 'sidecar.octo.io/inject': 'false' } } }), 'annotation sidecar.octo.io/inject: "false"'],
    ['a control-plane pod', pod({ metadata: { labels: { 'app.kubernetes.io/part-of': 'octo-mesh' } } }), 'a control-plane pod of the mesh'],
    ['already injected (reinvocation)', pod({ metadata: { annotations: { 'sidecar.octo.io/status': 'injected' } } }), 'already injected'],
    ['a native octo-sidecar already there', pod({ spec: { initContainers: [{ name: SIDECAR_NAME, restartPolicy: 'Always' }] } }), 'already injected'],
  ])('%s', (_case, p, reason) => {
    expect(planInjection(p, settings)).toEqual({ action: 'skip', reason });
  });
});

describe('planInjection: deny with the field', () => {
  it.each([
    // case, pod, message fragment
    ['host network', pod({ spec: { hostNetwork: true } }), 'spec.hostNetwork'],
    ['a container named octo-sidecar', pod({ spec: { containers: [{ name: SIDECAR_NAME }] } }), 'spec.containers[0].name: "octo-sidecar" is reserved'],
    ['an app port the sidecar takes', pod({ spec: { containers: [{ name: 'a', ports: [{ containerPort: 8080 }, { containerPort: 15001 }] }] } }), 'spec.containers[0].ports[1].containerPort: 15001'],
    ['an init container on the inbound port', pod({ spec: { initContainers: [{ name: 'i', ports: [{ containerPort: 15006 }] }] } }), 'spec.initContainers[0].ports[0].containerPort: 15006'],
    ['a volume with the socket volume name', pod({ spec: { volumes: [{ name: 'octo-socket' }] } }), 'spec.volumes[0].name: "octo-socket"'],
    ['a mount on the socket dir', pod({ spec: { containers: [{ name: 'a', volumeMounts: [{ name: 'x', mountPath: '/var/run/octo' }] }] } }), 'spec.containers[0].volumeMounts'],
    ['a bad app-port annotation', pod({ metadata: { annotations: { 'sidecar.octo.io/app-port': 'http' } } }), 'metadata.annotations["sidecar.octo.io/app-port"]: "http"'],
    ['an out-of-range app port', pod({ metadata: { annotations: { 'sidecar.octo.io/app-port': '70000' } } }), '"70000" is not a port number'],
    ['bad dependencies', pod({ metadata: { annotations: { 'sidecar.octo.io/dependencies': 'a;b' } } }), 'sidecar.octo.io/dependencies'],
    ['no containers', pod({ spec: { containers: [] } }), 'spec.containers'],
  ])('%s', (_case, p, fragment) => {
    const v = planInjection(p, settings);
    expect(v.action).toBe('deny');
    expect(v.action === 'deny' && v.message).toContain(fragment);
  });
});

describe('planInjection: inject', () => {
  it('adds a native sidecar first, the socket volume, mounts and env, and the status annotation', () => {
    const v = planInjection(pod(), settings);
    expect(v.action).toBe('inject');
    if (v.action !== 'inject') return;
    expect(v.patch.map((p) => p.path)).toEqual(['/spec/initContainers', '/spec/volumes', '/spec/containers/0/volumeMounts', '/spec/containers/0/env', '/metadata/annotations']);
    const s = sidecarOf(v.patch);
    expect(s['name']).toBe(SIDECAR_NAME);
    expect(s['restartPolicy']).toBe('Always');
    expect(s['startupProbe'].httpGet).toEqual({ path: '/readyz', port: 15000 });
    expect(s['securityContext']).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(s['args']).toEqual(expect.arrayContaining(['--outbound-socket', OUTBOUND_SOCKET, '--proxy-entry', '/app/proxy.mjs']));
    expect(s['command']).toEqual(['/usr/local/bin/node', '--max-semi-space-size=1', '/app/lego-agent.mjs']);
    // Ports as flags, which win over service links (OCTO_AGENT_ADMIN_PORT=tcp://… of a Service octo-agent-admin).
    const args = s['args'] as string[];
    for (const [flag, port] of [['--admin-port', '15000'], ['--outbound-port', '15001'], ['--inbound-port', '15006']]) expect(args[args.indexOf(flag!) + 1]).toBe(port);
    expect(v.patch[3]!.value).toEqual(APP_ENV);
    expect(v.patch[4]!.value).toEqual({ 'sidecar.octo.io/status': 'injected' });
  });

  it('passes the pod identity to the proxy node: workload, namespace, labels, service account, pod name, app port', () => {
    const v = planInjection(pod({ spec: { serviceAccountName: 'catalog-sa' }, metadata: { annotations: { 'sidecar.octo.io/dependencies': 'ratings, reviews' } } }), settings);
    if (v.action !== 'inject') throw new Error(v.action);
    const env = envOf(sidecarOf(v.patch));
    expect(env).toMatchObject({
      OCTO_PROXY_WORKLOAD: 'catalog',
      OCTO_PROXY_NAMESPACE: '$(POD_NAMESPACE)',
      OCTO_PROXY_INSTANCE_ID: '$(POD_NAME)',
      OCTO_PROXY_VERSION: 'v1',
      OCTO_PROXY_APP_PORT: '8080',
      OCTO_PROXY_DEPENDENCIES: 'ratings,reviews',
      OCTO_PROXY_META_ADDRESS: 'octo-meta-server.octo-system.svc:15011',
      OCTO_PROXY_LABELS: 'app=catalog,octo.io/pod-name=$(POD_NAME),octo.io/service-account=catalog-sa,version=v1',
    });
    // $(VAR) references resolve only to variables defined earlier in the list.
    const names = (sidecarOf(v.patch)['env'] as { name: string }[]).map((e) => e.name);
    expect(names.indexOf('POD_NAME')).toBeLessThan(names.indexOf('OCTO_PROXY_INSTANCE_ID'));
  });

  it('gives the agent the mesh CA: URL, roots inline, and a projected token for audience octo-ca only', () => {
    const ca = { url: 'https://octo-ca.octo-system.svc:15016', trustBundle: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', configMap: 'octo-system/octo-ca-root-cert', trustDomain: 'cluster.local', controlNamespace: 'mesh', rolePrefix: 'prod-' };
    const v = planInjection(pod({ spec: { automountServiceAccountToken: false } as never }), { ...settings, ca });
    if (v.action !== 'inject') throw new Error(v.action);
    const s = sidecarOf(v.patch);
    expect(envOf(s)).toMatchObject({ OCTO_AGENT_CA_URL: ca.url, OCTO_AGENT_CA_TRUST_BUNDLE: ca.trustBundle, OCTO_AGENT_CA_TOKEN_FILE: '/var/run/secrets/octo-ca/token', OCTO_PROXY_CONTROL_NAMESPACE: 'mesh', OCTO_PROXY_ROLE_PREFIX: 'prod-', OCTO_PROXY_TRUST_DOMAIN: 'cluster.local' });
    expect(s['volumeMounts']).toContainEqual({ name: 'octo-ca-token', mountPath: '/var/run/secrets/octo-ca', readOnly: true });
    const volumes = v.patch.find((p) => p.path === '/spec/volumes')!.value as Record<string, unknown>[];
    expect(volumes).toContainEqual({ name: 'octo-ca-token', projected: { sources: [{ serviceAccountToken: { audience: 'octo-ca', expirationSeconds: 3600, path: 'token' } }] } });
    // Without a CA, none of it.
    const plain = planInjection(pod(), settings);
    if (plain.action !== 'inject') throw new Error(plain.action);
    expect(Object.keys(envOf(sidecarOf(plain.patch))).filter((k) => k.startsWith('OCTO_AGENT_CA'))).toEqual([]);
  });

  it('points the sidecar at an app on a Unix socket in the shared directory (sidecar.octo.io/app-socket), instead of a port', () => {
    const v = planInjection(pod({ metadata: { annotations: { 'sidecar.octo.io/app-socket': '/var/run/octo/app.sock' } } }), settings);
    if (v.action !== 'inject') throw new Error(v.action);
    const env = envOf(sidecarOf(v.patch));
    expect(env['OCTO_PROXY_APP_SOCKET']).toBe('/var/run/octo/app.sock');
    expect(env['OCTO_PROXY_APP_PORT']).toBeUndefined(); // the proxy refuses both at once
  });

  it.each([
    ['/tmp/app.sock', 'must be a file directly in /var/run/octo'],
    ['/var/run/octo/sub/app.sock', 'must be a file directly in /var/run/octo'],
    ['/var/run/octo/..', 'must be a file directly in /var/run/octo'],
    ['/var/run/octo/outbound.sock', "is the sidecar's own outbound socket"],
  ])('denies app-socket %s, naming the annotation', (path, why) => {
    const v = planInjection(pod({ metadata: { annotations: { 'sidecar.octo.io/app-socket': path } } }), settings);
    expect(v).toEqual({ action: 'deny', message: expect.stringContaining(`metadata.annotations["sidecar.octo.io/app-socket"]`) });
    expect((v as { message: string }).message).toContain(why);
  });

  it('denies app-socket together with app-port', () => {
    const v = planInjection(pod({ metadata: { annotations: { 'sidecar.octo.io/app-socket': '/var/run/octo/app.sock', 'sidecar.octo.io/app-port': '8080' } } }), settings);
    expect(v).toEqual({ action: 'deny', message: expect.stringContaining('give sidecar.octo.io/app-port or sidecar.octo.io/app-socket, not both') });
  });

  it('refuses a pod while the CA\'s roots are not known, naming the ConfigMap (its sidecar could get no certificate)', () => {
    const v = planInjection(pod(), { ...settings, ca: { url: 'https://octo-ca.octo-system.svc:15016', trustBundle: undefined, configMap: 'octo-system/octo-ca-root-cert', trustDomain: 'cluster.local', controlNamespace: 'octo-system', rolePrefix: 'octo-' } });
    expect(v).toEqual({ action: 'deny', message: expect.stringContaining('ConfigMap octo-system/octo-ca-root-cert') });
  });

  it('appends to what the pod already has, never replacing it', () => {
    const v = planInjection(
      pod({
        metadata: { annotations: { note: 'x' } },
        spec: {
          initContainers: [{ name: 'migrate' }],
          volumes: [{ name: 'data' }],
          containers: [{ name: 'app', env: [{ name: 'A', value: '1' }], volumeMounts: [{ name: 'data', mountPath: '/data' }] }, { name: 'logger' }],
        },
      }),
      settings,
    );
    if (v.action !== 'inject') throw new Error(v.action);
    expect(v.patch.map((p) => p.path)).toEqual([
      '/spec/initContainers/0',
      '/spec/volumes/-',
      '/spec/volumes/-',
      '/spec/containers/0/volumeMounts/-',
      '/spec/containers/0/env/-',
      '/spec/containers/0/env/-',
      '/spec/containers/1/volumeMounts',
      '/spec/containers/1/env',
      '/metadata/annotations/sidecar.octo.io~1status',
    ]);
    expect(envOf(sidecarOf(v.patch))['OCTO_PROXY_APP_PORT']).toBeUndefined();
  });

  it('takes the app port from the annotation over the container port', () => {
    const v = planInjection(pod({ metadata: { annotations: { 'sidecar.octo.io/app-port': '9090' } } }), settings);
    if (v.action !== 'inject') throw new Error(v.action);
    expect(envOf(sidecarOf(v.patch))['OCTO_PROXY_APP_PORT']).toBe('9090');
  });
});

describe('workloadOf', () => {
  it.each([
    // labels, name, generateName, workload
    [{ 'app.kubernetes.io/name': 'a', app: 'b' }, undefined, undefined, 'a'],
    [{ app: 'b' }, 'x', undefined, 'b'],
    [{}, 'standalone', undefined, 'standalone'],
    [{}, undefined, 'web-5d8f7c9b4-', 'web'],
  ])('%j %s %s -> %s', (labels, name, generateName, want) => {
    expect(workloadOf({ metadata: { labels, ...(name ? { name } : {}), ...(generateName ? { generateName } : {}) } })).toBe(want);
  });
});
