/**
 * The demo workload of the cluster end-to-end test: its image (the runtime layer of the mesh's
 * images plus demo-app.mjs) and its manifests — frontend calling catalog v1 and v2 through the
 * sidecars, the mesh Service targeting the sidecar's inbound port 15006.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage, NONROOT, runtimeLayer, type BuiltImage } from '@octo-mesh/images';
import { REPO_ROOT } from '@octo-mesh/testing';

export const DEMO_IMAGE = 'octo.local/octo-mesh/demo:e2e';

export function demoImage(): BuiltImage {
  const runtime = runtimeLayer(REPO_ROOT);
  return buildImage({
    name: DEMO_IMAGE,
    layers: [runtime.entries, [{ path: 'app/demo.mjs', data: readFileSync(join(REPO_ROOT, 'e2e/cluster-e2e/demo-app.mjs')) }]],
    config: { user: `${NONROOT}:${NONROOT}`, entrypoint: ['/usr/local/bin/node', '/app/demo.mjs'], workingDir: '/app' },
  });
}

const deployment = (ns: string, name: string, app: string, version: string, extra: { annotations?: Record<string, string>; socket?: string } = {}) => `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}, namespace: ${ns}}
spec:
  replicas: 1
  selector: {matchLabels: {app: ${app}, version: ${version}}}
  template:
    metadata:
      labels: {app: ${app}, version: ${version}}
      annotations: ${JSON.stringify(extra.socket ? { 'sidecar.octo.io/app-socket': extra.socket } : { 'sidecar.octo.io/app-port': '8080', ...extra.annotations })}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: app
        image: ${DEMO_IMAGE}
        imagePullPolicy: IfNotPresent
        env:
        - {name: SERVICE, value: ${app}}
        - {name: VERSION, value: ${version}}${extra.socket ? `\n        - {name: LISTEN_SOCKET, value: ${extra.socket}}` : ''}
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`;

/** The namespace (labelled for injection), catalog v1 + v2 behind one Service, and frontend. */
export function demoManifests(ns: string): string {
  return `apiVersion: v1
kind: Namespace
metadata: {name: ${ns}, labels: {octo.io/inject: enabled}}
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: ${ns}}
spec:
  selector: {app: catalog}
  # Mesh traffic enters a pod through its sidecar's inbound listener.
  ports: [{name: http, port: 80, targetPort: 15006}]
${deployment(ns, 'catalog-v1', 'catalog', 'v1')}${deployment(ns, 'catalog-v2', 'catalog', 'v2')}${deployment(ns, 'frontend', 'frontend', 'v1', { annotations: { 'sidecar.octo.io/dependencies': 'catalog' } })}`;
}

/** `reviews`: an app whose sidecar reaches it on a Unix socket (OCTO's default), behind a Service like catalog's. */
export function socketAppManifests(ns: string): string {
  return `apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: ${ns}}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80, targetPort: 15006}]
${deployment(ns, 'reviews', 'reviews', 'v1', { socket: '/var/run/octo/app.sock' })}`;
}

export function routePolicy(ns: string, v1: number, v2: number): string {
  return `apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: {name: catalog, namespace: ${ns}}
spec:
  targetRef: {service: catalog}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  rules:
  - name: split
    route:
    - {subset: v1, weight: ${v1}}
    - {subset: v2, weight: ${v2}}
`;
}

/** catalog's RoutePolicy with only a central health check, which `sickVersion`'s instances fail. */
export function healthCheckPolicy(ns: string, sickVersion: string): string {
  return `apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: {name: catalog, namespace: ${ns}}
spec:
  targetRef: {service: catalog}
  healthCheck:
    http: {path: /unhealthy-if/${sickVersion}}
    interval: 1s
    timeout: 500ms
    unhealthyThreshold: 2
`;
}

/** A Job whose pod gets the sidecar, calls catalog through it and exits. */
export function demoJob(ns: string, name: string): string {
  return `apiVersion: batch/v1
kind: Job
metadata: {name: ${name}, namespace: ${ns}}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {app: ${name}}
      annotations: {sidecar.octo.io/dependencies: catalog}
    spec:
      restartPolicy: Never
      containers:
      - name: job
        image: ${DEMO_IMAGE}
        imagePullPolicy: IfNotPresent
        env:
        - {name: MODE, value: job}
        - {name: TARGET, value: catalog}
        - {name: REQUESTS, value: "20"}
        securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
`;
}
