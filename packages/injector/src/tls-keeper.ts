/**
 * The I/O around `planTls`: reads the Secret, writes what the plan says (create, or replace at the
 * read resourceVersion — a conflict means another replica rotated first, and the next round reads
 * its result), keeps the webhook's caBundle equal to the Secret's CAs, and hands the serving
 * certificate to the HTTPS server. Level-triggered: every round converges from whatever it finds.
 */
import { AdmissionregistrationV1Api, CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import type { Logger } from '@octo-mesh/runtime';
import { caBundle, planTls, type TlsBundle } from './tls-plan.js';

export interface TlsKeeperOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  dnsNames: string[];
  servingHours: number;
  logger: Logger;
  /** Called with a new serving certificate (and at the first round). */
  onCertificate: (cert: string, key: string) => void;
  now?: () => Date;
}

const statusOf = (err: unknown) => (err as { code?: number }).code;
const KEYS = ['ca.crt', 'ca.key', 'tls.crt', 'tls.key', 'ca-previous.crt'] as const;

export class TlsKeeper {
  private readonly core: CoreV1Api;
  private readonly admission: AdmissionregistrationV1Api;
  private served = '';
  /** The CA this replica last read or wrote: still trusted while replicas serve its certificates. */
  private knownCa: string | undefined;
  /** True once a certificate is served and the caBundle names its CA. */
  ready = false;
  lastError: string | undefined;

  constructor(private readonly o: TlsKeeperOptions) {
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.admission = o.kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  }

  /** One round; returns what it did. Throws on API errors other than a lost race. */
  async reconcile(): Promise<string> {
    const now = this.o.now?.() ?? new Date();
    let secret: V1Secret | undefined;
    try {
      secret = await this.core.readNamespacedSecret({ name: this.o.secretName, namespace: this.o.namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const current: Partial<TlsBundle> = {};
    for (const k of KEYS) {
      const v = secret?.data?.[k];
      if (v) current[k] = Buffer.from(v, 'base64').toString('utf8');
    }
    const plan = planTls(secret ? current : undefined, now, { dnsNames: this.o.dnsNames, servingHours: this.o.servingHours });
    let bundle = current as TlsBundle;
    let did = 'kept';
    if (plan.action === 'write') {
      // A new CA (first start, rotation, or a Secret deleted under us): the CA the replicas may
      // still be serving with stays trusted until it expires.
      const previous = plan.bundle['ca-previous.crt'] ?? (plan.bundle['ca.crt'] !== (current['ca.crt'] ?? this.knownCa) ? (current['ca.crt'] ?? this.knownCa) : undefined);
      if (previous && previous !== plan.bundle['ca.crt']) plan.bundle['ca-previous.crt'] = previous;
      // The caBundle first: API servers must trust a new CA before any replica serves with it.
      await this.patchCaBundle(caBundle(plan.bundle, now));
      const body: V1Secret = {
        metadata: { name: this.o.secretName, namespace: this.o.namespace, labels: { 'app.kubernetes.io/part-of': 'octo-mesh' }, ...(secret?.metadata?.resourceVersion ? { resourceVersion: secret.metadata.resourceVersion } : {}) },
        type: 'Opaque',
        data: Object.fromEntries(Object.entries(plan.bundle).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
      };
      try {
        if (secret) await this.core.replaceNamespacedSecret({ name: this.o.secretName, namespace: this.o.namespace, body });
        else await this.core.createNamespacedSecret({ namespace: this.o.namespace, body });
      } catch (err) {
        if (statusOf(err) === 409) return 'lost the race to another replica; next round reads its certificate';
        throw err;
      }
      this.o.logger.info('injector certificate written', { reason: plan.reason, secret: `${this.o.namespace}/${this.o.secretName}` });
      bundle = plan.bundle;
      did = `wrote (${plan.reason})`;
    }
    await this.patchCaBundle(caBundle(bundle, now));
    this.knownCa = bundle['ca.crt'];
    if (bundle['tls.crt'] !== this.served) {
      this.o.onCertificate(bundle['tls.crt'], bundle['tls.key']);
      this.served = bundle['tls.crt'];
      did += ', serving the new certificate';
    }
    this.ready = true;
    this.lastError = undefined;
    return did;
  }

  private async patchCaBundle(pem: string): Promise<void> {
    const want = Buffer.from(pem).toString('base64');
    const cfg = await this.admission.readMutatingWebhookConfiguration({ name: this.o.webhookConfigName });
    const hooks = cfg.webhooks ?? [];
    if (hooks.every((h) => h.clientConfig.caBundle === want)) return;
    for (const h of hooks) h.clientConfig.caBundle = want;
    try {
      await this.admission.replaceMutatingWebhookConfiguration({ name: this.o.webhookConfigName, body: cfg });
      this.o.logger.info('caBundle updated', { webhook: this.o.webhookConfigName });
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // a concurrent writer: the next round compares again
    }
  }
}
