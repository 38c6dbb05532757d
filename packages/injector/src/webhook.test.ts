import { describe, expect, it } from '@jest/globals';
import type { InjectionSettings } from './patch.js';
import { reviewAdmission } from './webhook.js';

const settings: InjectionSettings = {
  image: 'sidecar:dev',
  imagePullPolicy: 'IfNotPresent',
  metaServerAddress: 'meta:15011',
  cluster: 'k',
  resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { memory: '256Mi' } },
  runAsUser: 65532,
};
const review = (object: unknown, kind = 'Pod') => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1', kind: { kind }, namespace: 'demo', operation: 'CREATE', object } });

describe('reviewAdmission', () => {
  it('answers an injection with a base64 JSONPatch and the request uid', () => {
    const { review: r, verdict } = reviewAdmission(review({ metadata: { labels: { app: 'a' } }, spec: { containers: [{ name: 'app' }] } }), settings);
    expect(verdict.action).toBe('inject');
    const resp = r['response'] as { uid: string; allowed: boolean; patchType: string; patch: string };
    expect(resp).toMatchObject({ uid: 'u-1', allowed: true, patchType: 'JSONPatch' });
    expect(JSON.parse(Buffer.from(resp.patch, 'base64').toString())[0].path).toBe('/spec/initContainers');
  });
  it('denies with 403 and the field', () => {
    const { review: r } = reviewAdmission(review({ spec: { hostNetwork: true, containers: [{ name: 'app' }] } }), settings);
    expect(r['response']).toMatchObject({ uid: 'u-1', allowed: false, status: { code: 403 } });
    expect((r['response'] as { status: { message: string } }).status.message).toMatch(/^octo-mesh sidecar injection: spec.hostNetwork/);
  });
  it('allows what is not a pod, untouched', () => {
    expect(reviewAdmission(review({}, 'Service'), settings).review['response']).toEqual({ uid: 'u-1', allowed: true });
  });
  it.each([[undefined], [{}], [{ kind: 'AdmissionReview', request: {} }]])('rejects a malformed body %j', (body) => {
    expect(reviewAdmission(body, settings).review['response']).toMatchObject({ allowed: false, status: { code: 400 } });
  });
});
