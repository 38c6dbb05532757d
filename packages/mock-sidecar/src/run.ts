/**
 * One call that runs scenario files the way the CLI, the e2e test and the bench do: each file
 * against a fresh embedded control plane (or one external mesh), optionally scaled and in
 * parallel copies, returning one report per file.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedControlPlane, ExternalControlPlane, type ControlPlane } from './control-plane.js';
import { ProcSampler, type RunReport } from './report.js';
import { ScenarioRunner } from './runner.js';
import { parseScenario, scaleScenario, type Scenario } from './scenario.js';

export interface RunFilesOptions {
  /** Repository root (where packages/<pkg>/dist/main.js live) for the embedded control plane. */
  root: string;
  /** Override the scenario's number of pilots. */
  pilots?: number;
  /** Multiply every `start` count. */
  scale?: number;
  /** Copies of each scenario run at once against one control plane (stress mode). */
  parallel?: number;
  /** An external mesh instead of an embedded one (no kill/restart). */
  external?: { dispatcher: string; meta: string; metaAdmin: string };
  continueOnFailure?: boolean;
  sampleIntervalMs?: number;
  log?: (line: string) => void;
  logLevel?: string;
}

/** `.yaml`/`.yml` files, directories expanded (sorted). */
export function scenarioFiles(paths: string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(p, f))
      : [p],
  );
}

export function loadScenario(file: string): Scenario {
  return parseScenario(readFileSync(file, 'utf8'), file);
}

const FAULTS = new Set(['kill', 'restart', 'expectRehomed']);

/** Runs one scenario; parallel copies share the control plane and their reports are merged per step. */
export async function runScenario(scenario: Scenario, opts: RunFilesOptions): Promise<RunReport> {
  const parallel = opts.parallel ?? 1;
  const s = scaleScenario(scenario, opts.scale ?? 1);
  if (parallel > 1) {
    const fault = s.steps.find((st) => FAULTS.has(st.kind));
    if (fault) throw new Error(`${s.name}: steps[${fault.index}] (${fault.kind}) cannot run in ${parallel} parallel copies (one copy's fault would break the others' expectations); run it with --parallel 1`);
  }
  let cp: ControlPlane;
  if (opts.external) cp = new ExternalControlPlane(opts.external.dispatcher, opts.external.meta, opts.external.metaAdmin);
  else {
    const e = new EmbeddedControlPlane({ root: opts.root, pilots: opts.pilots ?? s.pilots, logLevel: opts.logLevel });
    opts.log?.(`${s.name}: starting the control plane (dispatcher, meta server, ${opts.pilots ?? s.pilots} pilots)`);
    try {
      await e.start();
    } catch (err) {
      await e.stop();
      throw err;
    }
    cp = e;
  }
  try {
    const sampler = new ProcSampler(() => cp.components(), opts.sampleIntervalMs ?? 1000);
    sampler.start();
    const reports = await Promise.all(
      Array.from({ length: parallel }, (_, i) =>
        new ScenarioRunner({
          controlPlane: cp,
          idPrefix: parallel > 1 ? `c${i}-` : '',
          continueOnFailure: opts.continueOnFailure,
          sampleIntervalMs: 0,
          log: opts.log && ((l) => opts.log!(`${s.name}${parallel > 1 ? `#${i}` : ''}: ${l}`)),
        }).run(s),
      ),
    );
    const samples = sampler.stop();
    const first = reports[0]!;
    return {
      scenario: s.name + (parallel > 1 ? ` ×${parallel} parallel` : ''),
      sidecars: reports.reduce((n, r) => n + r.sidecars, 0),
      ok: reports.every((r) => r.ok),
      wallMs: Math.max(...reports.map((r) => r.wallMs)),
      samples,
      steps: first.steps.map((st, k) => {
        const all = reports.map((r) => r.steps[k]).filter((x) => x !== undefined);
        return { ...st, ok: all.every((x) => x.ok), error: all.find((x) => x.error)?.error, latencies: all.flatMap((x) => x.latencies) };
      }),
    };
  } finally {
    await cp.stop();
  }
}
