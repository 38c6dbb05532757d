// Shared by e2e/k8s/operator*.test.ts: a namespace where the operator runs as its ServiceAccount
// with exactly the RBAC of packages/operator/deploy/rbac.yaml, the octo-operator executable as a
// child process, and a simulated fleet (pilots on loopback whose instances follow pilot's own
// target function) fed with the ProxyVersions as the API server has them.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api, type V1ClusterRole, type V1ClusterRoleBinding, type V1Role, type V1RoleBinding } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { ProxyVersion } from '@octo-mesh/api';
import { waitFor } from '@octo-mesh/runtime';
import { adminKubeConfig, clusterInfo, createTestNamespace, REPO_ROOT } from '@octo-mesh/testing';
import { FleetSim } from '../../packages/operator/src/fleet-sim.js';
import { targetFor } from '../../packages/pilot/src/upgrade.js';

export const GROUP = 'mesh.octo.io';
export const VERSION = 'v1alpha1';
export const OPERATOR_MAIN = join(REPO_ROOT, 'packages/operator/dist/main.js');

export interface OperatorNamespace {
  ns: string;
  /** Kubeconfig of system:serviceaccount:<ns>:octo-operator. */
  kubeconfig: string;
}

/**
 * A fresh namespace with the operator's ServiceAccount, the manifest's ClusterRole (named per
 * namespace, bound to this namespace's ServiceAccount) and leader-election Role, and a kubeconfig
 * holding a token the API server issued for that ServiceAccount.
 */
export async function operatorNamespace(prefix: string): Promise<OperatorNamespace> {
  const ns = await createTestNamespace(prefix);
  const admin = adminKubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const docs = parseAllDocuments(readFileSync(join(REPO_ROOT, 'packages/operator/deploy/rbac.yaml'), 'utf8')).map((d) => d.toJSON() as { kind: string; metadata: { name: string; namespace?: string } });
  for (const doc of docs) {
    if (doc.metadata.namespace) doc.metadata.namespace = ns;
    const subjects = (doc as { subjects?: { namespace?: string }[] }).subjects;
    for (const s of subjects ?? []) s.namespace = ns;
    if (doc.kind === 'ClusterRole' || doc.kind === 'ClusterRoleBinding') doc.metadata.name = `${doc.metadata.name}-${ns}`;
    if (doc.kind === 'ClusterRoleBinding') (doc as unknown as V1ClusterRoleBinding).roleRef.name = `octo-operator-${ns}`;
    if (doc.kind === 'ServiceAccount') await core.createNamespacedServiceAccount({ namespace: ns, body: doc });
    else if (doc.kind === 'ClusterRole') await rbac.createClusterRole({ body: doc as unknown as V1ClusterRole });
    else if (doc.kind === 'ClusterRoleBinding') await rbac.createClusterRoleBinding({ body: doc as unknown as V1ClusterRoleBinding });
    else if (doc.kind === 'Role') await rbac.createNamespacedRole({ namespace: ns, body: doc as unknown as V1Role });
    else if (doc.kind === 'RoleBinding') await rbac.createNamespacedRoleBinding({ namespace: ns, body: doc as unknown as V1RoleBinding });
    else throw new Error(`rbac.yaml: unexpected kind ${doc.kind}`);
  }
  const token = await core.createNamespacedServiceAccountToken({ name: 'octo-operator', namespace: ns, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const cluster = admin.getCurrentCluster()!;
  const caLine = cluster.caFile ? `certificate-authority: ${cluster.caFile}` : `certificate-authority-data: ${cluster.caData}`;
  const kubeconfig = join(clusterInfo().workDir, `operator-${ns}.kubeconfig`);
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: ${cluster.server}\n    ${caLine}\ncontexts:\n- name: sa\n  context:\n    cluster: test\n    user: sa\n    namespace: ${ns}\ncurrent-context: sa\nusers:\n- name: sa\n  user:\n    token: ${token.status!.token}\n`,
  );
  // RBAC reaches the authorizer through its informer: wait until the ServiceAccount can list.
  const sa = new KubeConfig();
  sa.loadFromFile(kubeconfig);
  const custom = sa.makeApiClient(CustomObjectsApi);
  await waitFor('the operator RBAC to apply', () => custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'proxyversions' }).then(() => true, () => false), (ok) => ok, { timeoutMs: 15_000, intervalMs: 100 });
  return { ns, kubeconfig };
}

export const proxyVersion = (ns: string, version: string, strategy: Record<string, unknown> = {}) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: 'ProxyVersion',
  metadata: { name: `proxy-${version.replaceAll('.', '-')}`, namespace: ns },
  spec: {
    version,
    package: { url: `https://repo.example/${version}.tgz`, sha256: 'a'.repeat(64) },
    strategy: {
      canary: { percent: 10 },
      steps: [40, 70, 100],
      pauseBetweenBatches: '1s',
      healthGate: { minReadySeconds: 1, maxFailurePercent: 0, progressDeadline: '2m' },
      ...strategy,
    },
  },
});

