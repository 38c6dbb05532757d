/**
 * X.509 v3 certificates (RFC 5280) written directly in DER: Node's crypto parses certificates but
 * cannot issue them. ECDSA P-256 issuers signing with SHA-256. What the mesh needs and nothing
 * else: basic constraints (with pathLen for roots), key usage, extended key usage, subject
 * alternative names (URI, DNS, IP), subject/authority key identifiers, random 128-bit serials.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { DerError, bits, bool, children, explicit, integer, octets, oid, pem, readBits, readOid, readOne, readTlv, seq, set, time, tlv, unpem, utf8 } from './der.js';

export const OID = {
  ecPublicKey: '1.2.840.10045.2.1',
  prime256v1: '1.2.840.10045.3.1.7',
  ecdsaSha256: '1.2.840.10045.4.3.2',
  ecdsaSha384: '1.2.840.10045.4.3.3',
  rsaEncryption: '1.2.840.113549.1.1.1',
  sha256WithRsa: '1.2.840.113549.1.1.11',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  extensionRequest: '1.2.840.113549.1.9.14',
} as const;

/** A distinguished name with the attributes the mesh uses, in DER. */
export function distinguishedName(n: { organization?: string; commonName?: string }): Buffer {
  const rdns: Buffer[] = [];
  if (n.organization) rdns.push(set(seq(oid(OID.organization), utf8(n.organization))));
  if (n.commonName) rdns.push(set(seq(oid(OID.commonName), utf8(n.commonName))));
  return seq(...rdns);
}

/**
 * Key identifier, RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's value.
 * (SHA-1 here only names a key; it protects nothing.)
 */
export function keyIdentifier(spkiDer: Buffer): Buffer {
  const spki = children(readOne(spkiDer, 0x30, 'subjectPublicKeyInfo'), 'subjectPublicKeyInfo');
  return createHash('sha1').update(readBits(spki[1]!, 'subjectPublicKeyInfo.subjectPublicKey')).digest();
}

export type ExtKeyUsage = 'serverAuth' | 'clientAuth';

/** What goes into one certificate. Times are truncated to whole seconds by the encoding. */
export interface CertificateTemplate {
  subject: Buffer;
  /** SubjectPublicKeyInfo DER of the certified key. */
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** Present: a CA certificate (keyCertSign + cRLSign), with pathLen when given. Absent: an end entity. */
  ca?: { pathLen?: number };
  /** End entity key usage; default digitalSignature + keyEncipherment. */
  keyUsage?: 'digitalSignature' | 'digitalSignature+keyEncipherment';
  extKeyUsage?: ExtKeyUsage[];
  uris?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Default: 16 random bytes (a positive INTEGER of up to 17 octets, inside RFC 5280's 20). */
  serial?: Buffer;
}

/** Who signs: its subject name (copied byte for byte into the issuer field), key and key identifier. */
export interface CertificateSigner {
  subject: Buffer;
  privateKey: KeyObject;
  keyId: Buffer;
}

const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

function generalNames(t: CertificateTemplate): Buffer[] {
  const out: Buffer[] = [];
  for (const u of t.uris ?? []) out.push(tlv(0x86, Buffer.from(u, 'ascii')));
  for (const d of t.dnsNames ?? []) out.push(tlv(0x82, Buffer.from(d, 'ascii')));
  for (const ip of t.ipAddresses ?? []) out.push(tlv(0x87, ipBytes(ip)));
  return out;
}

function ipBytes(ip: string): Buffer {
  const v = isIP(ip);
  if (v === 4) return Buffer.from(ip.split('.').map(Number));
  if (v === 6) {
    const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
    const h = head ? head.split(':') : [];
    const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return Buffer.from(groups.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]));
  }
  throw new Error(`ipAddresses: ${JSON.stringify(ip)} is not an IP address`);
}

/** Signs `t` with `signer` (ECDSA with SHA-256) and returns the certificate as PEM. */
export function signCertificate(t: CertificateTemplate, signer: CertificateSigner): string {
  const sigAlg = seq(oid(OID.ecdsaSha256));
  const serial = t.serial ?? randomBytes(16);
  const extensions = [
    ext(OID.basicConstraints, true, t.ca ? seq(bool(true), ...(t.ca.pathLen !== undefined ? [integer(t.ca.pathLen)] : [])) : seq()),
    // keyCertSign (bit 5) + cRLSign (6) for a CA; digitalSignature (0) [+ keyEncipherment (2)] for a leaf.
    ext(OID.keyUsage, true, t.ca ? bits(Buffer.from([0x06]), 1) : t.keyUsage === 'digitalSignature' ? bits(Buffer.from([0x80]), 7) : bits(Buffer.from([0xa0]), 5)),
    ext(OID.subjectKeyId, false, octets(keyIdentifier(t.spki))),
    ext(OID.authorityKeyId, false, seq(tlv(0x80, signer.keyId))),
  ];
  if (t.extKeyUsage?.length) extensions.push(ext(OID.extKeyUsage, false, seq(...t.extKeyUsage.map((u) => oid(OID[u])))));
  const names = generalNames(t);
  // An empty subject requires a critical SAN (RFC 5280 4.2.1.6).
  if (names.length) extensions.push(ext(OID.subjectAltName, t.subject.length <= 2, seq(...names)));
  const tbs = seq(explicit(0, integer(2)), integer(serial), sigAlg, signer.subject, seq(time(t.notBefore), time(t.notAfter)), t.subject, t.spki, explicit(3, seq(...extensions)));
  return pem('CERTIFICATE', seq(tbs, sigAlg, bits(sign('sha256', tbs, signer.privateKey))));
}

