/**
 * The `MeshSource` (@octo-mesh/contracts) backed by the dispatcher: what a pilot reads the mesh
 * through in production.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { AuthorizationPolicy, EndpointHealth, RoutePolicy, Service, ServiceEndpoints } from '@octo-mesh/api';
import { DispatcherWatchEventType, type DispatcherWatchEvent, type DispatcherWatchRequest } from '@octo-mesh/proto';
import { Backoff, NotFoundError, recordError, sleep, type Logger } from '@octo-mesh/runtime';
import { applyEndpointHealth, authorizationTarget, backingOf, compareVersions, policyTarget, splitServiceKey, type MeshChange, type MeshSource, type MeshWatch, type ServiceBacking, type ServiceData, type ServiceKey } from '@octo-mesh/contracts';
import type { DispatcherConnection } from './dispatcher.js';

const CHANGE_KIND: Record<string, MeshChange['kind'] | undefined> = {
  Service: 'service',
  ServiceEndpoints: 'endpoints',
  // The health checker's verdicts change endpoint health only: an EDS push.
  EndpointHealth: 'endpoints',
  RoutePolicy: 'routePolicy',
  AuthorizationPolicy: 'authorizationPolicy',
};

export interface DispatcherMeshSourceOptions {
  connection: DispatcherConnection;
  /** The pilot's id, shown in the dispatcher's debug API. */
  clientId: string;
  logger?: Logger;
}

/**
 * Fetches services, endpoints and policies from the dispatcher on demand, and turns its change
 * notifications into `MeshChange`s for the watched services only (the subscription is by service,
 * so the dispatcher filters). A broken stream is reopened with backoff, resuming from the last
 * version seen; when the dispatcher cannot replay (it restarted, or the version is too old) the
 * watcher gets `{kind: 'resync'}` and refetches everything it watches.
 */
export class DispatcherMeshSource implements MeshSource {
  /** Since when a watch stream has been down (no notifications arrive), if one is. */
  private watchDownSince: number | undefined;
  private watchError = '';

  constructor(private readonly opts: DispatcherMeshSourceOptions) {}

  /**
   * A readiness check: true, or why the pilot's view may be stale — a watch stream down for longer
   * than `graceMs` (changes would not be noticed).
   */
  health(graceMs = 5000, now = Date.now()): true | string {
    if (this.watchDownSince === undefined || now - this.watchDownSince < graceMs) return true;
    return `dispatcher watch down for ${Math.round((now - this.watchDownSince) / 1000)} s${this.watchError ? `: ${this.watchError}` : ''}`;
  }

  async fetch(services: readonly ServiceKey[]): Promise<Map<ServiceKey, ServiceData>> {
    const { connection } = this.opts;
    const out = new Map<ServiceKey, ServiceData>();
    const optional = <T>(p: Promise<T>) => p.catch((err: unknown) => (err instanceof NotFoundError ? undefined : Promise.reject(err)));
    // The policies of each service are listed by their target (a policy may live in another
    // namespace), paged, so neither the number of policies in the mesh nor in one namespace makes
    // a message too large; a list started after a notification is at least as new as its change.
    await Promise.all(
      services.map(async (key) => {
        const policies = connection.list('RoutePolicy', '', { service: key }).then((r) => r.items as RoutePolicy[]);
        // Listed by service like RoutePolicies; the namespace is the service's (a policy protects a service of its own namespace).
        const authz = connection.list('AuthorizationPolicy', splitServiceKey(key).namespace, { service: key }).then((r) => r.items as AuthorizationPolicy[]);
        const [service, endpoints, health, all, authorization] = await Promise.all([
          optional(connection.get('Service', key)),
          optional(connection.get('ServiceEndpoints', key)),
          optional(connection.get('EndpointHealth', key)),
          policies,
          authz,
        ]);
        if (!service) return;
        out.set(key, {
          service: service as Service,
          // The central checker's verdicts are applied here, so pilots translate one health.
          endpoints: applyEndpointHealth((endpoints as ServiceEndpoints | undefined)?.spec.endpoints ?? [], health as EndpointHealth | undefined),
          policies: all.filter((p) => policyTarget(p) === key),
          authorizationPolicies: authorization.filter((p) => authorizationTarget(p) === key),
        });
      }),
    );
    return out;
  }

