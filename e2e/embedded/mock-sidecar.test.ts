// Issue 20: the Mock-Sidecar scenario library, each file against its own real control plane —
// a dispatcher, a meta server and pilots, each a child process — with simulated sidecars on real
// ADS streams. The same files run at scale as a benchmark (bench/mock-sidecar/bench.mjs).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { formatReport, loadScenario, runScenario, scenarioFiles } from '@octo-mesh/mock-sidecar';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const files = scenarioFiles([fileURLToPath(new URL('../scenarios', import.meta.url))]);

beforeAll(() => {
  // The runner starts the built dispatcher, meta server and pilot (its tsconfig references them).
  execFileSync(`${ROOT}/node_modules/.bin/tsc`, ['-b', 'packages/mock-sidecar'], { cwd: ROOT, stdio: 'inherit' });
}, 300_000);

describe('mock-sidecar scenarios against a real control plane', () => {
  it.each(files.map((f) => [f.slice(f.lastIndexOf('/') + 1), f]))(
    '%s',
    async (_name, file) => {
      const log: string[] = [];
      const report = await runScenario(loadScenario(file), { root: ROOT, log: (l) => log.push(l) });
      const text = formatReport(report);
      if (!report.ok) throw new Error(`${text}\n\nprogress:\n${log.join('\n')}`);
      expect(report.steps.every((s) => s.ok)).toBe(true);
    },
    120_000,
  );
});
