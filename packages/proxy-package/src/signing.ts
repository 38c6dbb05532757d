import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { PackageError } from './errors.js';

/**
 * Package digests and signatures.
 *
 * **What is signed:** the 32 raw bytes of the package file's sha256 digest (not its hex text),
 * with ed25519 (node:crypto, `sign(null, digest, key)`); the signature travels as base64 (the
 * UpgradeTarget's `signature`). Signing the digest binds the signature to the exact file the
 * agent already checks against the target's `sha256`.
 *
 * Keys are plain PEM ed25519 keys. One-line generation:
 * `openssl genpkey -algorithm ed25519 -out signer.pem && openssl pkey -in signer.pem -pubout -out signer.pub.pem`
 * (or `node -e "const {generateKeyPairSync:g}=require('crypto');const k=g('ed25519');console.log(k.privateKey.export({type:'pkcs8',format:'pem'})+k.publicKey.export({type:'spki',format:'pem'}))"`).
 */

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  return sha256Hex(await readFile(file));
}

/** Signs a digest (hex) with an ed25519 private key (PEM); returns the base64 signature. */
export function signDigest(sha256: string, privateKeyPem: string | KeyObject): string {
  const key = typeof privateKeyPem === 'string' ? createPrivateKey(privateKeyPem) : privateKeyPem;
  return sign(null, Buffer.from(sha256, 'hex'), key).toString('base64');
}

/** What `octoctl package sign --key` calls: the base64 signature of `file`. */
export async function signPackage(file: string, keyPem: string): Promise<string> {
  return signDigest(await sha256File(file), keyPem);
}

/** Loads trusted public keys (PEM, one or more per text). */
export function publicKeys(pems: readonly string[]): KeyObject[] {
  const out: KeyObject[] = [];
  for (const text of pems) {
    for (const m of text.matchAll(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g)) out.push(createPublicKey(m[0]));
  }
  return out;
}

/**
 * Checks the signature of a digest when keys are trusted: none trusted → nothing to check; keys
 * and no signature → SignatureMissing; no key verifies it → SignatureInvalid.
 */
export function checkSignature(sha256: string, signature: string | undefined, keys: readonly KeyObject[]): void {
  if (keys.length === 0) return;
  if (!signature) throw new PackageError('SignatureMissing', 'trusted keys are configured and the target carries no signature');
  const sig = Buffer.from(signature, 'base64');
  const digest = Buffer.from(sha256, 'hex');
  const errors: string[] = [];
  for (const k of keys) {
    try {
      if (verify(null, digest, k, sig)) return;
    } catch (err) {
      // A malformed signature or a key of another type: not this key; the next may verify.
      errors.push((err as Error).message);
    }
  }
  throw new PackageError('SignatureInvalid', `signature does not verify with any of the ${keys.length} trusted key(s)${errors.length ? ` (${errors.join('; ')})` : ''}`);
}
