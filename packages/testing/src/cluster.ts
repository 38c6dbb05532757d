import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@octo-mesh/runtime';
import { generatePki, type ClusterPki } from './pki.js';

/** Where a running test cluster is, as handed from jest's globalSetup to the tests. */
export interface ClusterInfo {
  server: string;
  kubeconfig: string;
  /** Kubeconfig of a user that RBAC grants nothing (for 403 tests). */
  restrictedKubeconfig: string;
  workDir: string;
  binDir: string;
  pids: { etcd: number; apiserver: number };
  /** Seconds from spawning etcd to the API server's /readyz answering ok. */
  startSeconds: number;
}

function get(url: string, ca: Buffer, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: token ? { authorization: `Bearer ${token}` } : {}, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

async function waitFor(what: string, proc: ChildProcess, log: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before it was ready; last log lines:\n${tail(log)}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms; last log lines:\n${tail(log)}`);
}

function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function kubeconfig(server: string, pki: ClusterPki, user: { name: string; cert?: [string, string]; token?: string }): string {
  const auth = user.cert ? `    client-certificate: ${user.cert[0]}\n    client-key: ${user.cert[1]}` : `    token: ${user.token}`;
  return `apiVersion: v1
kind: Config
clusters:
- name: octo-test
  cluster:
    server: ${server}
    certificate-authority: ${pki.caCert}
users:
- name: ${user.name}
  user:
${auth}
contexts:
- name: octo-test
  context: {cluster: octo-test, user: ${user.name}, namespace: default}
current-context: octo-test
`;
}

/**
 * A real etcd and kube-apiserver on loopback (no kubelet, no controller-manager), as
 * controller-runtime's envtest runs them. `stop()` ends exactly the two processes it started.
 */
export class TestCluster {
  private constructor(
    readonly info: ClusterInfo,
    private readonly procs: ChildProcess[],
  ) {}

  static async start(binDir: string, opts: { workDir?: string; timeoutMs?: number } = {}): Promise<TestCluster> {
    const started = Date.now();
    const workDir = opts.workDir ?? mkdtempSync(join(tmpdir(), 'octo-k8s-'));
    mkdirSync(workDir, { recursive: true });
    const pki = generatePki(workDir);
    const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
    const procs: ChildProcess[] = [];
    const spawnLogged = (bin: string, args: string[], log: string) => {
      const fd = openSync(log, 'a');
      const p = spawn(join(binDir, bin), args, { stdio: ['ignore', fd, fd] });
      procs.push(p);
      return p;
    };
    const cluster = () => new TestCluster(info, procs);
    const info: ClusterInfo = {
      server: `https://127.0.0.1:${apiPort}`,
      kubeconfig: join(workDir, 'kubeconfig'),
      restrictedKubeconfig: join(workDir, 'kubeconfig-restricted'),
      workDir,
      binDir,
      pids: { etcd: 0, apiserver: 0 },
      startSeconds: 0,
    };
    try {
      const etcdLog = join(workDir, 'etcd.log');
      const etcd = spawnLogged(
        'etcd',
        [
          '--name=octo-test',
          `--data-dir=${join(workDir, 'etcd-data')}`,
          `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
          `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
          `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
          `--initial-cluster=octo-test=http://127.0.0.1:${etcdPeer}`,
          '--unsafe-no-fsync',
          '--log-level=warn',
        ],
        etcdLog,
      );
      info.pids.etcd = etcd.pid!;
      await waitFor('etcd', etcd, etcdLog, opts.timeoutMs ?? 30_000, async () => {
        const r = await fetch(`http://127.0.0.1:${etcdClient}/health`);
        return r.ok && ((await r.json()) as { health?: string }).health === 'true';
      });

      const apiLog = join(workDir, 'apiserver.log');
      const api = spawnLogged(
        'kube-apiserver',
        [
          `--etcd-servers=http://127.0.0.1:${etcdClient}`,
          '--bind-address=127.0.0.1',
          '--advertise-address=127.0.0.1',
          `--secure-port=${apiPort}`,
          `--tls-cert-file=${pki.apiserverCert}`,
          `--tls-private-key-file=${pki.apiserverKey}`,
          `--client-ca-file=${pki.caCert}`,
          `--token-auth-file=${pki.tokenFile}`,
          '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
          `--service-account-key-file=${pki.saPub}`,
          `--service-account-signing-key-file=${pki.saKey}`,
          '--service-cluster-ip-range=10.96.0.0/12',
          '--authorization-mode=RBAC',
          // 1.37 refuses a loopback advertise address for the kubernetes Service's endpoints;
          // there is no in-cluster client to reach it anyway.
          '--endpoint-reconciler-type=none',
          '--allow-privileged=true',
        ],
        apiLog,
      );
      info.pids.apiserver = api.pid!;
      const ca = readFileSync(pki.caCert);
      await waitFor('kube-apiserver', api, apiLog, opts.timeoutMs ?? 60_000, async () => {
        const r = await get(`${info.server}/readyz`, ca, pki.adminToken);
        return r.status === 200 && r.body.trim() === 'ok';
      });
      writeFileSync(info.kubeconfig, kubeconfig(info.server, pki, { name: 'octo-admin', cert: [pki.adminCert, pki.adminKey] }));
      writeFileSync(info.restrictedKubeconfig, kubeconfig(info.server, pki, { name: 'octo-restricted', token: pki.restrictedToken }));
      info.startSeconds = (Date.now() - started) / 1000;
      return cluster();
    } catch (err) {
      await cluster().stop({ keepWorkDir: true });
      throw err;
    }
  }

  /** Ends the processes this cluster started (SIGTERM, then SIGKILL after 5 s). */
  async stop(opts: { keepWorkDir?: boolean } = {}): Promise<void> {
    for (const p of [...this.procs].reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    if (!opts.keepWorkDir) rmSync(this.info.workDir, { recursive: true, force: true });
  }

  /** Synchronous last-resort kill, for process 'exit' handlers. */
  killNow(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  }
}
