import { describe, expect, it } from '@jest/globals';
import { DEFAULT_NODE_LAYOUT, cniConfig, containerdConfig, coreDnsManifest, kubeProxyConfig, kubeletConfig, type NodeLayout } from './node-config.js';

const layout: NodeLayout = { ...DEFAULT_NODE_LAYOUT, nodeIp: '192.0.2.2' };

describe('node configuration', () => {
  it.each([
    // file, the setting these VMs need, why
    ['kubelet', kubeletConfig(layout, '/ca.crt'), 'failCgroupV1: false', 'cgroups are v1'],
    ['kubelet', kubeletConfig(layout, '/ca.crt'), 'cgroupDriver: cgroupfs', 'no systemd cgroup driver'],
    ['kubelet', kubeletConfig(layout, '/ca.crt'), 'containerRuntimeEndpoint: unix:///run/octo-cluster/containerd.sock', 'the private containerd'],
    ['kubelet', kubeletConfig(layout, '/ca.crt'), 'clusterDNS: [10.96.0.10]', 'CoreDNS behind kube-dns'],
    ['containerd', containerdConfig(layout), 'restrict_oom_score_adj = true', 'no CAP_SYS_RESOURCE'],
    ['containerd', containerdConfig(layout), 'sandbox_image = "octo.local/pause:1"', 'no registry: our own pause image'],
    ['containerd', containerdConfig(layout), 'address = "/run/octo-cluster/containerd.sock"', 'a private socket'],
    ['containerd', containerdConfig(layout), 'Root = "/run/octo-cluster/runc"', 'a private runc root'],
    ['kube-proxy', kubeProxyConfig(layout, '/kp.kubeconfig'), 'mode: iptables', 'chains the cleanup knows'],
    ['kube-proxy', kubeProxyConfig(layout, '/kp.kubeconfig'), 'conntrack: {maxPerCore: 0', 'host sysctls untouched'],
    ['coredns', coreDnsManifest(layout), 'clusterIP: 10.96.0.10', 'the address the kubelet hands to pods'],
  ])('%s has %s (%s)', (_file, text, setting) => {
    expect(text).toContain(setting);
  });

  it('gives the CNI bridge its own name, range and IPAM dir, without masquerade', () => {
    const cni = JSON.parse(cniConfig(layout)) as { plugins: { bridge: string; ipMasq: boolean; ipam: { ranges: { subnet: string }[][]; dataDir: string } }[] };
    expect(cni.plugins[0]).toMatchObject({ bridge: 'octo0', ipMasq: false, ipam: { ranges: [[{ subnet: '10.244.0.0/24' }]], dataDir: '/var/lib/octo-cluster/cni-ipam' } });
  });

  it('keeps CoreDNS to the cluster domain: no forwarding out of the machine', () => {
    expect(coreDnsManifest(layout)).not.toMatch(/\bforward\b/);
  });
});
