/**
 * The PKI of the single-node cluster (openssl, like pki.ts): one CA; the API server's serving
 * certificate for loopback, the node's address and the `kubernetes` Service VIP; a client
 * certificate per component, named the way Kubernetes' built-in RBAC and Node authorizer expect
 * (`system:node:<node>`/`system:nodes`, `system:kube-controller-manager`, `system:kube-scheduler`,
 * `system:kube-proxy`); and the service-account signing keys.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface NodePki {
  dir: string;
  caCert: string;
  caKey: string;
  saKey: string;
  saPub: string;
  /** `<name>.crt`/`<name>.key` in `dir`, per identity in `NODE_IDENTITIES` plus `apiserver`. */
  cert(name: NodeIdentity | 'apiserver'): { cert: string; key: string };
}

/** The client identities of the cluster's own components (and the admin). */
export const NODE_IDENTITIES = {
  admin: '/O=system:masters/CN=octo-admin',
  kubelet: '', // per node: /O=system:nodes/CN=system:node:<node>
  'controller-manager': '/CN=system:kube-controller-manager',
  scheduler: '/CN=system:kube-scheduler',
  'kube-proxy': '/CN=system:kube-proxy',
  // The API server's identity towards kubelets (logs, exec): admin, as kubeadm's is.
  'apiserver-kubelet-client': '/O=system:masters/CN=kube-apiserver-kubelet-client',
} as const;
export type NodeIdentity = keyof typeof NODE_IDENTITIES;

/** P-256 keys: a tenth of the time of RSA 2048 to generate, and every component accepts them. */
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];

export function generateNodePki(dir: string, opts: { nodeName: string; nodeIp: string; serviceIp: string }): NodePki {
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(['req', '-x509', ...EC, '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=octo-mesh-node-ca']);
  const names = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local', opts.nodeName];
  writeFileSync(
    join(dir, 'server.ext'),
    `subjectAltName=IP:127.0.0.1,IP:${opts.nodeIp},IP:${opts.serviceIp},${names.map((n) => `DNS:${n}`).join(',')}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n`,
  );
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  const signed = (name: string, subj: string, ext: string) => {
    openssl(['req', ...EC, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj]);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-out', `${name}.crt`, '-extfile', ext]);
  };
  signed('apiserver', '/CN=kube-apiserver', 'server.ext');
  for (const [name, subj] of Object.entries(NODE_IDENTITIES)) {
    signed(name, name === 'kubelet' ? `/O=system:nodes/CN=system:node:${opts.nodeName}` : subj, 'client.ext');
  }
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key']);
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
    cert: (name) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }),
  };
}
