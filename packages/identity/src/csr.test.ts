/** PKCS#10 requests: ours are accepted by openssl, openssl's by ours, and bad ones are refused naming the field. */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CsrError, createCsr, parseCsr } from './csr.js';
import { bits, children, pem, readOne, seq, unpem } from './der.js';
import { spkiOf } from './x509.js';

const dir = mkdtempSync(join(tmpdir(), 'identity-csr-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const openssl = (args: string[]) => execFileSync('/usr/bin/openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;

/** openssl makes a CSR with `newkey` (e.g. rsa:2048, ec + curve) and returns its PEM. */
function opensslCsr(name: string, newkey: string[]): string {
  openssl(['req', '-new', ...newkey, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=ignored']);
  return readFileSync(join(dir, `${name}.csr`), 'utf8');
}

describe('createCsr / parseCsr', () => {
  it('writes a CSR openssl verifies, with the requested URI, and reads back its key', () => {
    const csr = createCsr(ec, { uri: 'spiffe://cluster.local/ns/a/sa/b', commonName: 'b' });
    writeFileSync(join(dir, 'ours.csr'), csr);
    const out = execFileSync('/usr/bin/openssl', ['req', '-in', 'ours.csr', '-verify', '-noout', '-text'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toContain('URI:spiffe://cluster.local/ns/a/sa/b');
    const parsed = parseCsr(csr);
    expect(parsed.keyType).toBe('ec-p256');
    expect(parsed.spki).toEqual(spkiOf(ec));
  });

  it.each([
    // columns: name, openssl -newkey arguments, key type
    ['rsa2048', ['-newkey', 'rsa:2048'], 'rsa'],
    ['p256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'ec-p256'],
  ])('accepts an openssl-made %s CSR', (name, newkey, type) => {
    expect(parseCsr(opensslCsr(name, newkey)).keyType).toBe(type);
  });

  it.each([
    // columns: name, openssl -newkey arguments, why
    ['rsa1024', ['-newkey', 'rsa:1024'], 'RSA ≥ 2048'],
    ['p384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'secp384r1'],
  ])('refuses an openssl-made %s CSR naming csr.subjectPKInfo', (name, newkey, why) => {
    const csr = opensslCsr(name, newkey);
    expect(() => parseCsr(csr)).toThrow(CsrError);
    expect(() => parseCsr(csr)).toThrow(/^csr\.subjectPKInfo: .*/);
    expect(() => parseCsr(csr)).toThrow(why);
  });

  const good = createCsr(ec);
  const der = unpem('CERTIFICATE REQUEST', good)!;
  const [info, alg] = children(readOne(der, 0x30, 'csr'), 'csr');
  const other = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  const foreignSig = readOne(unpem('CERTIFICATE REQUEST', createCsr(other))!, 0x30, 'x');
  const flipped = Buffer.from(der);
  flipped[flipped.length - 5]! ^= 0x01;

  it.each([
    // columns: case, PEM text, field named
    ['not PEM', 'hello', 'csr'],
    ['a certificate, not a CSR', '-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n', 'csr'],
    ['truncated DER', pem('CERTIFICATE REQUEST', der.subarray(0, 40)), 'csr'],
    ['a flipped signature byte', pem('CERTIFICATE REQUEST', flipped), 'csr.signature'],
    ['another key\'s signature', pem('CERTIFICATE REQUEST', seq(info!.raw, alg!.raw, children(foreignSig, 'x')[2]!.raw)), 'csr.signature'],
    ['an unknown signature algorithm', pem('CERTIFICATE REQUEST', seq(info!.raw, seq(Buffer.from('06032a0304', 'hex')), bits(Buffer.alloc(8)))), 'csr.signatureAlgorithm'],
    ['two elements only', pem('CERTIFICATE REQUEST', seq(info!.raw, alg!.raw)), 'csr'],
  ])('%s → 400 naming %s', (_case, text, field) => {
    let caught: unknown;
    try {
      parseCsr(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CsrError);
    expect((caught as CsrError).field).toBe(field);
  });
});
