/**
 * The configuration files of the single-node cluster, as pure functions of its layout: what
 * each component is told, in one place, so a reader sees every setting the VM forces (cgroup v1,
 * no CAP_SYS_RESOURCE, no registry) next to why.
 */
import { join } from 'node:path';

/** Where one node cluster lives. Fixed per machine: one cluster per machine (node ports, iptables). */
export interface NodeLayout {
  /** Persistent state: PKI, etcd, kubelet root, containerd root, logs. */
  root: string;
  /** Runtime state: containerd state and socket, runc root. */
  run: string;
  nodeName: string;
  nodeIp: string;
  /** The Linux bridge the CNI bridge plugin creates; deleted on teardown. */
  bridge: string;
  podSubnet: string;
  serviceCidr: string;
  /** The `kubernetes` Service's ClusterIP (first of serviceCidr). */
  apiServiceIp: string;
  dnsServiceIp: string;
  apiPort: number;
  clusterDomain: string;
}

export const DEFAULT_NODE_LAYOUT: Omit<NodeLayout, 'nodeIp'> = {
  root: '/var/lib/octo-cluster',
  run: '/run/octo-cluster',
  nodeName: 'octo-node',
  bridge: 'octo0',
  podSubnet: '10.244.0.0/24',
  serviceCidr: '10.96.0.0/12',
  apiServiceIp: '10.96.0.1',
  dnsServiceIp: '10.96.0.10',
  apiPort: 6443,
  clusterDomain: 'cluster.local',
};

export const containerdSocket = (l: NodeLayout) => join(l.run, 'containerd.sock');
/** The sandbox image the harness builds and imports (no registry to pull the upstream one from). */
export const PAUSE_IMAGE = 'octo.local/pause:1';
export const COREDNS_IMAGE = 'octo.local/coredns:1';
/** The Debian package's CNI plugin directory. */
export const CNI_BIN_DIR = '/usr/lib/cni';

export function containerdConfig(l: NodeLayout): string {
  return `version = 2
root = "${join(l.root, 'containerd')}"
state = "${join(l.run, 'containerd')}"
# Plugins that would touch shared host paths or are of no use here.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "${containerdSocket(l)}"
[ttrpc]
  address = "${containerdSocket(l)}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # The VM lacks CAP_SYS_RESOURCE: without this every sandbox fails with
  # "can't get final child's PID from pipe" (runc cannot lower oom_score_adj).
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${join(l.run, 'runc')}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN_DIR}"
    conf_dir = "${join(l.root, 'cni')}"
    max_conf_num = 1
`;
}

/** One bridge, host-local IPAM in the cluster's own data dir, no masquerade (pods need no Internet). */
export function cniConfig(l: NodeLayout): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'octo-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: l.bridge,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: { type: 'host-local', ranges: [[{ subnet: l.podSubnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(l.root, 'cni-ipam') },
        },
      ],
    },
    null,
    2,
  );
}

export function kubeletConfig(l: NodeLayout, caCert: string): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroups are v1 on these VMs and cannot switch to v2.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://${containerdSocket(l)}
address: ${l.nodeIp}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: ${caCert}}
authorization: {mode: AlwaysAllow}
clusterDomain: ${l.clusterDomain}
clusterDNS: [${l.dnsServiceIp}]
resolvConf: /etc/resolv.conf
podLogsDir: ${join(l.root, 'pod-logs')}
failSwapOn: false
# A test node on a shared disk: evict only when really short, never garbage-collect our images.
evictionHard: {memory.available: 200Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
maxPods: 60
registerNode: true
rotateCertificates: false
shutdownGracePeriod: 0s
`;
}

export function kubeProxyConfig(l: NodeLayout, kubeconfig: string): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: ${kubeconfig}}
mode: iptables
hostnameOverride: ${l.nodeName}
clusterCIDR: ${l.podSubnet}
bindAddress: 0.0.0.0
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the host's conntrack sysctls and route_localnet alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
`;
}

export function kubeconfigFor(server: string, caCert: string, user: string, cert: { cert: string; key: string }): string {
  return `apiVersion: v1
kind: Config
clusters:
- name: octo-node
  cluster: {server: ${server}, certificate-authority: ${caCert}}
users:
- name: ${user}
  user: {client-certificate: ${cert.cert}, client-key: ${cert.key}}
contexts:
- name: octo-node
  context: {cluster: octo-node, user: ${user}, namespace: default}
current-context: octo-node
`;
}

/**
 * Cluster DNS: CoreDNS as a Deployment behind the conventional `kube-dns` Service. It answers
 * only the cluster domain (no `forward`: pods have no business resolving outside names here),
 * non-root on port 1053 behind the Service's port 53.
 */
export function coreDnsManifest(l: NodeLayout): string {
  return `apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:octo-coredns"}
rules:
- apiGroups: [""]
  resources: [services, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:octo-coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:octo-coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  Corefile: |
    .:1053 {
        errors
        health :8080
        ready :8181
        kubernetes ${l.clusterDomain} in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
        }
        cache 5
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
      - name: coredns
        image: ${COREDNS_IMAGE}
        imagePullPolicy: IfNotPresent
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 1053, protocol: UDP}
        - {name: dns-tcp, containerPort: 1053, protocol: TCP}
        readinessProbe: {httpGet: {path: /ready, port: 8181}, periodSeconds: 2}
        livenessProbe: {httpGet: {path: /health, port: 8080}, periodSeconds: 10}
        resources: {requests: {cpu: 10m, memory: 32Mi}, limits: {memory: 128Mi}}
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
        volumeMounts: [{name: config, mountPath: /etc/coredns}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: ${l.dnsServiceIp}
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, targetPort: 1053, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: 1053, protocol: TCP}
`;
}
