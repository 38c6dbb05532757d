import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A throwaway mesh PKI made with the openssl CLI (independent of the mesh CA under test): a root
 * and leaf certificates carrying one SPIFFE ID each, written as a CertificateRotator writes them
 * (`cert-chain.pem`, `key.pem`, `root-cert.pem`; see packages/identity/README.md).
 */
export interface MeshTestPki {
  rootPem: string;
  /** A directory with the three files for `spiffeId`, signed by this root. */
  issue(name: string, spiffeId: string): string;
  /** Another root: certificates from it must be refused by everything trusting this one. */
  foreign(): MeshTestPki;
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function meshTestPki(dir: string, label = 'root'): MeshTestPki {
  mkdirSync(dir, { recursive: true });
  const rootKey = `${label}.key`;
  const rootCert = `${label}.pem`;
  openssl(dir, ['req', '-x509', ...EC, '-keyout', rootKey, '-out', rootCert, '-days', '2', '-subj', `/O=octo-mesh-test/CN=${label}`,
    '-addext', 'basicConstraints=critical,CA:true,pathlen:0', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const rootPem = readFileSync(join(dir, rootCert), 'utf8');
  return {
    rootPem,
    issue(name, spiffeId) {
      const out = join(dir, `${label}-${name}`);
      mkdirSync(out, { recursive: true });
      writeFileSync(join(out, 'ext'), `subjectAltName=URI:${spiffeId}\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\nbasicConstraints=critical,CA:false\n`);
      openssl(out, ['req', ...EC, '-keyout', 'key.pem', '-out', 'csr.pem', '-subj', `/O=octo-mesh-test`]);
      openssl(out, ['x509', '-req', '-in', 'csr.pem', '-CA', join(dir, rootCert), '-CAkey', join(dir, rootKey), '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-days', '1', '-extfile', 'ext', '-out', 'cert-chain.pem']);
      writeFileSync(join(out, 'root-cert.pem'), rootPem);
      return out;
    },
    foreign: () => meshTestPki(dir, `${label}-foreign`),
  };
}
