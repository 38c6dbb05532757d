/**
 * The mesh CA's core, without I/O: its roots, which one signs, the trust bundle, issuing a
 * workload certificate for an already authenticated identity, and checking a client certificate
 * presented for renewal. Time is always passed in.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { parseCsr, CsrError } from './csr.js';
import { CaRefusal, chooseTtl, leafValidity, type TtlPolicy } from './policy.js';
import { parseSpiffeId, spiffeId, SpiffeIdError, type WorkloadIdentity } from './spiffe.js';
import { distinguishedName, keyIdentifier, newKeyPair, signCertificate, signerOf, spkiOf, type CertificateSigner } from './x509.js';

export interface RootMaterial {
  /** The root's name in the CA's configuration (`signing` refers to it). */
  name: string;
  certPem: string;
  /** Needed only for the signing root; a trust-only root (being retired) may have none. */
  keyPem?: string;
}

/** A new self-signed root: ECDSA P-256, CA:true, pathLen 0 (roots sign workloads directly). */
export function createRoot(opts: { trustDomain: string; now: Date; lifetimeSeconds?: number; commonName?: string }): { certPem: string; keyPem: string } {
  const { privateKey } = newKeyPair();
  const spki = spkiOf(privateKey);
  const subject = distinguishedName({ organization: opts.trustDomain, commonName: opts.commonName ?? `octo-mesh root ${opts.now.toISOString()}` });
  const notBefore = new Date(opts.now.getTime() - 60_000);
  const notAfter = new Date(opts.now.getTime() + (opts.lifetimeSeconds ?? 10 * 365 * 86_400) * 1000);
  const certPem = signCertificate({ subject, spki, notBefore, notAfter, ca: { pathLen: 0 } }, { subject, privateKey, keyId: keyIdentifier(spki) });
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

export interface IssuedWorkloadCertificate {
  spiffeId: string;
  /** The leaf only: roots sign leaves directly. */
  certificateChain: string[];
  trustBundle: string[];
  expiresAt: Date;
  serialNumber: string;
}

export interface CertificateAuthorityOptions extends TtlPolicy {
  trustDomain: string;
  roots: RootMaterial[];
  /** Name of the root that signs. */
  signing: string;
}

interface LoadedRoot {
  name: string;
  certPem: string;
  cert: X509Certificate;
  notAfter: Date;
  signer?: CertificateSigner;
}

/**
 * Thread-safety is not a concern (one event loop); the object is immutable after construction —
 * a root rotation step is a new CertificateAuthority built from the new configuration.
 */
export class CertificateAuthority {
  readonly trustDomain: string;
  private readonly roots: LoadedRoot[];
  private readonly signing: LoadedRoot;

  constructor(private readonly opts: CertificateAuthorityOptions) {
    const td = parseSpiffeId(`spiffe://${opts.trustDomain}/ns/x/sa/x`).trustDomain;
    this.trustDomain = td;
    const seen = new Set<string>();
    this.roots = opts.roots.map((r, i) => {
      if (seen.has(r.name)) throw new Error(`roots[${i}].name: ${JSON.stringify(r.name)} appears twice`);
      seen.add(r.name);
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(r.certPem);
      } catch (err) {
        throw new Error(`roots[${i}] (${r.name}).cert: not a PEM certificate (${(err as Error).message})`);
      }
      if (!cert.ca) throw new Error(`roots[${i}] (${r.name}).cert: not a CA certificate`);
      let signer: CertificateSigner | undefined;
      if (r.keyPem) {
        let key: KeyObject;
        try {
          key = createPrivateKey(r.keyPem);
        } catch (err) {
          throw new Error(`roots[${i}] (${r.name}).key: not a PEM private key (${(err as Error).message})`);
        }
        if (!cert.checkPrivateKey(key)) throw new Error(`roots[${i}] (${r.name}).key: does not match its certificate`);
        signer = signerOf(r.certPem, key);
      }
      return { name: r.name, certPem: new X509Certificate(r.certPem).toString(), cert, notAfter: new Date(cert.validTo), ...(signer ? { signer } : {}) };
    });
    const signing = this.roots.find((r) => r.name === opts.signing);
    if (!signing) throw new Error(`signing: no root named ${JSON.stringify(opts.signing)} (roots: ${this.roots.map((r) => r.name).join(', ')})`);
    if (!signing.signer) throw new Error(`signing: root ${JSON.stringify(opts.signing)} has no key`);
    this.signing = signing;
  }

  /** Every root that has not expired at `now`, as PEM (what workloads must trust). */
  trustBundle(now: Date): string[] {
    return this.roots.filter((r) => r.notAfter > now && new Date(r.cert.validFrom) <= now).map((r) => r.certPem);
  }

  /** Each root's name and expiry (for gauges and /readyz). */
  rootsInfo(): { name: string; notAfter: Date; signing: boolean }[] {
    return this.roots.map((r) => ({ name: r.name, notAfter: r.notAfter, signing: r === this.signing }));
  }

  get signingRootName(): string {
    return this.signing.name;
  }

  /** Whether the signing root is valid at `now` (issuing under an expired root would be useless). */
  canSign(now: Date): true | string {
    if (this.signing.notAfter <= now) return `signing root ${this.signing.name} expired at ${this.signing.notAfter.toISOString()}`;
    return true;
  }

  /**
   * Issues a workload certificate for `identity` (already authenticated) with the public key of
   * `csrPem`; every name in the CSR is ignored. Throws CaRefusal (400) naming a bad `csr` or
   * `ttlSeconds`. The leaf never outlives the signing root.
   */
  issue(csrPem: unknown, identity: Omit<WorkloadIdentity, 'trustDomain'>, ttlSeconds: unknown, now: Date): IssuedWorkloadCertificate {
    if (typeof csrPem !== 'string') throw new CaRefusal(400, 'bad_csr', 'csr: must be a PEM string');
    const ttl = chooseTtl(ttlSeconds, this.opts);
    let spki: Buffer;
    try {
      spki = parseCsr(csrPem).spki;
    } catch (err) {
      if (err instanceof CsrError) throw new CaRefusal(400, 'bad_csr', err.message);
      throw err;
    }
    return this.sign(spki, identity, ttl, now);
  }

  /** Signs `spki` for `identity`: the common part of `issue` and the CA's own serving certificate. */
  sign(spki: Buffer, identity: Omit<WorkloadIdentity, 'trustDomain'>, ttlSeconds: number, now: Date, extra: { dnsNames?: string[]; ipAddresses?: string[] } = {}): IssuedWorkloadCertificate {
    const ok = this.canSign(now);
    if (ok !== true) throw new Error(ok);
    const id = spiffeId({ trustDomain: this.trustDomain, ...identity });
    const v = leafValidity(now, ttlSeconds);
    const notAfter = v.notAfter > this.signing.notAfter ? this.signing.notAfter : v.notAfter;
    const certPem = signCertificate(
      {
        subject: distinguishedName({ organization: this.trustDomain }),
        spki,
        notBefore: v.notBefore,
        notAfter,
        extKeyUsage: ['serverAuth', 'clientAuth'],
        uris: [id],
        ...extra,
      },
      this.signing.signer!,
    );
    const cert = new X509Certificate(certPem);
    return { spiffeId: id, certificateChain: [certPem], trustBundle: this.trustBundle(now), expiresAt: new Date(cert.validTo), serialNumber: cert.serialNumber };
  }

  /**
   * The identity of a client certificate presented for renewal: it must chain to a root of the
   * trust bundle (signature and issuer name), be valid at `now`, not be a CA, and carry exactly
   * one mesh SPIFFE ID of this trust domain. Anything else is a 401 saying why.
   */
  authenticatePeer(certDer: Buffer | undefined, now: Date): WorkloadIdentity {
    if (!certDer || certDer.length === 0) throw new CaRefusal(401, 'no_credential', 'no client certificate and no Authorization header');
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certDer);
    } catch {
      throw new CaRefusal(401, 'invalid_client_cert', 'client certificate: unparsable');
    }
    if (cert.ca) throw new CaRefusal(401, 'invalid_client_cert', 'client certificate: is a CA certificate');
    if (new Date(cert.validFrom) > now || new Date(cert.validTo) <= now) {
      throw new CaRefusal(401, 'expired_client_cert', `client certificate: not valid now (valid ${cert.validFrom} – ${cert.validTo})`);
    }
    const trusted = this.roots.filter((r) => r.notAfter > now);
    if (!trusted.some((r) => cert.checkIssued(r.cert) && cert.verify(r.cert.publicKey))) {
      throw new CaRefusal(401, 'untrusted_client_cert', 'client certificate: not issued by a root of this CA\'s trust bundle');
    }
    const uris = (cert.subjectAltName ?? '').split(', ').filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
    if (uris.length !== 1) throw new CaRefusal(401, 'invalid_client_cert', `client certificate: expected one URI SAN, found ${uris.length}`);
    let id: WorkloadIdentity;
    try {
      id = parseSpiffeId(uris[0]!);
    } catch (err) {
      if (err instanceof SpiffeIdError) throw new CaRefusal(401, 'invalid_client_cert', `client certificate: URI SAN ${err.message}`);
      throw err;
    }
    if (id.trustDomain !== this.trustDomain) throw new CaRefusal(401, 'invalid_client_cert', `client certificate: trust domain ${id.trustDomain} is not ${this.trustDomain}`);
    return id;
  }
}
