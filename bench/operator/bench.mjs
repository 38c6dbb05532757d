#!/usr/bin/env node
// Operator benchmark (not a test): a ProxyVersion rollout over 1,000 simulated sidecars on 2
// simulated pilots, with the octo-operator executable on a real kube-apiserver + etcd.
// The fleet answers the aggregate contract over loopback HTTP; its instances follow pilot's own
// target function (swap 500 ms, ready 500 ms later). Reports, per batch: time from batch start to
// the gate decision, how much of it came after the gate could first pass (the last instance
// ready + minReadySeconds: the operator's own overhead), status writes and events (API writes);
// overall: operator CPU seconds and the shortest gap between two status writes of the rollout.
//
// Usage: node_modules/.bin/node bench/operator/bench.mjs [--instances 1000] [--pilots 2]
//        [--min-ready 5] [--poll-ms 1000]   (builds packages/operator and pilot's upgrade.ts)
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '../..');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const INSTANCES = Number(arg('instances', '1000'));
const PILOTS = Number(arg('pilots', '2'));
const MIN_READY = Number(arg('min-ready', '5'));
const POLL_MS = Number(arg('poll-ms', '1000'));

for (const p of ['packages/testing', 'packages/operator', 'packages/pilot']) {
  try {
    execFileSync(join(root, 'node_modules/.bin/tsc'), ['-p', p], { cwd: root, stdio: 'ignore' });
  } catch (err) {
    // Type errors elsewhere in the workspace do not stop emit; a missing build fails at import below.
    console.error(`tsc -p ${p}: ${err.status === undefined ? err.message : `exit ${err.status} (emitted anyway)`}`);
  }
}
const { TestCluster, kubeBinDir } = await import(join(root, 'packages/testing/dist/index.js'));
const { FleetSim } = await import(join(root, 'packages/operator/dist/fleet-sim.js'));
const { targetFor } = await import(join(root, 'packages/pilot/dist/upgrade.js'));
const { CustomObjectsApi, KubeConfig } = await import('@kubernetes/client-node');

