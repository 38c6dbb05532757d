/**
 * A real single-node Kubernetes cluster on this machine, for tests that need pods to run:
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (private root,
 * state and socket), the kubelet, kube-proxy (iptables) and CoreDNS, all built from Go modules
 * (e2e/cluster/build-tools.sh --node) except containerd, runc and the CNI plugins (Debian's).
 * There is no registry: images are OCI archives imported into containerd (`importImage`), and
 * pods use `imagePullPolicy: IfNotPresent`.
 *
 * One per machine: it uses fixed paths (`/var/lib/octo-cluster`, `/run/octo-cluster`), the
 * kubelet's and kube-proxy's fixed ports and the host's iptables. `start` first removes
 * whatever a crashed earlier run left (node-cleanup.ts); `stop` removes everything it made.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePort } from '@octo-mesh/runtime';
import { staticBinaryImage } from '@octo-mesh/images';
import { cleanupNode, defaultRouteAddress, hostToolsMissing, liveOwner, writeState, type NodeState } from './node-cleanup.js';
import {
  COREDNS_IMAGE,
  DEFAULT_NODE_LAYOUT,
  PAUSE_IMAGE,
  cniConfig,
  containerdConfig,
  containerdSocket,
  coreDnsManifest,
  kubeProxyConfig,
  kubeconfigFor,
  kubeletConfig,
  type NodeLayout,
} from './node-config.js';
import { generateNodePki } from './node-pki.js';

export interface NodeClusterInfo {
  /** `https://<node ip>:6443`: what kubectl, helm and tests use. */
  server: string;
  /** Admin (system:masters) kubeconfig. */
  kubeconfig: string;
  nodeName: string;
  nodeIp: string;
  root: string;
  binDir: string;
  containerdSocket: string;
  pids: Record<string, number>;
  /** Seconds from the first spawn to CoreDNS ready. */
  startSeconds: number;
  /** Seconds at which each stage was done, from the start. */
  timings: Record<string, number>;
}

export interface NodeClusterOptions {
  layout?: Partial<NodeLayout>;
  /** Per wait; the whole start takes ~15-30 s on 2 idle cores. */
  timeoutMs?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
  /** How long to wait for a cluster another process runs on this machine (default 15 min). */
  waitForOtherMs?: number;
}

function httpsGet(url: string, tls: { ca: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized?: boolean }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

const tail = (file: string, lines = 40) => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
};

/**
 * The archive of a one-binary image, built once per binary and kept in the cache
 * (`${OCTO_CACHE}/images`): compressing CoreDNS takes seconds, the archive is reproducible.
 */
