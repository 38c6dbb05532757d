/**
 * AdmissionReview in, AdmissionReview out (admission.k8s.io/v1), around `planInjection`. Pure:
 * the HTTPS server in main.ts only reads the body and writes what this returns.
 */
import { planInjection, type InjectionSettings, type InjectionVerdict, type PodSpecLike } from './patch.js';

export interface AdmissionReview {
  apiVersion?: string;
  kind?: string;
  request?: { uid?: string; kind?: { kind?: string }; namespace?: string; operation?: string; object?: PodSpecLike; dryRun?: boolean };
}

export interface ReviewResult {
  review: Record<string, unknown>;
  verdict: InjectionVerdict | { action: 'error'; message: string };
}

export function reviewAdmission(body: unknown, settings: InjectionSettings): ReviewResult {
  const ar = body as AdmissionReview;
  const uid = ar?.request?.uid;
  const respond = (response: Record<string, unknown>) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: uid ?? '', ...response } });
  if (ar?.kind !== 'AdmissionReview' || !uid || !ar.request) {
    const message = 'not an admission.k8s.io/v1 AdmissionReview with a request uid';
    return { review: respond({ allowed: false, status: { code: 400, message } }), verdict: { action: 'error', message } };
  }
  if (ar.request.kind?.kind !== 'Pod' || !ar.request.object) {
    return { review: respond({ allowed: true }), verdict: { action: 'skip', reason: `not a pod (${ar.request.kind?.kind ?? 'unknown kind'})` } };
  }
  const pod: PodSpecLike = { ...ar.request.object, metadata: { ...ar.request.object.metadata, namespace: ar.request.object.metadata?.namespace ?? ar.request.namespace } };
  const verdict = planInjection(pod, settings);
  switch (verdict.action) {
    case 'skip':
      return { review: respond({ allowed: true }), verdict };
    case 'deny':
      return { review: respond({ allowed: false, status: { code: 403, reason: 'Forbidden', message: `octo-mesh sidecar injection: ${verdict.message}` } }), verdict };
    case 'inject':
      return { review: respond({ allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(verdict.patch)).toString('base64') }), verdict };
  }
}
