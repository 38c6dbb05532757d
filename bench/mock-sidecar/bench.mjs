#!/usr/bin/env node
// Mock-Sidecar at scale: the e2e scenario library (e2e/scenarios/*.yaml, the files CI runs with
// about ten sidecars each) run again with every `start` count multiplied so each scenario has
// about --sidecars simulated sidecars, each file against its own real control plane (dispatcher,
// meta server, pilots as child processes). Prints, per scenario, each step's p50/p99/max over
// sidecars and the control plane's CPU and memory over time (from /proc of the processes it
// started). Steps keep going after a failed expectation so every figure is printed; a failure is
// printed with its step.
//
// Usage: node_modules/.bin/node bench/mock-sidecar/bench.mjs [--sidecars 1000] [--pilots N]
//          [--parallel N] [--report out.json] [files or dirs, default e2e/scenarios]
// (builds packages/mock-sidecar and what it starts first)
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
execFileSync(join(root, 'node_modules/.bin/tsc'), ['-b', 'packages/mock-sidecar'], { cwd: root, stdio: 'inherit' });
const { formatReport, loadScenario, runScenario, scenarioFiles } = await import('@octo-mesh/mock-sidecar');

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const target = Number(flag('sidecars', '1000'));
const pilots = flag('pilots', undefined);
const parallel = Number(flag('parallel', '1'));
const reportFile = flag('report', undefined);
const files = scenarioFiles(args.length ? args : [join(root, 'e2e/scenarios')]);

console.log(`Mock-Sidecar scale run — about ${target} sidecars per scenario; Node ${process.version}, ${cpus().length} CPUs, 1-min load ${loadavg()[0].toFixed(1)}`);
const reports = [];
for (const file of files) {
  const scenario = loadScenario(file);
  const started = scenario.steps.filter((s) => s.kind === 'start').reduce((n, s) => n + s.args.count, 0);
  const scale = Math.max(1, target / Math.max(1, started) / parallel);
  process.stderr.write(`${scenario.name}: ${started} sidecars × ${scale.toFixed(1)}${parallel > 1 ? ` × ${parallel} parallel` : ''}\n`);
  try {
    const report = await runScenario(scenario, {
      root,
      scale,
      parallel,
      pilots: pilots ? Number(pilots) : undefined,
      continueOnFailure: true,
      log: (l) => process.stderr.write(`  ${l.split('\n')[0]}\n`),
    });
    reports.push(report);
    console.log(`\n${formatReport(report, { timeline: true })}`);
  } catch (err) {
    console.log(`\n${scenario.name}: could not run: ${err.message}`);
  }
}
if (reportFile) writeFileSync(reportFile, JSON.stringify(reports, null, 2));
process.exit(reports.every((r) => r.ok) ? 0 : 1);
