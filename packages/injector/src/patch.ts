/**
 * The injection decision as a pure function: a pod (as the API server sends it in the
 * AdmissionReview) and the injector's settings in, a verdict out — skip (with why), inject
 * (the JSON patch), or deny (a message naming the field). No I/O, no clock: the webhook in
 * webhook.ts only decodes, calls `planInjection` and encodes.
 *
 * The sidecar is a native sidecar (an init container with `restartPolicy: Always`): the kubelet
 * starts it before the application containers and waits for its startup probe (the agent's
 * `/readyz`, i.e. a proxy child ready), stops it after them, and does not wait for it to finish
 * a Job. The application finds it on the shared emptyDir's Unix socket, named in its env.
 */

/** The parts of a core/v1 Pod the planner reads (the API server sends the whole object). */
export interface PodSpecLike {
  metadata?: { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: {
    hostNetwork?: boolean;
    serviceAccountName?: string;
    containers?: ContainerLike[];
    initContainers?: ContainerLike[];
    volumes?: { name: string }[];
  };
}
export interface ContainerLike {
  name: string;
  ports?: { containerPort: number; name?: string; protocol?: string }[];
  env?: unknown[];
  volumeMounts?: { name: string; mountPath: string }[];
  [k: string]: unknown;
}

/** RFC 6902 operation (only `add` is emitted: a patch that never removes what the user wrote). */
export interface PatchOp {
  op: 'add';
  path: string;
  value: unknown;
}

export type InjectionVerdict = { action: 'skip'; reason: string } | { action: 'inject'; patch: PatchOp[]; workload: string } | { action: 'deny'; message: string };

export interface InjectionSettings {
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** host:port of the meta server the proxy asks which pilot serves it. */
  metaServerAddress: string;
  /** The mesh's cluster name, sent in the node. */
  cluster: string;
  resources: { requests: { cpu: string; memory: string }; limits: { memory: string } };
  /** uid/gid the sidecar runs as (non-root). */
  runAsUser: number;
  /**
   * The mesh CA, when the mesh runs mTLS: the agent gets its URL, the CA's roots inline (from the
   * CA's ConfigMap; undefined until read — pods are refused meanwhile, as they could not get a
   * certificate) and a projected ServiceAccount token for audience `octo-ca`.
   */
  ca?: {
    url: string;
    trustBundle: string | undefined;
    configMap: string;
    /** How the proxy checks the meta server and pilots: spiffe://<trustDomain>/ns/<controlNamespace>/sa/<rolePrefix><role>. */
    trustDomain: string;
    controlNamespace: string;
    rolePrefix: string;
  };
}

export const SIDECAR_NAME = 'octo-sidecar';
export const SOCKET_VOLUME = 'octo-socket';
export const AGENT_VOLUME = 'octo-agent-state';
export const SOCKET_DIR = '/var/run/octo';
export const CA_TOKEN_VOLUME = 'octo-ca-token';
export const CA_TOKEN_DIR = '/var/run/secrets/octo-ca';
/** Lifetime asked of the kubelet for the projected token (it rotates it at 80 %). */
export const CA_TOKEN_SECONDS = 3600;
export const OUTBOUND_SOCKET = `${SOCKET_DIR}/outbound.sock`;
/** The ports the sidecar takes in the pod's network namespace. */
export const SIDECAR_PORTS = { admin: 15000, outbound: 15001, inbound: 15006 } as const;

/** Pod annotations the injector reads and writes. */
export const ANNOTATIONS = {
  /** `"false"` opts a pod out of injection. */
  inject: 'sidecar.octo.io/inject',
  /** The application's port on 127.0.0.1 (default: the first container's first TCP port). */
  appPort: 'sidecar.octo.io/app-port',
  /**
   * The application listens on this Unix socket instead of a port (OCTO's default): a path in
   * the pod's shared socket directory /var/run/octo, where the sidecar reaches it.
   */
  appSocket: 'sidecar.octo.io/app-socket',
  /** Services the workload calls, comma-separated (scopes what the pilot pushes). */
  dependencies: 'sidecar.octo.io/dependencies',
  /** Written on injection; a pod that has it is never injected twice (reinvocation). */
  status: 'sidecar.octo.io/status',
} as const;
/** Pods with this label (the chart puts it on every control-plane pod) are never injected. */
export const CONTROL_PLANE_LABEL = { key: 'app.kubernetes.io/part-of', value: 'octo-mesh' } as const;
/** The namespace label that turns injection on (the webhook's namespaceSelector). */
export const NAMESPACE_LABEL = { key: 'octo.io/inject', value: 'enabled' } as const;

/** The env the application containers get, telling them where the sidecar is. */
export const APP_ENV = [
  { name: 'OCTO_OUTBOUND_SOCKET', value: OUTBOUND_SOCKET },
  { name: 'OCTO_OUTBOUND_ADDRESS', value: `127.0.0.1:${SIDECAR_PORTS.outbound}` },
];

const ptr = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** The workload a pod belongs to: `app.kubernetes.io/name`, else `app`, else its name or generateName stem. */
export function workloadOf(pod: PodSpecLike): string {
  const l = pod.metadata?.labels ?? {};
  return l['app.kubernetes.io/name'] ?? l['app'] ?? pod.metadata?.name ?? (pod.metadata?.generateName ?? 'unknown').replace(/-[a-z0-9]{0,10}-?$/, '');
}

export function planInjection(pod: PodSpecLike, s: InjectionSettings): InjectionVerdict {
  const meta = pod.metadata ?? {};
  const ann = meta.annotations ?? {};
  const labels = meta.labels ?? {};
  const spec = pod.spec ?? {};
  const containers = spec.containers ?? [];
  const inits = spec.initContainers ?? [];

  if (ann[ANNOTATIONS.inject] === 'false') return { action: 'skip', reason: `annotation ${ANNOTATIONS.inject}: "false"` };
  if (labels[CONTROL_PLANE_LABEL.key] === CONTROL_PLANE_LABEL.value) return { action: 'skip', reason: 'a control-plane pod of the mesh' };
  if (ann[ANNOTATIONS.status] === 'injected' || inits.some((c) => c.name === SIDECAR_NAME && c['restartPolicy'] === 'Always')) {
    return { action: 'skip', reason: 'already injected' };
  }

  // A pod the sidecar would break is refused with a reason, never admitted half-working.
  if (spec.hostNetwork) {
    return { action: 'deny', message: `spec.hostNetwork: a host-network pod cannot get the sidecar (its ports ${Object.values(SIDECAR_PORTS).join(', ')} would be the node's); set the annotation ${ANNOTATIONS.inject}: "false" to run it outside the mesh` };
  }
  for (const [kind, list] of [['containers', containers], ['initContainers', inits]] as const) {
    for (const [i, c] of list.entries()) {
      if (c.name === SIDECAR_NAME) return { action: 'deny', message: `spec.${kind}[${i}].name: "${SIDECAR_NAME}" is reserved for the mesh's sidecar` };
      for (const [j, p] of (c.ports ?? []).entries()) {
        if ((Object.values(SIDECAR_PORTS) as number[]).includes(p.containerPort)) {
          return { action: 'deny', message: `spec.${kind}[${i}].ports[${j}].containerPort: ${p.containerPort} is taken by the sidecar (admin 15000, outbound 15001, inbound 15006)` };
        }
      }
      if ((c.volumeMounts ?? []).some((m) => m.mountPath === SOCKET_DIR)) {
        return { action: 'deny', message: `spec.${kind}[${i}].volumeMounts: ${SOCKET_DIR} is where the sidecar's socket is mounted` };
      }
    }
  }
  for (const [i, v] of (spec.volumes ?? []).entries()) {
    if (v.name === SOCKET_VOLUME || v.name === AGENT_VOLUME) return { action: 'deny', message: `spec.volumes[${i}].name: "${v.name}" is reserved for the mesh's sidecar` };
  }
  let appPort: number | undefined;
  const appSocket = ann[ANNOTATIONS.appSocket];
  if (appSocket !== undefined) {
    const where = `metadata.annotations["${ANNOTATIONS.appSocket}"]`;
    if (ann[ANNOTATIONS.appPort] !== undefined) return { action: 'deny', message: `${where}: give ${ANNOTATIONS.appPort} or ${ANNOTATIONS.appSocket}, not both` };
    if (!/^\/var\/run\/octo\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,79}$/.test(appSocket)) return { action: 'deny', message: `${where}: "${appSocket}" must be a file directly in ${SOCKET_DIR} (the directory the app and the sidecar share), e.g. ${SOCKET_DIR}/app.sock` };
    if (appSocket === OUTBOUND_SOCKET) return { action: 'deny', message: `${where}: ${OUTBOUND_SOCKET} is the sidecar's own outbound socket` };
  } else if (ann[ANNOTATIONS.appPort] !== undefined) {
    const raw = ann[ANNOTATIONS.appPort]!;
    appPort = /^\d{1,5}$/.test(raw) ? Number(raw) : NaN;
    if (!(appPort >= 1 && appPort <= 65535)) return { action: 'deny', message: `metadata.annotations["${ANNOTATIONS.appPort}"]: "${raw}" is not a port number (1-65535)` };
  } else {
    appPort = containers.flatMap((c) => c.ports ?? []).find((p) => (p.protocol ?? 'TCP') === 'TCP')?.containerPort;
  }
  const deps = ann[ANNOTATIONS.dependencies];
  if (deps !== undefined && !/^\s*[a-z0-9]([-a-z0-9.]*[a-z0-9])?(\s*,\s*[a-z0-9]([-a-z0-9.]*[a-z0-9])?)*\s*$/.test(deps)) {
    return { action: 'deny', message: `metadata.annotations["${ANNOTATIONS.dependencies}"]: "${deps}" must be service names separated by commas` };
  }
  if (containers.length === 0) return { action: 'deny', message: 'spec.containers: a pod without containers has nothing to carry traffic for' };
  if (s.ca && !s.ca.trustBundle) return { action: 'deny', message: `the mesh CA's roots (ConfigMap ${s.ca.configMap}) are not available to the injector yet, so the sidecar could not get a certificate; retry shortly` };

