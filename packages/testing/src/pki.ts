import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Files of a throwaway PKI for one test cluster. */
export interface ClusterPki {
  caCert: string;
  apiserverCert: string;
  apiserverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
  /** --token-auth-file: an admin token and a token for a user with no RBAC bindings. */
  tokenFile: string;
  adminToken: string;
  restrictedToken: string;
}

/** User name behind `restrictedToken`: authenticated, but granted nothing by RBAC. */
export const RESTRICTED_USER = 'octo-restricted';

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });

/** Generates a CA, the API server's serving cert, an admin client cert and service-account keys. */
export function generatePki(dir: string): ClusterPki {
  const f = (name: string) => join(dir, name);
  openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=octo-mesh-test-ca']);
  writeFileSync(
    f('apiserver.ext'),
    [
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local',
      'extendedKeyUsage=serverAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      '',
    ].join('\n'),
  );
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  const signed = (name: string, subj: string, ext: string) => {
    openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-out', `${name}.crt`, '-extfile', ext]);
  };
  signed('apiserver', '/CN=kube-apiserver', 'apiserver.ext');
  signed('admin', '/O=system:masters/CN=octo-admin', 'client.ext');
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  const adminToken = randomBytes(16).toString('hex');
  const restrictedToken = randomBytes(16).toString('hex');
  writeFileSync(f('tokens.csv'), `${adminToken},octo-admin,octo-admin,system:masters\n${restrictedToken},${RESTRICTED_USER},${RESTRICTED_USER}\n`);
  return {
    caCert: f('ca.crt'),
    apiserverCert: f('apiserver.crt'),
    apiserverKey: f('apiserver.key'),
    adminCert: f('admin.crt'),
    adminKey: f('admin.key'),
    saKey: f('sa.key'),
    saPub: f('sa.pub'),
    tokenFile: f('tokens.csv'),
    adminToken,
    restrictedToken,
  };
}
