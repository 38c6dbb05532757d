/**
 * Pure translation of Kubernetes objects into the mesh's resource model. The Kubernetes source
 * (kube-source.ts) feeds these from informer caches; tests feed them tables.
 */
import { MODEL_API_VERSION, type Endpoint, type Service, type ServiceEndpoints, type Workload } from '@octo-mesh/api';
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';

/** The label EndpointSlices carry naming their Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

/** The app of a pod: `app.kubernetes.io/name`, else `app`, else undefined (not part of a workload). */
export function appOf(labels: Record<string, string> | undefined): string | undefined {
  return labels?.['app.kubernetes.io/name'] ?? labels?.['app'];
}

const protocolOf = (p: { appProtocol?: string; name?: string; protocol?: string }): Service['spec']['ports'][number]['protocol'] => {
  const hint = (p.appProtocol ?? p.name ?? '').toLowerCase();
  if (p.protocol && p.protocol !== 'TCP') return 'tcp';
  if (hint.includes('grpc')) return 'grpc';
  if (hint.includes('http2') || hint === 'h2c' || hint.includes('kubernetes.io/h2c')) return 'http2';
  if (hint.startsWith('tcp')) return 'tcp';
  return 'http';
};

/** A Service, or undefined for Services the mesh cannot route (headless without ports, ExternalName). */
export function serviceFromKube(svc: V1Service): Service | undefined {
  const ports = svc.spec?.ports ?? [];
  if (!svc.metadata?.name || svc.spec?.type === 'ExternalName' || !ports.length) return undefined;
  return {
    apiVersion: MODEL_API_VERSION,
    kind: 'Service',
    metadata: { name: svc.metadata.name, namespace: svc.metadata.namespace ?? 'default', ...(svc.metadata.labels ? { labels: svc.metadata.labels } : {}) },
    spec: {
      ports: ports.map((p) => ({ name: p.name ?? 'http', port: p.port, protocol: protocolOf(p) })),
      ...(svc.spec?.selector ? { selector: svc.spec.selector } : {}),
    },
  };
}

/**
 * One ServiceEndpoints from all EndpointSlices of a service. Endpoint labels come from the pod
 * the endpoint targets (so subsets such as `version: v2` select them); readiness is health.
 * Addresses that appear in several slices (during slice churn) are merged, ready wins.
 */
export function endpointsFromSlices(namespace: string, service: string, slices: readonly V1EndpointSlice[], pods: ReadonlyMap<string, V1Pod>): ServiceEndpoints {
  const byAddress = new Map<string, Endpoint>();
  for (const slice of slices) {
    const port = slice.ports?.[0]?.port;
    if (port === undefined || port === null) continue;
    for (const ep of slice.endpoints ?? []) {
      const podName = ep.targetRef?.kind === 'Pod' ? ep.targetRef.name : undefined;
      const pod = podName ? pods.get(`${namespace}/${podName}`) : undefined;
      const labels = pod?.metadata?.labels ?? {};
      const app = appOf(labels);
      for (const address of ep.addresses) {
        const id = `${address}:${port}`;
        const healthy = ep.conditions?.ready !== false;
        const prev = byAddress.get(id);
        if (prev && (prev.healthy || !healthy)) continue;
        byAddress.set(id, {
          address,
          port,
          labels,
          healthy,
          ...(ep.zone ? { locality: { zone: ep.zone } } : {}),
          ...(podName ? { instance: podName } : {}),
          ...(app ? { workload: `${namespace}/${app}` } : {}),
        });
      }
    }
  }
  const endpoints = [...byAddress.values()].sort((a, b) => `${a.address}:${a.port}`.localeCompare(`${b.address}:${b.port}`));
  return { apiVersion: MODEL_API_VERSION, kind: 'ServiceEndpoints', metadata: { name: service, namespace }, spec: { endpoints } };
}

/** Workloads (one per namespace and app) from running pods; pods without an app label are skipped. */
export function workloadsFromPods(pods: readonly V1Pod[]): Workload[] {
  const out = new Map<string, Workload>();
  for (const pod of pods) {
    const app = appOf(pod.metadata?.labels);
    if (!app || !pod.metadata?.name || pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') continue;
    const namespace = pod.metadata.namespace ?? 'default';
    const key = `${namespace}/${app}`;
    let w = out.get(key);
    if (!w) {
      const version = pod.metadata.labels?.['app.kubernetes.io/version'] ?? pod.metadata.labels?.['version'];
      w = { apiVersion: MODEL_API_VERSION, kind: 'Workload', metadata: { name: app, namespace }, spec: { app, ...(version ? { version } : {}), labels: {}, instances: [] } };
      out.set(key, w);
    }
    w.spec.instances.push({ id: pod.metadata.name, ...(pod.status?.podIP ? { address: pod.status.podIP } : {}), ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}) });
  }
  for (const w of out.values()) w.spec.instances.sort((a, b) => a.id.localeCompare(b.id));
  return [...out.values()];
}
