export * from './patch.js';
export { reviewAdmission, type AdmissionReview, type ReviewResult } from './webhook.js';
export { planTls, caBundle, type TlsBundle, type TlsPlan, type TlsPolicy } from './tls-plan.js';
export { issueCa, issueServing, caCommonName, type IssuedCert } from './x509.js';
export { injectorConfig, type InjectorConfig } from './config.js';