  const workload = workloadOf(pod);
  const serviceAccount = spec.serviceAccountName ?? 'default';
  // Pod identity into the proxy's node: name and namespace from the downward API (a pod made
  // from a template has no name yet at admission), labels and service account as of admission.
  const identityLabels = Object.entries({ ...labels, 'octo.io/service-account': serviceAccount })
    .map(([k, v]) => `${k}=${v}`)
    .concat('octo.io/pod-name=$(POD_NAME)')
    .sort()
    .join(',');
  const env: unknown[] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'OCTO_AGENT_INSTANCE_ID', value: '$(POD_NAME)' },
    { name: 'OCTO_PROXY_INSTANCE_ID', value: '$(POD_NAME)' },
    { name: 'OCTO_PROXY_NODE_ID', value: 'sidecar~$(POD_IP)~$(POD_NAME).$(POD_NAMESPACE)~$(POD_NAMESPACE).svc.cluster.local' },
    { name: 'OCTO_PROXY_NAMESPACE', value: '$(POD_NAMESPACE)' },
    { name: 'OCTO_PROXY_WORKLOAD', value: workload },
    { name: 'OCTO_PROXY_CLUSTER', value: s.cluster },
    { name: 'OCTO_PROXY_META_ADDRESS', value: s.metaServerAddress },
    { name: 'OCTO_PROXY_LABELS', value: identityLabels },
    ...(labels['version'] ? [{ name: 'OCTO_PROXY_VERSION', value: labels['version'] }] : []),
    ...(appSocket ? [{ name: 'OCTO_PROXY_APP_SOCKET', value: appSocket }] : appPort ? [{ name: 'OCTO_PROXY_APP_PORT', value: String(appPort) }] : []),
    ...(deps ? [{ name: 'OCTO_PROXY_DEPENDENCIES', value: deps.replace(/\s+/g, '') }] : []),
    ...(s.ca
      ? [
          { name: 'OCTO_AGENT_CA_URL', value: s.ca.url },
          { name: 'OCTO_AGENT_CA_TRUST_BUNDLE', value: s.ca.trustBundle },
          { name: 'OCTO_AGENT_CA_TOKEN_FILE', value: `${CA_TOKEN_DIR}/token` },
          { name: 'OCTO_PROXY_TRUST_DOMAIN', value: s.ca.trustDomain },
          { name: 'OCTO_PROXY_CONTROL_NAMESPACE', value: s.ca.controlNamespace },
          { name: 'OCTO_PROXY_ROLE_PREFIX', value: s.ca.rolePrefix },
        ]
      : []),
  ];
  const probe = (failureThreshold: number, periodSeconds: number) => ({ httpGet: { path: '/readyz', port: SIDECAR_PORTS.admin }, periodSeconds, failureThreshold, timeoutSeconds: 2 });
  const sidecar = {
    name: SIDECAR_NAME,
    image: s.image,
    imagePullPolicy: s.imagePullPolicy,
    restartPolicy: 'Always',
    // A 1 MB young generation for the agent, which allocates little: 5.4 MB less RSS per pod and
    // no measurable CPU (docs/footprint.md, round 3). Its proxy children get only proxyNodeFlags.
    command: ['/usr/local/bin/node', '--max-semi-space-size=1', '/app/lego-agent.mjs'],
    args: [
      '--proxy-entry', '/app/proxy.mjs',
      '--outbound-socket', OUTBOUND_SOCKET,
      // Ports as flags: they win over OCTO_AGENT_*_PORT service links (a Service named
      // octo-agent-admin in the app's namespace sets OCTO_AGENT_ADMIN_PORT=tcp://… in the pod).
      '--admin-port', String(SIDECAR_PORTS.admin),
      '--outbound-port', String(SIDECAR_PORTS.outbound),
      '--inbound-port', String(SIDECAR_PORTS.inbound),
      '--outbound-host', '127.0.0.1',
      '--inbound-host', '0.0.0.0',
      // The kubelet probes the pod IP.
      '--admin-host', '0.0.0.0',
      '--state-dir', '/var/lib/octo-agent',
    ],
    env,
    ports: [
      { name: 'octo-inbound', containerPort: SIDECAR_PORTS.inbound, protocol: 'TCP' },
      { name: 'octo-admin', containerPort: SIDECAR_PORTS.admin, protocol: 'TCP' },
    ],
    // Native sidecars: the application starts once this passes (proxy child ready).
    startupProbe: probe(120, 1),
    readinessProbe: probe(3, 5),
    resources: s.resources,
    securityContext: {
      runAsNonRoot: true,
      runAsUser: s.runAsUser,
      runAsGroup: s.runAsUser,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    },
    volumeMounts: [
      { name: SOCKET_VOLUME, mountPath: SOCKET_DIR },
      { name: AGENT_VOLUME, mountPath: '/var/lib/octo-agent' },
      ...(s.ca ? [{ name: CA_TOKEN_VOLUME, mountPath: CA_TOKEN_DIR, readOnly: true }] : []),
    ],
  };

  const patch: PatchOp[] = [];
  patch.push(inits.length ? { op: 'add', path: '/spec/initContainers/0', value: sidecar } : { op: 'add', path: '/spec/initContainers', value: [sidecar] });
  const volumes = [
    { name: SOCKET_VOLUME, emptyDir: {} },
    { name: AGENT_VOLUME, emptyDir: {} },
    // The pod's own ServiceAccount token for the CA only (audience octo-ca), whatever the pod's
    // automountServiceAccountToken says: the kubelet rotates it.
    ...(s.ca ? [{ name: CA_TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: 'octo-ca', expirationSeconds: CA_TOKEN_SECONDS, path: 'token' } }] } }] : []),
  ];
  if (spec.volumes) for (const v of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: v });
  else patch.push({ op: 'add', path: '/spec/volumes', value: volumes });
  for (const [i, c] of containers.entries()) {
    const mount = { name: SOCKET_VOLUME, mountPath: SOCKET_DIR };
    patch.push(c.volumeMounts ? { op: 'add', path: `/spec/containers/${i}/volumeMounts/-`, value: mount } : { op: 'add', path: `/spec/containers/${i}/volumeMounts`, value: [mount] });
    if (c.env) for (const e of APP_ENV) patch.push({ op: 'add', path: `/spec/containers/${i}/env/-`, value: e });
    else patch.push({ op: 'add', path: `/spec/containers/${i}/env`, value: APP_ENV });
  }
  if (meta.annotations) patch.push({ op: 'add', path: `/metadata/annotations/${ptr(ANNOTATIONS.status)}`, value: 'injected' });
  else patch.push({ op: 'add', path: '/metadata/annotations', value: { [ANNOTATIONS.status]: 'injected' } });
  return { action: 'inject', patch, workload };
}
