/**
 * PKCS#10 certification requests (RFC 2986): written by workloads, read and checked by the CA.
 * The CA takes only the public key from a request (its proof of possession being the request's
 * self-signature); every name in it is ignored, the identity comes from the credential.
 */
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { DerError, bits, children, explicit, integer, oid, pem, readBits, readOid, readOne, seq, set, tlv, unpem } from './der.js';
import { OID, distinguishedName, spkiOf } from './x509.js';

/** A request the CA cannot accept; `field` names what is wrong, for the 400 answer. */
export class CsrError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'CsrError';
  }
}

/**
 * A CSR for `privateKey` (ECDSA, signed with SHA-256), optionally naming `uri` as a requested
 * URI SAN (informative only: the CA decides the identity) and `commonName` in the subject.
 */
export function createCsr(privateKey: KeyObject, opts: { commonName?: string; uri?: string } = {}): string {
  const attrs = opts.uri
    ? [seq(oid(OID.extensionRequest), set(seq(seq(oid(OID.subjectAltName), tlv(0x04, seq(tlv(0x86, Buffer.from(opts.uri, 'ascii'))))))))]
    : [];
  const info = seq(integer(0), distinguishedName({ ...(opts.commonName ? { commonName: opts.commonName } : {}) }), spkiOf(privateKey), explicit(0, ...attrs));
  const sigAlg = seq(oid(OID.ecdsaSha256));
  return pem('CERTIFICATE REQUEST', seq(info, sigAlg, bits(sign('sha256', info, privateKey))));
}

export interface ParsedCsr {
  /** SubjectPublicKeyInfo DER: what the certificate will certify. */
  spki: Buffer;
  publicKey: KeyObject;
  keyType: 'ec-p256' | 'rsa';
}

const SIG_HASH: Record<string, string> = {
  [OID.ecdsaSha256]: 'sha256',
  [OID.ecdsaSha384]: 'sha384',
  [OID.sha256WithRsa]: 'sha256',
};

/**
 * Parses a PEM CSR and verifies its self-signature; accepts ECDSA P-256 and RSA ≥ 2048 keys.
 * Throws CsrError naming the field (`csr`, `csr.signature`, `csr.subjectPKInfo`, …).
 */
export function parseCsr(csrPem: string): ParsedCsr {
  const der = typeof csrPem === 'string' ? unpem('CERTIFICATE REQUEST', csrPem) ?? unpem('NEW CERTIFICATE REQUEST', csrPem) : undefined;
  if (!der) throw new CsrError('csr', 'not a PEM "CERTIFICATE REQUEST" block');
  try {
    const top = children(readOne(der, 0x30, 'csr'), 'csr');
    if (top.length !== 3) throw new DerError('csr', `expected 3 elements (info, algorithm, signature), found ${top.length}`);
    const [info, alg, sig] = top as [typeof top[0], typeof top[0], typeof top[0]];
    const fields = children(info, 'csr.certificationRequestInfo');
    if (fields.length < 3 || fields[0]!.tag !== 0x02) throw new DerError('csr.certificationRequestInfo', 'expected version, subject, subjectPKInfo');
    if (!fields[0]!.content.equals(Buffer.from([0]))) throw new CsrError('csr.certificationRequestInfo.version', 'must be 0 (v1)');
    const spki = fields[2]!;
    let publicKey: KeyObject;
    try {
      publicKey = createPublicKey({ key: spki.raw, format: 'der', type: 'spki' });
    } catch (err) {
      throw new CsrError('csr.subjectPKInfo', `unreadable public key (${(err as Error).message})`);
    }
    const d = publicKey.asymmetricKeyDetails;
    let keyType: ParsedCsr['keyType'];
    if (publicKey.asymmetricKeyType === 'ec' && d?.namedCurve === 'prime256v1') keyType = 'ec-p256';
    else if (publicKey.asymmetricKeyType === 'rsa' && (d?.modulusLength ?? 0) >= 2048) keyType = 'rsa';
    else throw new CsrError('csr.subjectPKInfo', `key must be ECDSA P-256 or RSA ≥ 2048 bits, found ${publicKey.asymmetricKeyType}${d?.namedCurve ? ` ${d.namedCurve}` : ''}${d?.modulusLength ? ` ${d.modulusLength}` : ''}`);
    const algOid = readOid(children(alg, 'csr.signatureAlgorithm')[0]!, 'csr.signatureAlgorithm');
    const hash = SIG_HASH[algOid];
    if (!hash) throw new CsrError('csr.signatureAlgorithm', `unsupported algorithm ${algOid}`);
    if ((algOid === OID.sha256WithRsa) !== (keyType === 'rsa')) throw new CsrError('csr.signatureAlgorithm', `${algOid} does not match the ${keyType} key`);
    const signature = readBits(sig, 'csr.signature');
    if (!verify(hash, info.raw, publicKey, signature)) throw new CsrError('csr.signature', 'does not verify with the request\'s own public key');
    return { spki: spki.raw, publicKey, keyType };
  } catch (err) {
    if (err instanceof DerError) throw new CsrError(err.path, err.message.slice(err.path.length + 2));
    throw err;
  }
}
