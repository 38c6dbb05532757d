import { describe, expect, it } from '@jest/globals';
import { iptablesCleanupCommands, mountsUnder, splitRule } from './node-cleanup.js';

describe('splitRule', () => {
  it.each([
    // line, arguments
    ['-A OUTPUT -j KUBE-SERVICES', ['-A', 'OUTPUT', '-j', 'KUBE-SERVICES']],
    ['-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES', ['-A', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']],
    ['-A X -m comment --comment "a \\"quoted\\" word" -j ACCEPT', ['-A', 'X', '-m', 'comment', '--comment', 'a "quoted" word', '-j', 'ACCEPT']],
  ])('%s', (line, args) => expect(splitRule(line)).toEqual(args));
});

describe('iptablesCleanupCommands', () => {
  it('deletes the jumps into KUBE-/CNI- chains from other chains, then flushes and deletes those chains', () => {
    const rules = [
      '-P PREROUTING ACCEPT',
      '-N KUBE-SERVICES',
      '-N KUBE-SVC-ABC',
      '-N CNI-123',
      '-N DOCKER',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      '-A POSTROUTING -s 10.244.0.5/32 -j CNI-123',
      '-A POSTROUTING -j DOCKER',
      '-A KUBE-SERVICES -j KUBE-SVC-ABC',
    ].join('\n');
    expect(iptablesCleanupCommands('nat', rules)).toEqual([
      ['-t', 'nat', '-D', 'PREROUTING', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES'],
      ['-t', 'nat', '-D', 'POSTROUTING', '-s', '10.244.0.5/32', '-j', 'CNI-123'],
      ['-t', 'nat', '-F', 'KUBE-SERVICES'],
      ['-t', 'nat', '-F', 'KUBE-SVC-ABC'],
      ['-t', 'nat', '-F', 'CNI-123'],
      ['-t', 'nat', '-X', 'KUBE-SERVICES'],
      ['-t', 'nat', '-X', 'KUBE-SVC-ABC'],
      ['-t', 'nat', '-X', 'CNI-123'],
    ]);
  });
  it('touches nothing of a host without the cluster', () => {
    expect(iptablesCleanupCommands('filter', '-P INPUT ACCEPT\n-N DOCKER\n-A FORWARD -j DOCKER\n')).toEqual([]);
  });
});

describe('mountsUnder', () => {
  it('selects the cluster mounts, decodes escapes, deepest first', () => {
    const info = [
      '22 1 0:21 / / rw - ext4 /dev/vda rw',
      '90 22 0:50 / /var/lib/octo-cluster/kubelet/pods/p1/volumes/kubernetes.io~projected/kube-api-access rw - tmpfs tmpfs rw',
      '91 22 0:51 / /run/octo-cluster/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay overlay rw',
      '92 22 0:52 / /run/netns/cni-1234 rw - nsfs nsfs rw',
      '93 22 0:53 / /run/netns/other rw - nsfs nsfs rw',
      '94 22 0:54 / /var/lib/octo-cluster/with\\040space rw - tmpfs tmpfs rw',
    ].join('\n');
    const ours = (p: string) => p.startsWith('/var/lib/octo-cluster/') || p.startsWith('/run/octo-cluster/') || p.startsWith('/run/netns/cni-');
    expect(mountsUnder(info, ours)).toEqual([
      '/var/lib/octo-cluster/kubelet/pods/p1/volumes/kubernetes.io~projected/kube-api-access',
      '/run/octo-cluster/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs',
      '/var/lib/octo-cluster/with space',
      '/run/netns/cni-1234',
    ]);
  });
});