/** The parts of a certificate that DER-level work needs and X509Certificate does not give out. */
export interface CertificateFields {
  subject: Buffer;
  spki: Buffer;
  /** The subject key identifier extension's value, if present. */
  subjectKeyId?: Buffer;
}

/** Reads subject, SPKI and subject key identifier from a PEM or DER certificate. */
export function certificateFields(cert: string | Buffer): CertificateFields {
  const der = typeof cert === 'string' ? unpem('CERTIFICATE', cert) : cert;
  if (!der) throw new DerError('certificate', 'no PEM CERTIFICATE block');
  const [tbsNode] = children(readOne(der, 0x30, 'certificate'), 'certificate');
  if (!tbsNode) throw new DerError('certificate.tbsCertificate', 'missing');
  const tbs = children(tbsNode, 'tbsCertificate');
  const v = tbs[0]?.tag === 0xa0 ? 1 : 0; // version is optional (v1)
  const subject = tbs[v + 4];
  const spki = tbs[v + 5];
  if (!subject || !spki) throw new DerError('tbsCertificate', 'too few fields');
  let subjectKeyId: Buffer | undefined;
  const exts = tbs.find((n) => n.tag === 0xa3);
  if (exts) {
    const [list] = children(exts, 'tbsCertificate.extensions');
    for (const [i, e] of children(list!, 'tbsCertificate.extensions').entries()) {
      const parts = children(e, `tbsCertificate.extensions[${i}]`);
      if (readOid(parts[0]!, `tbsCertificate.extensions[${i}].extnID`) === OID.subjectKeyId) {
        subjectKeyId = readTlv(parts[parts.length - 1]!.content, 0, `tbsCertificate.extensions[${i}].extnValue`).content;
      }
    }
  }
  return { subject: subject.raw, spki: spki.raw, ...(subjectKeyId ? { subjectKeyId } : {}) };
}

/** The signer for a CA certificate and its key: the issuer name and key identifier exactly as the CA's certificate states them. */
export function signerOf(certPem: string, keyPem: string | KeyObject): CertificateSigner {
  const f = certificateFields(certPem);
  return { subject: f.subject, privateKey: typeof keyPem === 'string' ? createPrivateKey(keyPem) : keyPem, keyId: f.subjectKeyId ?? keyIdentifier(f.spki) };
}

export const spkiOf = (key: KeyObject): Buffer => (key.type === 'private' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });

/** A new ECDSA P-256 key pair. */
export const newKeyPair = () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

// --- the injector's webhook TLS (unchanged behaviour, moved here from packages/injector) ---------

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

/** A self-signed CA valid from `now` (back-dated 5 minutes for clock skew) for `hours`. */
export function issueCa(commonName: string, now: Date, hours: number): IssuedCert {
  const { privateKey } = newKeyPair();
  const spki = spkiOf(privateKey);
  const subject = distinguishedName({ organization: 'octo-mesh', commonName });
  const notBefore = new Date(now.getTime() - 300_000);
  const notAfter = new Date(now.getTime() + hours * 3_600_000);
  const certPem = signCertificate({ subject, spki, notBefore, notAfter, ca: {} }, { subject, privateKey, keyId: keyIdentifier(spki) });
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, notBefore, notAfter };
}

/** A serving certificate (serverAuth) for `dnsNames`, signed by the CA in `ca`. */
export function issueServing(ca: { certPem: string; keyPem: string }, dnsNames: string[], now: Date, hours: number): IssuedCert {
  const { privateKey } = newKeyPair();
  const notBefore = new Date(now.getTime() - 300_000);
  const notAfter = new Date(now.getTime() + hours * 3_600_000);
  const certPem = signCertificate(
    {
      subject: distinguishedName({ organization: 'octo-mesh', commonName: dnsNames[0]! }),
      spki: spkiOf(privateKey),
      notBefore,
      notAfter,
      keyUsage: 'digitalSignature',
      extKeyUsage: ['serverAuth'],
      dnsNames,
    },
    signerOf(ca.certPem, ca.keyPem),
  );
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, notBefore, notAfter };
}

/** The CN of a certificate's subject. */
export function caCommonName(certPem: string): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(certPem).subject)?.[1];
  if (!cn) throw new Error('CA certificate has no CN');
  return cn;
}
