import { describe, expect, it } from '@jest/globals';
import { agentAdminAccess } from './admin.js';

// The agent's admin port binds the pod IP in Kubernetes (for the kubelet's probes): what a peer
// outside the pod may read, and what only the pod's loopback may (issue 21).
describe('agent admin access', () => {
  it.each([
    // [method, path, peer, allowed]
    ['GET', '/readyz', '10.244.0.1', true], // the kubelet
    ['GET', '/healthz', '10.244.0.1', true],
    ['GET', '/stats/prometheus', '10.244.0.7', true], // Prometheus
    ['GET', '/metrics', '::ffff:10.244.0.7', true],
    ['GET', '/status', '10.244.0.7', true],
    ['GET', '/ready', 'fd00::7', true],
    ['GET', '/config_dump', '10.244.0.7', false], // every route, cluster and secret name
    ['GET', '/clusters', '10.244.0.7', false],
    ['GET', '/proxy', '10.244.0.7', false],
    ['POST', '/readyz', '10.244.0.7', false],
    ['POST', '/quitquitquit', '::ffff:10.244.0.7', false],
    ['GET', '/config_dump', undefined, false],
    ['GET', '/config_dump', '127.0.0.1', true], // kubectl port-forward / exec
    ['POST', '/quitquitquit', '::1', true],
    ['GET', '/clusters', '::ffff:127.0.0.1', true],
    ['GET', '/config_dump', '::ffff:128.0.0.1', false],
  ])('%s %s from %s: %s', (method, path, peer, allowed) => {
    const got = agentAdminAccess(method, path, peer);
    if (allowed) expect(got).toBe(true);
    else expect(got).toContain(`${method} ${path} answers only on the pod's loopback`);
  });
});
