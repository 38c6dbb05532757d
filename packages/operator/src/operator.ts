/**
 * The operator: three controllers (ProxyVersion, RoutePolicy, AuthorizationPolicy) fed by one store's change
 * notifications. Reconciling starts when this replica leads and stops when it no longer does;
 * the store's caches stay warm either way, so a new leader starts from a full view at once.
 */
import { Controller } from './controller.js';
import type { EventRecorder } from './events.js';
import type { FleetPoller } from './fleet.js';
import { AuthorizationPolicyReconciler, ProxyVersionReconciler, RoutePolicyReconciler, type ReconcilerDeps } from './reconcilers.js';
import { keyOf, type OperatorStore } from './store.js';

export interface OperatorOptions extends Omit<ReconcilerDeps, 'store' | 'fleet' | 'events'> {
  store: OperatorStore;
  fleet: FleetPoller;
  events: EventRecorder;
}

export class Operator {
  private proxyVersions: Controller | undefined;
  private routePolicies: Controller | undefined;
  private authorizationPolicies: Controller | undefined;
  private leading = false;

  constructor(private readonly opts: OperatorOptions) {
    opts.store.onChange((kind, key) => {
      if (!this.leading) return;
      if (kind === 'ProxyVersion') {
        // A release's change can decide another's fate (supersession, rollback target): look at all.
        this.proxyVersions?.enqueue(key);
        for (const pv of opts.store.list('ProxyVersion')) this.proxyVersions?.enqueue(keyOf(pv));
      } else if (kind === 'AuthorizationPolicy') this.authorizationPolicies?.enqueue(key);
      else this.routePolicies?.enqueue(key);
    });
  }

  get isLeading(): boolean {
    return this.leading;
  }

  /** Starts reconciling (call when this replica becomes leader). */
  startLeading(): void {
    if (this.leading) return;
    this.leading = true;
    const deps = this.opts;
    const common = { logger: deps.logger, metrics: deps.metrics };
    this.proxyVersions = new Controller({ name: 'proxyversion', reconciler: new ProxyVersionReconciler(deps), ...common });
    this.routePolicies = new Controller({ name: 'routepolicy', reconciler: new RoutePolicyReconciler(deps), ...common });
    this.authorizationPolicies = new Controller({ name: 'authorizationpolicy', reconciler: new AuthorizationPolicyReconciler(deps), ...common });
    this.proxyVersions.start();
    this.routePolicies.start();
    this.authorizationPolicies.start();
    for (const pv of deps.store.list('ProxyVersion')) this.proxyVersions.enqueue(keyOf(pv));
    for (const rp of deps.store.list('RoutePolicy')) this.routePolicies.enqueue(keyOf(rp));
    for (const ap of deps.store.list('AuthorizationPolicy')) this.authorizationPolicies.enqueue(keyOf(ap));
    deps.logger.info('reconciling', {
      proxyVersions: deps.store.list('ProxyVersion').length,
      routePolicies: deps.store.list('RoutePolicy').length,
      authorizationPolicies: deps.store.list('AuthorizationPolicy').length,
    });
  }

  /** Stops reconciling and waits for the reconciles in flight. */
  async stopLeading(): Promise<void> {
    this.leading = false;
    await Promise.all([this.proxyVersions?.stop(), this.routePolicies?.stop(), this.authorizationPolicies?.stop()]);
    this.proxyVersions = undefined;
    this.routePolicies = undefined;
    this.authorizationPolicies = undefined;
  }
}
