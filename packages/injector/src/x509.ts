/**
 * X.509 certificates for the webhook's own TLS, written directly in DER (Node's crypto parses
 * certificates but cannot issue them, and the image has no openssl): a self-signed ECDSA P-256 CA
 * and a serving certificate for the injector's Service names, signed by it. Only what the API
 * server's TLS client checks is included: basic constraints, key usage, extended key usage
 * (serverAuth), subject alternative names, and key identifiers to link the chain.
 */
import { X509Certificate, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';

// --- DER ------------------------------------------------------------------------------------
function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, ...content: Buffer[]) => {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
};
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
const explicit = (n: number, ...c: Buffer[]) => tlv(0xa0 + n, ...c);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const utf8 = (s: string) => tlv(0x0c, Buffer.from(s, 'utf8'));
function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a! * 40 + b!];
  for (const n of rest) {
    const chunk: number[] = [n & 0x7f];
    for (let v = Math.floor(n / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift((v & 0x7f) | 0x80);
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d: Date): Buffer {
  // UTCTime until 2049, GeneralizedTime after (RFC 5280 4.1.2.5).
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z';
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'));
}

const OID = {
  ecdsaSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
};

const name = (cn: string) => seq(set(seq(oid(OID.organization), utf8('octo-mesh'))), set(seq(oid(OID.commonName), utf8(cn))));
const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
/** Key identifier: SHA-1 of the SubjectPublicKeyInfo (RFC 5280 only asks that it be consistent). */
const keyId = (spki: Buffer) => createHash('sha1').update(spki).digest();

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  notBefore: Date;
  notAfter: Date;
}

interface IssueOptions {
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  dnsNames?: string[];
  /** The issuer; absent: self-signed. */
  issuer?: { commonName: string; key: KeyObject; spki: Buffer };
}

function issue(o: IssueOptions): IssuedCert {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const signer = o.issuer ?? { commonName: o.commonName, key: privateKey, spki };
  const sigAlg = seq(oid(OID.ecdsaSha256));
  const serial = randomBytes(16);
  serial[0]! &= 0x7f;
  const extensions = [
    ext(OID.basicConstraints, true, seq(...(o.isCa ? [bool(true)] : []))),
    // digitalSignature (bit 0) for leaves; keyCertSign (5) + cRLSign (6) for the CA.
    ext(OID.keyUsage, true, o.isCa ? bits(Buffer.from([0x06]), 1) : bits(Buffer.from([0x80]), 7)),
    ext(OID.subjectKeyId, false, octets(keyId(spki))),
    ext(OID.authorityKeyId, false, seq(tlv(0x80, keyId(signer.spki)))),
  ];
  if (!o.isCa) extensions.push(ext(OID.extKeyUsage, false, seq(oid(OID.serverAuth))));
  if (o.dnsNames?.length) extensions.push(ext(OID.subjectAltName, false, seq(...o.dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))))));
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))),
    integer(serial),
    sigAlg,
    name(signer.commonName),
    seq(time(o.notBefore), time(o.notAfter)),
    name(o.commonName),
    spki,
    explicit(3, seq(...extensions)),
  );
  const signature = sign('sha256', tbs, signer.key);
  const der = seq(tbs, sigAlg, bits(signature));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
  };
}

/** A self-signed CA valid from `now` (back-dated 5 minutes for clock skew) for `hours`. */
export function issueCa(commonName: string, now: Date, hours: number): IssuedCert {
  return issue({ commonName, isCa: true, notBefore: new Date(now.getTime() - 300_000), notAfter: new Date(now.getTime() + hours * 3_600_000) });
}

/** A serving certificate for `dnsNames`, signed by the CA in `ca`. */
export function issueServing(ca: { certPem: string; keyPem: string }, dnsNames: string[], now: Date, hours: number): IssuedCert {
  const key = createPrivateKey(ca.keyPem);
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  return issue({
    commonName: dnsNames[0]!,
    isCa: false,
    dnsNames,
    notBefore: new Date(now.getTime() - 300_000),
    notAfter: new Date(now.getTime() + hours * 3_600_000),
    issuer: { commonName: caCommonName(ca.certPem), key, spki },
  });
}

/** The CN of a certificate's subject (a serving certificate's issuer must equal its CA's subject). */
export function caCommonName(certPem: string): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(new X509Certificate(certPem).subject)?.[1];
  if (!cn) throw new Error('CA certificate has no CN');
  return cn;
}