function cachedImage(name: string, binaryName: string, binaryPath: string, user: string): string {
  const binary = readFileSync(binaryPath);
  const key = createHash('sha256').update(name).update(user).update(binary).digest('hex').slice(0, 16);
  const dir = join(process.env['OCTO_CACHE'] ?? join(homedir(), '.cache/octo-mesh'), 'images');
  const file = join(dir, `${binaryName}-${key}.tar`);
  if (!existsSync(file)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${file}.tmp`, staticBinaryImage(name, binaryName, binary, { user }).archive);
    renameSync(`${file}.tmp`, file);
  }
  return file;
}

export class NodeCluster {
  private readonly procs = new Map<string, ChildProcess>();
  private readonly state: NodeState = { owner: process.pid, pids: {} };
  private stopped = false;

  private constructor(
    readonly info: NodeClusterInfo,
    private readonly layout: NodeLayout,
    private readonly opts: NodeClusterOptions,
  ) {}

  /** Starts the cluster from the binaries in `binDir` (build-tools.sh --node). */
  static async start(binDir: string, opts: NodeClusterOptions = {}): Promise<NodeCluster> {
    if (process.getuid?.() !== 0) throw new Error('the node cluster needs root (mounts, network namespaces, iptables)');
    const missing = hostToolsMissing();
    if (missing.length) throw new Error(`the node cluster needs Debian packages that are missing: ${missing.join(', ')} (apt-get install containerd runc containernetworking-plugins iptables conntrack iproute2)`);
    const layout: NodeLayout = { ...DEFAULT_NODE_LAYOUT, nodeIp: opts.layout?.nodeIp ?? defaultRouteAddress(), ...opts.layout };
    // One cluster per machine: wait for a running one (another test run) to finish rather than
    // tearing it down under its owner.
    const waitUntil = Date.now() + (opts.waitForOtherMs ?? 15 * 60_000);
    for (let owner = liveOwner(layout.root); owner; owner = liveOwner(layout.root)) {
      if (Date.now() > waitUntil) throw new Error(`another node cluster is running (owner pid ${owner}, ${layout.root}); one per machine`);
      opts.log?.(`waiting for the node cluster of pid ${owner} to stop (one per machine)`);
      await new Promise((r) => setTimeout(r, 5000));
    }
    const leftovers = cleanupNode({ root: layout.root, run: layout.run, bridge: layout.bridge });
    if (leftovers.length) opts.log?.(`cleaned up after an earlier run: ${leftovers.join('; ')}`);
    const info: NodeClusterInfo = {
      server: `https://${layout.nodeIp}:${layout.apiPort}`,
      kubeconfig: join(layout.root, 'kubeconfig'),
      nodeName: layout.nodeName,
      nodeIp: layout.nodeIp,
      root: layout.root,
      binDir,
      containerdSocket: containerdSocket(layout),
      pids: {},
      startSeconds: 0,
      timings: {},
    };
    const cluster = new NodeCluster(info, layout, opts);
    try {
      await cluster.boot();
      return cluster;
    } catch (err) {
      await cluster.stop({ keepRoot: true });
      throw err;
    }
  }

  private async boot(): Promise<void> {
    const { layout: l, info } = this;
    const started = Date.now();
    const mark = (stage: string) => {
      info.timings[stage] = (Date.now() - started) / 1000;
      this.opts.log?.(`${stage} (${info.timings[stage]!.toFixed(1)}s)`);
    };
    const timeout = this.opts.timeoutMs ?? 90_000;
    for (const d of ['pki', 'logs', 'cni', 'kubelet', 'images']) mkdirSync(join(l.root, d), { recursive: true });
    mkdirSync(l.run, { recursive: true });
    writeState(l.root, this.state);

    const pki = generateNodePki(join(l.root, 'pki'), { nodeName: l.nodeName, nodeIp: l.nodeIp, serviceIp: l.apiServiceIp });
    const kubeconfig = (name: 'admin' | 'kubelet' | 'controller-manager' | 'scheduler' | 'kube-proxy') => {
      const file = join(l.root, name === 'admin' ? 'kubeconfig' : `${name}.kubeconfig`);
      writeFileSync(file, kubeconfigFor(info.server, pki.caCert, name, pki.cert(name)));
      return file;
    };
    const ca = readFileSync(pki.caCert);
    const admin = { ca, cert: readFileSync(pki.cert('admin').cert), key: readFileSync(pki.cert('admin').key) };
    mark('pki');

    // etcd + kube-apiserver
    const [etcdClient, etcdPeer] = [await freePort(), await freePort()];
    const etcd = this.spawn('etcd', [
      '--name=octo-node',
      `--data-dir=${join(l.root, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=octo-node=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor('etcd', etcd, timeout, async () => (await fetch(`http://127.0.0.1:${etcdClient}/health`)).ok);
    const api = this.spawn('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      // Pods reach the API server through the kubernetes Service, whose endpoint is the
      // advertised address: it must be the node's, and the server must listen there.
      '--bind-address=0.0.0.0',
      `--advertise-address=${l.nodeIp}`,
      `--secure-port=${l.apiPort}`,
      `--tls-cert-file=${pki.cert('apiserver').cert}`,
      `--tls-private-key-file=${pki.cert('apiserver').key}`,
      `--client-ca-file=${pki.caCert}`,
      `--kubelet-client-certificate=${pki.cert('apiserver-kubelet-client').cert}`,
      `--kubelet-client-key=${pki.cert('apiserver-kubelet-client').key}`,
      // kubectl logs/exec: the kubelet's serving certificate names the node's IP only.
      '--kubelet-preferred-address-types=InternalIP',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.saPub}`,
      `--service-account-signing-key-file=${pki.saKey}`,
      `--service-cluster-ip-range=${l.serviceCidr}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
      '--profiling=false',
    ]);
    await this.waitFor('kube-apiserver', api, timeout, async () => {
      const r = await httpsGet(`https://127.0.0.1:${l.apiPort}/readyz`, admin);
      return r.status === 200;
    });
    kubeconfig('admin');
    mark('apiserver ready');

    const kcm = this.spawn('kube-controller-manager', [
      `--kubeconfig=${kubeconfig('controller-manager')}`,
      `--authentication-kubeconfig=${join(l.root, 'controller-manager.kubeconfig')}`,
      `--authorization-kubeconfig=${join(l.root, 'controller-manager.kubeconfig')}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--use-service-account-credentials=true',
      `--service-account-private-key-file=${pki.saKey}`,
      // Published in every namespace as kube-root-ca.crt, which projected tokens need.
      `--root-ca-file=${pki.caCert}`,
      `--cluster-signing-cert-file=${pki.caCert}`,
      `--cluster-signing-key-file=${pki.caKey}`,
      `--service-cluster-ip-range=${l.serviceCidr}`,
      // Pod addresses come from the CNI's host-local range, not from a node CIDR.
      '--controllers=*,-node-ipam-controller',
      '--profiling=false',
    ]);
    const scheduler = this.spawn('kube-scheduler', [
      `--kubeconfig=${kubeconfig('scheduler')}`,
      `--authentication-kubeconfig=${join(l.root, 'scheduler.kubeconfig')}`,
      `--authorization-kubeconfig=${join(l.root, 'scheduler.kubeconfig')}`,
      '--bind-address=127.0.0.1',
      '--leader-elect=false',
      '--profiling=false',
    ]);

    // containerd, with its own root, state, socket and runc root.
    writeFileSync(join(l.root, 'containerd.toml'), containerdConfig(l));
    writeFileSync(join(l.root, 'cni', '10-octo.conflist'), cniConfig(l));
    const containerd = this.spawn('containerd', ['--config', join(l.root, 'containerd.toml')], { hostBinary: 'containerd' });
    await this.waitFor('containerd', containerd, timeout, async () => existsSync(info.containerdSocket) && this.ctr(['version']).status === 0);
    mark('containerd ready');
    this.importImage(cachedImage(PAUSE_IMAGE, 'pause', join(info.binDir, 'pause'), '65535:65535'));
    this.importImage(cachedImage(COREDNS_IMAGE, 'coredns', join(info.binDir, 'coredns'), '65532:65532'));
    mark('pause and coredns images imported');

    // Routing between the bridge and the node (Service VIPs are DNATed to the node's address).
    try {
      this.state.ipForward = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
      writeState(l.root, this.state);
      writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
    } catch (err) {
      throw new Error(`cannot enable net.ipv4.ip_forward: ${(err as Error).message}`);
    }
    writeFileSync(join(l.root, 'kubelet.yaml'), kubeletConfig(l, pki.caCert));
    const kubelet = this.spawn('kubelet', [
      `--config=${join(l.root, 'kubelet.yaml')}`,
      `--kubeconfig=${kubeconfig('kubelet')}`,
      `--root-dir=${join(l.root, 'kubelet')}`,
      `--hostname-override=${l.nodeName}`,
      `--node-ip=${l.nodeIp}`,
      '--v=1',
    ]);
    writeFileSync(join(l.root, 'kube-proxy.yaml'), kubeProxyConfig(l, kubeconfig('kube-proxy')));
    const proxy = this.spawn('kube-proxy', [`--config=${join(l.root, 'kube-proxy.yaml')}`, '--v=1']);
    await this.waitFor('kubelet (node Ready)', kubelet, timeout, async () => {
      const r = this.kubectl(['get', 'node', l.nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      return r.status === 0 && r.stdout.trim() === 'True';
    });
    mark('node Ready');
    await this.waitFor('kube-proxy', proxy, timeout, async () => (await fetch('http://127.0.0.1:10256/healthz')).ok);
    await this.waitFor('kube-scheduler', scheduler, timeout, async () => (await httpsGet('https://127.0.0.1:10259/healthz', { ca, rejectUnauthorized: false })).status === 200);
    await this.waitFor('kube-controller-manager (default ServiceAccount)', kcm, timeout, async () => this.kubectl(['get', 'serviceaccount', 'default', '-n', 'default']).status === 0);

    const dns = this.kubectl(['apply', '-f', '-'], coreDnsManifest(l));
    if (dns.status !== 0) throw new Error(`applying CoreDNS failed: ${dns.stderr}`);
    await this.waitFor('CoreDNS', kubelet, timeout, async () => {
      const r = this.kubectl(['get', 'deploy', 'coredns', '-n', 'kube-system', '-o', 'jsonpath={.status.readyReplicas}']);
      return r.stdout.trim() === '1';
    });
    mark('CoreDNS ready');
    info.startSeconds = (Date.now() - started) / 1000;
  }

  private spawn(name: string, args: string[], opts: { hostBinary?: string } = {}): ChildProcess {
    const log = join(this.layout.root, 'logs', `${name}.log`);
    const fd = openSync(log, 'a');
    const bin = opts.hostBinary ?? join(this.info.binDir, name);
    const p = spawn(bin, args, { stdio: ['ignore', fd, fd] });
    p.on('error', () => undefined); // reported by waitFor through exitCode
    this.procs.set(name, p);
    this.state.pids[name] = p.pid ?? -1;
    this.info.pids[name] = p.pid ?? -1;
    writeState(this.layout.root, this.state);
    return p;
  }

  private async waitFor(what: string, proc: ChildProcess, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const name = [...this.procs].find(([, p]) => p === proc)?.[0] ?? what;
    const log = join(this.layout.root, 'logs', `${name}.log`);
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${what}: ${name} exited (${proc.exitCode ?? proc.signalCode}); last log lines:\n${tail(log)}`);
      if (await probe().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${what} not ready after ${timeoutMs} ms; last lines of ${name}.log:\n${tail(log)}`);
  }

  /** `ctr` against the cluster's containerd, in the CRI's namespace. */
  ctr(args: string[]): { status: number; stdout: string; stderr: string } {
    const r = spawnSync('ctr', ['--address', this.info.containerdSocket, '--namespace', 'k8s.io', ...args], { encoding: 'utf8', timeout: 120_000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
  }

  /** Imports an OCI image archive (a file path, or its bytes) so pods can use it without a registry. */
  importImage(archive: string | Buffer, label = 'image'): void {
    let file = typeof archive === 'string' ? archive : join(this.layout.root, 'images', `${label}.tar`);
    if (typeof archive !== 'string') writeFileSync(file, archive);
    file = file.startsWith('/') ? file : join(process.cwd(), file);
    const r = this.ctr(['images', 'import', file]);
    if (r.status !== 0) throw new Error(`ctr images import ${file} failed: ${r.stderr || r.stdout}`);
  }

  /** The machine's kubectl as the cluster admin. */
  kubectl(args: string[], input?: string): { status: number; stdout: string; stderr: string } {
    const r = spawnSync('kubectl', ['--kubeconfig', this.info.kubeconfig, ...args], { input, encoding: 'utf8', timeout: 120_000 });
    return { status: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
  }

  /**
   * Stops everything: the kubelet first (so it restarts nothing), then the pods' processes, the
   * other components, and the host changes (node-cleanup.ts). `keepRoot` keeps the logs.
   */
  async stop(opts: { keepRoot?: boolean } = {}): Promise<string[]> {
    if (this.stopped) return [];
    this.stopped = true;
    const order = ['kubelet', 'kube-proxy', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd', 'containerd'];
    for (const name of order) {
      const p = this.procs.get(name);
      if (!p || p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    // containerd and its shims: cleanupNode kills the containers under the shims, then them.
    return cleanupNode({ root: this.layout.root, run: this.layout.run, bridge: this.layout.bridge, keepRoot: opts.keepRoot });
  }

  /** Synchronous teardown for process 'exit' handlers. */
  killNow(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const p of this.procs.values()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    cleanupNode({ root: this.layout.root, run: this.layout.run, bridge: this.layout.bridge, keepRoot: true });
  }

  /** A crashed run's leftovers, removed without starting anything (`cluster:node clean`). */
  static cleanup(layout: Partial<NodeLayout> = {}): string[] {
    const l = { ...DEFAULT_NODE_LAYOUT, ...layout };
    const owner = liveOwner(l.root);
    if (owner) throw new Error(`the node cluster is running (owner pid ${owner}): stop it there instead`);
    return cleanupNode({ root: l.root, run: l.run, bridge: l.bridge });
  }
}
