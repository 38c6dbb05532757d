/**
 * When the injector's certificates change, as a pure function of what the Secret holds and the
 * time: the CA lives twelve times as long as a serving certificate; a serving certificate is
 * renewed when less than a third of its life is left (or its names changed); the CA is renewed
 * when it would not outlive the next serving certificate, and the old CA stays in the caBundle
 * until then, so API servers keep trusting replicas that still serve the old certificate.
 */
import { X509Certificate } from 'node:crypto';
import { issueCa, issueServing } from './x509.js';

/** The Secret's data (PEM strings). */
export interface TlsBundle {
  'ca.crt': string;
  'ca.key': string;
  'tls.crt': string;
  'tls.key': string;
  /** The CA before the last CA rotation, still trusted until the certificates it signed expire. */
  'ca-previous.crt'?: string;
}

export type TlsPlan = { action: 'keep' } | { action: 'write'; bundle: TlsBundle; reason: string };

export interface TlsPolicy {
  dnsNames: string[];
  servingHours: number;
}

const hoursLeft = (pem: string, now: Date) => (new Date(new X509Certificate(pem).validTo).getTime() - now.getTime()) / 3_600_000;

/** The caBundle for the webhook: the current CA, then the previous one while it matters. */
export function caBundle(b: TlsBundle, now: Date): string {
  const prev = b['ca-previous.crt'];
  let trusted = false;
  try {
    trusted = !!prev && hoursLeft(prev, now) > 0;
  } catch {
    trusted = false; // not a certificate: nothing to keep trusting
  }
  return trusted ? `${b['ca.crt']}${prev}` : b['ca.crt'];
}

export function planTls(current: Partial<TlsBundle> | undefined, now: Date, p: TlsPolicy): TlsPlan {
  const caHours = p.servingHours * 12;
  const fresh = (reason: string, previous?: string): TlsPlan => {
    const ca = issueCa('octo-mesh-injector-ca', now, caHours);
    const leaf = issueServing(ca, p.dnsNames, now, p.servingHours);
    return {
      action: 'write',
      reason,
      bundle: { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem, 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem, ...(previous ? { 'ca-previous.crt': previous } : {}) },
    };
  };
  if (!current?.['ca.crt'] || !current['ca.key'] || !current['tls.crt'] || !current['tls.key']) return fresh('no certificate yet');
  let caLeft: number;
  let leafLeft: number;
  let leaf: X509Certificate;
  try {
    caLeft = hoursLeft(current['ca.crt'], now);
    leaf = new X509Certificate(current['tls.crt']);
    leafLeft = hoursLeft(current['tls.crt'], now);
    if (!leaf.checkIssued(new X509Certificate(current['ca.crt']))) return fresh('serving certificate not issued by the CA');
  } catch (err) {
    return fresh(`unreadable certificate: ${(err as Error).message}`);
  }
  if (caLeft < p.servingHours * 1.5) return fresh(`CA expires in ${caLeft.toFixed(0)} h`, caLeft > 0 ? current['ca.crt'] : undefined);
  const namesOk = p.dnsNames.every((n) => leaf.checkHost(n) === n);
  if (leafLeft < p.servingHours / 3 || !namesOk) {
    const renewed = issueServing({ certPem: current['ca.crt'], keyPem: current['ca.key'] }, p.dnsNames, now, p.servingHours);
    return {
      action: 'write',
      reason: namesOk ? `serving certificate expires in ${leafLeft.toFixed(1)} h` : 'serving certificate names changed',
      bundle: { ...(current as TlsBundle), 'tls.crt': renewed.certPem, 'tls.key': renewed.keyPem },
    };
  }
  return { action: 'keep' };
}