const cluster = await TestCluster.start(kubeBinDir(true));
const kubectl = (...args) => execFileSync('kubectl', ['--kubeconfig', cluster.info.kubeconfig, ...args], { encoding: 'utf8' });
let operator;
let fleet;
let stepper;
let feeding = true;
try {
  kubectl('apply', '--server-side', '-f', join(root, 'crds'));
  kubectl('wait', '--for=condition=Established', '--timeout=30s', 'crd/proxyversions.mesh.octo.io', 'crd/routepolicies.mesh.octo.io');
  kubectl('create', 'namespace', 'bench');
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.info.kubeconfig);
  const custom = kc.makeApiClient(CustomObjectsApi);
  const G = { group: 'mesh.octo.io', version: 'v1alpha1', namespace: 'bench', plural: 'proxyversions' };
  const pv = (version, strategy) => ({
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'ProxyVersion',
    metadata: { name: `proxy-${version.replaceAll('.', '-')}`, namespace: 'bench' },
    spec: { version, package: { url: `https://repo.example/${version}.tgz`, sha256: 'a'.repeat(64) }, strategy },
  });
  const strategy = { canary: { percent: 5 }, steps: [25, 50, 100], pauseBetweenBatches: '2s', healthGate: { minReadySeconds: MIN_READY, maxFailurePercent: 0, progressDeadline: '5m' } };
  const base = pv('1.0.0', strategy);
  const created = await custom.createNamespacedCustomObject({ ...G, body: base });
  await custom.replaceNamespacedCustomObjectStatus({ ...G, name: base.metadata.name, body: { ...base, metadata: { ...base.metadata, resourceVersion: created.metadata.resourceVersion }, status: { phase: 'Succeeded', currentBatch: 3, total: 0 } } });

  fleet = new FleetSim({
    pilots: PILOTS,
    instances: INSTANCES,
    initialVersion: '1.0.0',
    swapMs: 500,
    readyMs: 500,
    targetOf: (id, pvs) => {
      const t = targetFor({ id, instanceId: id, namespace: 'shop', labels: {}, dependencies: [] }, pvs);
      return t ? { version: t.version, rollout: t.rollout } : undefined;
    },
  });
  await fleet.start();
  const feed = (async () => {
    while (feeding) {
      fleet.setProxyVersions((await custom.listNamespacedCustomObject(G)).items);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  stepper = setInterval(() => fleet.step(), 50);

  let out = '';
  operator = spawn(
    process.execPath,
    [join(root, 'packages/operator/dist/main.js'), '--kubeconfig', cluster.info.kubeconfig, '--namespace', 'bench', '--watch-namespace', 'bench', '--admin-port', '0', '--meta-server-url', fleet.metaUrl, '--poll-interval-ms', String(POLL_MS)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  operator.stdout.on('data', (c) => (out += c.toString()));
  const lines = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  const until = async (what, ok, timeoutMs) => {
    const end = Date.now() + timeoutMs;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  await until('the operator to lead', () => lines().some((l) => l.message === 'became leader'), 30_000);
  const adminPort = lines().find((l) => l.message === 'listening').adminPort;
  const cpu = () => {
    const f = readFileSync(`/proc/${operator.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks of 10 ms
  };
  const cpu0 = cpu();
  const t0 = Date.now();
  await custom.createNamespacedCustomObject({ ...G, body: pv('1.1.0', strategy) });
  await until('Succeeded', async () => (await custom.getNamespacedCustomObject({ ...G, name: 'proxy-1-1-0' })).status?.phase === 'Succeeded', 600_000);
  const elapsed = (Date.now() - t0) / 1000;
  const cpuSeconds = cpu() - cpu0;
  const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const metric = (name) => metrics.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0);

  const writes = lines().filter((l) => l.message === 'rollout status written' && l.key === 'bench/proxy-1-1-0');
  const gates = lines().filter((l) => l.message === 'batch gate passed');
  const byBatch = new Map();
  for (const w of writes) byBatch.set(w.batch, (byBatch.get(w.batch) ?? 0) + 1);
  const times = writes.map((w) => Date.parse(w.sentAt));
  const minGap = Math.min(...times.slice(1).map((t, i) => t - times[i]));
  const events = metric('octo_operator_events_total');

  console.log(`\nOperator rollout: ${INSTANCES} sidecars on ${PILOTS} pilots, canary 5% then 25/50/100%, minReadySeconds ${MIN_READY}, pause 2s, poll ${POLL_MS} ms`);
  console.log('| batch | share | batch start → gate decision (s) | after the gate could pass (s) | status writes |');
  console.log('| --- | --- | --- | --- | --- |');
  const shares = ['5%', '25%', '50%', '100%'];
  for (const g of gates) console.log(`| ${g.batch} | ${shares[g.batch]} | ${(g.sinceBatchStartMs / 1000).toFixed(2)} | ${(g.overheadMs / 1000).toFixed(2)} | ${byBatch.get(g.batch) ?? 0} |`);
  console.log(`\nrollout ${elapsed.toFixed(1)} s; operator CPU ${cpuSeconds.toFixed(2)} s (${((100 * cpuSeconds) / elapsed).toFixed(1)} % of one core)`);
  console.log(`API writes: ${writes.length} status writes + ${events} events over ${gates.length} batches = ${((writes.length + events) / gates.length).toFixed(1)} per batch; shortest gap between two status writes sent ${minGap} ms`);
  console.log(`status writes ${metric('octo_operator_status_writes_total')} (all objects), conflicts ${metric('octo_operator_status_conflicts_total')}, fleet polls ${metric('octo_operator_fleet_polls_total')}`);
  feeding = false;
  await feed;
} finally {
  feeding = false;
  clearInterval(stepper);
  if (operator && operator.exitCode === null) {
    operator.kill('SIGTERM');
    await new Promise((r) => operator.once('exit', r));
  }
  await fleet?.stop();
  await cluster.stop();
}