/** Creates the release every instance runs, marked Succeeded (as an earlier rollout would have left it). */
export async function baseline(ns: string, version: string): Promise<void> {
  const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
  const body = proxyVersion(ns, version);
  const created = (await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'proxyversions', body })) as { metadata: { resourceVersion: string; generation: number } };
  await custom.replaceNamespacedCustomObjectStatus({
    group: GROUP,
    version: VERSION,
    namespace: ns,
    plural: 'proxyversions',
    name: body.metadata.name,
    body: { ...body, metadata: { ...body.metadata, resourceVersion: created.metadata.resourceVersion }, status: { phase: 'Succeeded', observedGeneration: created.metadata.generation, currentBatch: 3, batches: 4, total: 0 } },
  });
}

export async function listProxyVersions(ns: string): Promise<ProxyVersion[]> {
  const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
  return ((await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'proxyversions' })) as { items: ProxyVersion[] }).items;
}

export async function getProxyVersion(ns: string, name: string): Promise<ProxyVersion> {
  const custom = adminKubeConfig().makeApiClient(CustomObjectsApi);
  return (await custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'proxyversions', name })) as ProxyVersion;
}

/** A fleet of `instances` sidecars on `pilots` pilots, following pilot's targetFor, fed from the API server every 100 ms. */
export async function startFleet(ns: string, opts: { pilots: number; instances: number; initialVersion: string; badVersions?: string[] }) {
  const sim = new FleetSim({
    ...opts,
    swapMs: 200,
    readyMs: 200,
    targetOf: (id, pvs) => {
      const t = targetFor({ id, instanceId: id, namespace: 'shop', labels: {}, dependencies: [] }, pvs);
      return t ? { version: t.version, rollout: t.rollout } : undefined;
    },
  });
  await sim.start();
  let stopped = false;
  const feed = (async () => {
    while (!stopped) {
      try {
        sim.setProxyVersions(await listProxyVersions(ns));
      } catch (err) {
        process.stderr.write(`fleet feed: listing ProxyVersions failed: ${(err as Error).message}\n`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const stepper = setInterval(() => sim.step(), 50);
  return {
    sim,
    async stop() {
      stopped = true;
      clearInterval(stepper);
      await feed;
      await sim.stop();
    },
  };
}

export interface OperatorProcess {
  child: ChildProcess;
  identity: string;
  output(): string;
  exited: Promise<number | null>;
}

/** Starts the octo-operator executable as the ServiceAccount. Short lease timings keep the tests quick. */
export function startOperator(env: OperatorNamespace, metaServerUrl: string, identity: string, extra: string[] = []): OperatorProcess {
  const child = spawn(
    process.execPath,
    [
      OPERATOR_MAIN,
      ...['--kubeconfig', env.kubeconfig, '--namespace', env.ns, '--watch-namespace', env.ns, '--identity', identity, '--admin-port', '0'],
      ...['--meta-server-url', metaServerUrl, '--lease-duration-ms', '6000', '--renew-deadline-ms', '4000', '--retry-period-ms', '1000', '--poll-interval-ms', '250'],
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, identity, output: () => out, exited };
}

/** Records every (phase, currentBatch, batchStartedAt) the status passes through, polling every 50 ms. */
export function recordStatus(ns: string, name: string) {
  const seen: { phase?: string; batch?: number; startedAt?: string }[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const st = (await getProxyVersion(ns, name)).status;
        const last = seen.at(-1);
        const now = { phase: st?.phase, batch: st?.currentBatch, startedAt: st?.batchStartedAt };
        if (!last || last.phase !== now.phase || last.batch !== now.batch || last.startedAt !== now.startedAt) seen.push(now);
      } catch (err) {
        process.stderr.write(`status recorder: ${(err as Error).message}\n`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    seen,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** The batches a rollout went through: each started once (one batchStartedAt), none skipped. */
export function batchHistory(seen: { phase?: string; batch?: number; startedAt?: string }[]): { batches: number[]; startsPerBatch: Record<number, number> } {
  const starts = new Map<number, Set<string>>();
  for (const s of seen) if (s.batch !== undefined && s.startedAt && (s.phase === 'Progressing' || s.phase === 'Succeeded')) (starts.get(s.batch) ?? starts.set(s.batch, new Set()).get(s.batch)!).add(s.startedAt);
  return { batches: [...starts.keys()], startsPerBatch: Object.fromEntries([...starts].map(([b, s]) => [b, s.size])) };
}
