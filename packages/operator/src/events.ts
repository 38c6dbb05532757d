/**
 * Events on the objects the operator reconciles (core/v1 Events), so `kubectl describe
 * proxyversion` shows the rollout's history. Best effort: a failed event is logged and counted,
 * never fails a reconcile.
 */
import { randomBytes } from 'node:crypto';
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { API_VERSION } from '@octo-mesh/api';
import type { Logger } from '@octo-mesh/runtime';
import type { OperatorMetrics } from './metrics.js';

export interface EventTarget {
  kind: string;
  namespace: string;
  name: string;
  uid?: string | undefined;
}

export interface EventRecorder {
  record(target: EventTarget, severity: 'Normal' | 'Warning', reason: string, message: string): Promise<void>;
}

/** Events as structured log lines (embedded mode: there is no Kubernetes to keep them). */
export class LogEventRecorder implements EventRecorder {
  constructor(private readonly logger: { info(m: string, f: object): void; warn(m: string, f: object): void }) {}
  async record(target: EventTarget, severity: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const fields = { kind: target.kind, namespace: target.namespace, name: target.name, reason, event: message };
    if (severity === 'Warning') this.logger.warn('event', fields);
    else this.logger.info('event', fields);
  }
}

/** Events kept in memory (tests). */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: { target: EventTarget; severity: string; reason: string; message: string }[] = [];
  async record(target: EventTarget, severity: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    this.events.push({ target, severity, reason, message });
  }
}

export class KubernetesEventRecorder implements EventRecorder {
  private readonly api: CoreV1Api;
  constructor(
    kubeConfig: KubeConfig,
    private readonly identity: string,
    private readonly logger: Logger,
    private readonly metrics: OperatorMetrics,
  ) {
    this.api = kubeConfig.makeApiClient(CoreV1Api);
  }

  async record(target: EventTarget, severity: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    this.metrics.events.inc({ reason });
    try {
      await this.api.createNamespacedEvent({
        namespace: target.namespace,
        body: {
          metadata: { name: `${target.name}.${randomBytes(8).toString('hex')}`, namespace: target.namespace },
          involvedObject: { apiVersion: API_VERSION, kind: target.kind, namespace: target.namespace, name: target.name, ...(target.uid ? { uid: target.uid } : {}) },
          type: severity,
          reason,
          message: message.slice(0, 1024),
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          source: { component: 'octo-operator' },
          reportingComponent: 'octo-operator',
          reportingInstance: this.identity,
        },
      });
    } catch (err) {
      this.metrics.errors.inc({ where: 'event' });
      this.logger.warn('could not record event', { ...target, reason, error: (err as Error).message });
    }
  }
}