  /** Services and ServiceEndpoints of the namespace, listed (paged) and joined by service. */
  async backing(namespace: string): Promise<ServiceBacking[]> {
    const { connection } = this.opts;
    const [services, endpoints] = await Promise.all([connection.list('Service', namespace), connection.list('ServiceEndpoints', namespace)]);
    const byKey = new Map((endpoints.items as ServiceEndpoints[]).map((e) => [`${e.metadata.namespace ?? 'default'}/${e.metadata.name}`, e.spec.endpoints]));
    return (services.items as Service[]).map((s) => {
      const key = `${s.metadata.namespace ?? 'default'}/${s.metadata.name}`;
      return backingOf(key, { service: s, endpoints: byKey.get(key) ?? [] });
    });
  }

  watch(services: Iterable<ServiceKey>, onChange: (changes: MeshChange[]) => void): MeshWatch {
    let watched = new Set(services);
    let namespaces = new Set<string>();
    let closed = false;
    let stream: ClientDuplexStream<DispatcherWatchRequest, DispatcherWatchEvent> | undefined;
    let version = '';
    const backoff = new Backoff({ initialMs: 100, maxMs: 3000, jitter: 0.5 });
    const subscriptions = () => [
      ...[...watched].map((service) => ({ kind: '', namespace: '', name: '', service })),
      // Every service of these namespaces: which services a sidecar's workload backs (backing()).
      ...[...namespaces].flatMap((namespace) => ['Service', 'ServiceEndpoints'].map((kind) => ({ kind, namespace, name: '', service: '' }))),
    ];
    const deliver = (changes: MeshChange[]) => setImmediate(() => !closed && changes.length && onChange(changes));

    const once = () =>
      new Promise<void>((resolve) => {
        const s = this.opts.connection.watch();
        stream = s;
        s.write({ clientId: this.opts.clientId, subscriptions: subscriptions(), resumeVersion: version });
        s.on('data', (ev: DispatcherWatchEvent) => {
          if (ev.type === DispatcherWatchEventType.SYNCED || ev.type === DispatcherWatchEventType.RESYNC) {
            this.watchDownSince = undefined;
            this.watchError = '';
          }
          if (ev.type === DispatcherWatchEventType.SYNCED) {
            backoff.reset();
            if (!version) {
              // First contact: changes between the caller's fetch and this point were not
              // replayed (there was no version to replay from), so have everything refetched.
              version = ev.version;
              deliver([{ kind: 'resync' }]);
            }
          } else if (ev.type === DispatcherWatchEventType.RESYNC) {
            version = ev.version;
            deliver([{ kind: 'resync' }]);
          } else if (ev.type === DispatcherWatchEventType.NOTIFY) {
            if (compareVersions(ev.version, version) > 0) version = ev.version;
            const kind = CHANGE_KIND[ev.kind];
            const byNamespace = (ev.kind === 'Service' || ev.kind === 'ServiceEndpoints') && namespaces.has(ev.namespace);
            if (kind && ev.service && (watched.has(ev.service) || byNamespace)) deliver([{ kind, service: ev.service }]);
          }
        });
        s.on('error', (err: Error) => {
          this.watchError = err.message;
          resolve();
        });
        s.on('end', () => resolve());
      });

    void (async () => {
      while (!closed) {
        await once();
        if (closed) break;
        this.watchDownSince ??= Date.now();
        recordError(this.opts.logger, 'dispatcher watch', this.watchError || 'stream ended', { clientId: this.opts.clientId, resumeVersion: version });
        await sleep(backoff.next());
      }
    })();

    return {
      update: (next, ns) => {
        watched = new Set(next);
        namespaces = new Set(ns ?? []);
        // Replaces the subscriptions on the open stream; a reconnect sends the current set anyway.
        stream?.write({ clientId: this.opts.clientId, subscriptions: subscriptions(), resumeVersion: version });
      },
      close: () => {
        closed = true;
        stream?.cancel();
      },
    };
  }
}
