import { LOG_LEVELS } from '@octo-mesh/runtime';
import { z } from 'zod';

const dns = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi)?$/, 'must be a Kubernetes quantity, e.g. 64Mi or 20m');

/** The injector's configuration: flags (`--webhook-port`), env (`OCTO_INJECTOR_WEBHOOK_PORT`) or a file (`--config`). */
export const injectorConfig = z
  .object({
    host: z.string().default('0.0.0.0').describe('Address the webhook and admin servers bind.'),
    webhookPort: z.coerce.number().int().min(0).max(65535).default(15017).describe('HTTPS: POST /inject (AdmissionReview v1).'),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014).describe('/healthz, /readyz, /metrics.'),
    kubeconfig: z.string().min(1).optional().describe('Kubeconfig file; default: in-cluster, then $KUBECONFIG.'),
    namespace: z.string().regex(dns, 'must be a Kubernetes namespace name (DNS label)').describe('Namespace of the injector Service and its TLS Secret.'),
    serviceName: z.string().regex(dns, 'must be a Service name (DNS label)').describe('The Service the API server calls: names in the serving certificate.'),
    secretName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Secret name').describe('Secret holding the CA and serving certificate.'),
    webhookConfigName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be an object name').describe('MutatingWebhookConfiguration whose caBundle it keeps.'),
    certValidityHours: z.coerce.number().int().min(1).max(87_600).default(720),
    certCheckIntervalMs: z.coerce.number().int().min(1000).max(86_400_000).default(60_000).describe('How often the Secret and caBundle are checked.'),
    sidecarImage: z.string().min(1).describe('Image of the sidecar (LEGO agent + proxy).'),
    sidecarImagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).default('IfNotPresent'),
    metaServerAddress: z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port').describe('The meta server sidecars ask which pilot serves them.'),
    cluster: z.string().max(253).default('kubernetes').describe('Cluster name sent in each sidecar node.'),
    sidecarCpuRequest: quantity.default('20m'),
    sidecarMemoryRequest: quantity.default('64Mi'),
    sidecarMemoryLimit: quantity.default('256Mi'),
    sidecarUid: z.coerce.number().int().min(1).max(2_147_483_647).default(65532).describe('Non-root uid/gid of the sidecar.'),
    caUrl: z.url({ protocol: /^https$/, error: 'must be an https:// URL of the mesh CA' }).optional().describe('The mesh CA sidecars get their certificates from (mTLS mesh); needs caTrustBundleConfigMap.'),
    caTrustBundleConfigMap: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a ConfigMap name').optional().describe('ConfigMap (in namespace, key root-cert.pem) the CA publishes its roots in; passed to each sidecar.'),
    trustDomain: z.string().regex(/^[a-z0-9]([-a-z0-9.]{0,253}[a-z0-9])?$/, 'must be a lower-case DNS name').default('cluster.local').describe('With caUrl: the trust domain sidecars check the control plane in.'),
    rolePrefix: z.string().regex(/^[a-z0-9][-a-z0-9.]*-$/, 'must be the start of a service account name, ending in "-"').default('octo-').describe('With caUrl: the control plane\'s service accounts are <rolePrefix><role> in namespace.'),
    logLevel: z.enum(LOG_LEVELS).default('info'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.caUrl && !c.caTrustBundleConfigMap) ctx.addIssue({ code: 'custom', path: ['caTrustBundleConfigMap'], message: `required with caUrl (${c.caUrl}): where the CA's roots are read` });
    if (!c.caUrl && c.caTrustBundleConfigMap) ctx.addIssue({ code: 'custom', path: ['caUrl'], message: 'required with caTrustBundleConfigMap' });
  });

export type InjectorConfig = z.infer<typeof injectorConfig>;
