import { MODEL_API_VERSION, type Endpoint, type Service, type ServiceEndpoints, type Workload } from '@octo-mesh/api';

export interface InstanceRegistration {
  namespace: string;
  service: string;
  instanceId: string;
  address: string;
  port: number;
  labels: Record<string, string>;
  region: string;
  zone: string;
  workload: string;
  servicePort: number;
  ttlMs: number;
}

interface Instance extends InstanceRegistration {
  lastHeartbeat: number;
}

/** `namespace/service`. */
export type ServiceKey = string;

/**
 * The service registry for workloads outside Kubernetes: instances register, heartbeat and
 * deregister. Pure state (time passed in). An instance that misses its TTL turns unhealthy (peers
 * stop sending it traffic but keep it known); after three TTLs it is removed. What the registry
 * knows is published to the dispatcher as a Service plus ServiceEndpoints per service.
 */
export class InstanceRegistry {
  private readonly instances = new Map<string, Instance>();

  constructor(private readonly opts: { defaultTtlMs: number; maxTtlMs: number }) {}

  private id(namespace: string, service: string, instanceId: string): string {
    return `${namespace || 'default'}/${service}/${instanceId}`;
  }

  /** Registers (or re-registers) an instance; returns the granted TTL and the affected service. */
  register(r: InstanceRegistration, now: number): { ttlMs: number; service: ServiceKey } {
    const ttlMs = Math.min(r.ttlMs > 0 ? r.ttlMs : this.opts.defaultTtlMs, this.opts.maxTtlMs);
    const namespace = r.namespace || 'default';
    this.instances.set(this.id(namespace, r.service, r.instanceId), {
      ...r,
      namespace,
      workload: r.workload || r.service,
      servicePort: r.servicePort || 80,
      ttlMs,
      lastHeartbeat: now,
    });
    return { ttlMs, service: `${namespace}/${r.service}` };
  }

  /** Renews; undefined when unknown (register again). Returns the service when its health changed. */
  heartbeat(namespace: string, service: string, instanceId: string, now: number): { ttlMs: number; changed?: ServiceKey } | undefined {
    const i = this.instances.get(this.id(namespace, service, instanceId));
    if (!i) return undefined;
    const wasHealthy = this.healthy(i, now);
    i.lastHeartbeat = now;
    return { ttlMs: i.ttlMs, ...(wasHealthy ? {} : { changed: `${i.namespace}/${i.service}` }) };
  }

  deregister(namespace: string, service: string, instanceId: string): ServiceKey | undefined {
    const id = this.id(namespace, service, instanceId);
    const i = this.instances.get(id);
    if (!i) return undefined;
    this.instances.delete(id);
    return `${i.namespace}/${i.service}`;
  }

  private healthy(i: Instance, now: number): boolean {
    return now - i.lastHeartbeat <= i.ttlMs;
  }

  /**
   * Services whose published state changes at `now` since `since` (instances that turned unhealthy
   * or were removed); removes instances past three TTLs.
   */
  sweep(since: number, now: number): Set<ServiceKey> {
    const changed = new Set<ServiceKey>();
    for (const [id, i] of this.instances) {
      const key = `${i.namespace}/${i.service}`;
      if (now - i.lastHeartbeat > 3 * i.ttlMs) {
        this.instances.delete(id);
        changed.add(key);
      } else if (this.healthy(i, since) && !this.healthy(i, now)) changed.add(key);
    }
    return changed;
  }

  /** What to publish for a service: undefined when it has no instances (delete it). */
  resources(key: ServiceKey, now: number): { service: Service; endpoints: ServiceEndpoints } | undefined {
    const [namespace = 'default', name = ''] = key.split('/');
    const members = [...this.instances.values()].filter((i) => i.namespace === namespace && i.service === name).sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    if (!members.length) return undefined;
    const ports = [...new Set(members.map((m) => m.servicePort))].sort((a, b) => a - b);
    const endpoints: Endpoint[] = members.map((m) => ({
      address: m.address,
      port: m.port,
      labels: m.labels,
      healthy: this.healthy(m, now),
      instance: m.instanceId,
      workload: `${m.namespace}/${m.workload}`,
      ...(m.region || m.zone ? { locality: { ...(m.region ? { region: m.region } : {}), ...(m.zone ? { zone: m.zone } : {}) } } : {}),
    }));
    const metadata = { name, namespace, labels: { 'mesh.octo.io/source': 'registry' } };
    return {
      service: { apiVersion: MODEL_API_VERSION, kind: 'Service', metadata, spec: { ports: ports.map((port, i) => ({ name: i === 0 ? 'http' : `http-${port}`, port, protocol: 'http' as const })) } },
      endpoints: { apiVersion: MODEL_API_VERSION, kind: 'ServiceEndpoints', metadata, spec: { endpoints } },
    };
  }

  /** `namespace/workload` of every registered instance. */
  workloadKeys(): Set<string> {
    return new Set([...this.instances.values()].map((i) => `${i.namespace}/${i.workload}`));
  }

  /** The Workload (app) with its registered instances; undefined when it has none (delete it). */
  workload(key: string): Workload | undefined {
    const [namespace = 'default', app = ''] = key.split('/');
    const members = [...this.instances.values()].filter((i) => i.namespace === namespace && i.workload === app).sort((a, b) => a.instanceId.localeCompare(b.instanceId));
    if (!members.length) return undefined;
    const versions = new Set(members.map((m) => m.labels['version']).filter((v): v is string => !!v));
    return {
      apiVersion: MODEL_API_VERSION,
      kind: 'Workload',
      metadata: { name: app, namespace, labels: { 'mesh.octo.io/source': 'registry' } },
      spec: {
        app,
        ...(versions.size === 1 ? { version: [...versions][0]! } : {}),
        labels: {},
        instances: members.map((m) => ({ id: m.instanceId, address: m.address })),
      },
    };
  }

  list(now: number): (InstanceRegistration & { healthy: boolean; lastHeartbeat: number })[] {
    return [...this.instances.values()].map((i) => ({ ...i, healthy: this.healthy(i, now) }));
  }
}
