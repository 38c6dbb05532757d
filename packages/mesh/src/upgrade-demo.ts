#!/usr/bin/env node
/**
 * `npm run demo:upgrade -- --version 1.1.0`: rolls a new proxy release out to the running
 * embedded mesh's fleet, as a platform team would — build the proxy package (reproducible, the
 * version stamped in), push it to the package repository, apply a ProxyVersion (canary of one
 * instance, then half, then all; 5 s of readiness per batch) — and then follows the rollout.
 * `--broken` builds a release whose proxy never becomes ready, to watch the canary fail and roll
 * back. Everything it does is what `npm run package:proxy`, `octoctl package push` and
 * `octoctl apply` do by hand (see the README).
 */
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProxyVersion } from '@octo-mesh/api';
import { DispatcherConnection } from '@octo-mesh/clients';
import { DEFAULT_STATE_FILE, type EmbeddedState } from '@octo-mesh/contracts';
import { writePackage } from '@octo-mesh/proxy-package/build.js';
import { pushPackage } from '@octo-mesh/proxy-package';
import { parseFlags } from '@octo-mesh/runtime';

/** A proxy whose entry never serves: its process stays up and never reports ready. */
const BROKEN_ENTRY = 'broken.mjs';
const BROKEN_SOURCE = "// A deliberately broken release for the demo: it never becomes ready.\nsetInterval(() => {}, 1 << 30);\n";

/** The ProxyVersion the demo applies (`strategy` overrides parts of its strategy). Pure. */
export function demoProxyVersion(version: string, url: string, sha256: string, strategy: Partial<ProxyVersion['spec']['strategy']> = {}): ProxyVersion {
  return {
    apiVersion: 'mesh.octo.io/v1alpha1',
    kind: 'ProxyVersion',
    metadata: { name: `octo-proxy-${version.replaceAll('.', '-')}`, namespace: 'demo' },
    spec: {
      version,
      package: { url, sha256 },
      scope: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'demo' } } },
      paused: false,
      strategy: {
        canary: { instances: 1 },
        steps: [50, 100],
        pauseBetweenBatches: '2s',
        healthGate: { minReadySeconds: 5, maxFailurePercent: 0, progressDeadline: '2m' },
        autoRollback: true,
        ...strategy,
      },
    },
  } as ProxyVersion;
}

async function main(): Promise<void> {
  const flags = parseFlags(process.argv.slice(2));
  const version = flags['version'];
  if (!version || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(version)) {
    process.stderr.write('demo:upgrade: --version must be a semantic version, e.g. --version 1.1.0\n');
    process.exit(2);
  }
  const stateFile = flags['state'] ?? DEFAULT_STATE_FILE;
  let state: EmbeddedState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8')) as EmbeddedState;
  } catch (err) {
    process.stderr.write(`demo:upgrade: no running embedded mesh (${stateFile}: ${(err as Error).message}); start it with npm start\n`);
    process.exit(1);
  }
  if (!state.repository) throw new Error(`${stateFile} names no package repository: is the embedded mesh up to date?`);
  const broken = flags['broken'] === 'true';
  const pkg = await writePackage(broken ? { version, entry: BROKEN_ENTRY, files: [{ path: BROKEN_ENTRY, data: Buffer.from(BROKEN_SOURCE) }] } : { version }, join(tmpdir(), 'octo-demo-packages'));
  process.stdout.write(`built   ${pkg.path}\n        sha256 ${pkg.sha256}${broken ? '  (broken on purpose: never becomes ready)' : ''}\n`);
  const pushed = await pushPackage(state.repository.url, pkg.path);
  process.stdout.write(`pushed  ${pushed.url}\n`);
  const conn = new DispatcherConnection(state.dispatcher.grpc, state.security && { certDir: state.security.adminTlsDir });
  try {
    const pv = demoProxyVersion(version, pushed.url, pushed.sha256);
    await conn.apply(pv);
    const key = `${pv.metadata.namespace}/${pv.metadata.name}`;
    process.stdout.write(`applied proxyversion/${key}: canary of 1 instance, then 50 %, then all\n\n`);
    // Follow it until it ends, printing each change of phase or batch.
    let last = '';
    for (;;) {
      const got = (await conn.get('ProxyVersion', key)) as ProxyVersion;
      const st = got.status ?? {};
      const line = `${st.phase ?? 'Pending'}  batch ${(st.currentBatch ?? 0) + 1}  updated ${st.updated ?? 0}/${st.total ?? '?'}  ready ${st.ready ?? 0}  failed ${st.failed ?? 0}${st.message ? `  — ${st.message}` : ''}`;
      if (line !== last) process.stdout.write(`${new Date().toISOString().slice(11, 19)}  ${line}\n`);
      last = line;
      if (['Succeeded', 'RolledBack', 'Failed', 'Superseded'].includes(st.phase ?? '')) break;
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    conn.close();
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((err: Error) => {
    process.stderr.write(`demo:upgrade: ${err.message}\n`);
    process.exit(1);
  });
}
