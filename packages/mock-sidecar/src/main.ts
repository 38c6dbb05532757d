#!/usr/bin/env node
/**
 * octo-mock-sidecar: runs Mock-Sidecar scenarios.
 *
 *   octo-mock-sidecar validate <file|dir>...
 *   octo-mock-sidecar run <file|dir>... [--pilots N] [--scale K] [--parallel N] [--continue]
 *                                        [--report out.json] [--timeline]
 *                                        [--dispatcher host:port --meta host:port --meta-admin host:port]
 *
 * Without --dispatcher/--meta it starts its own control plane per file (real dispatcher, meta
 * server and pilot processes from this repository's builds) and stops it after. Exit 0: every
 * scenario passed; 1: one failed; 2: bad usage or an invalid scenario (the message names the
 * step and field).
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { formatPath } from '@octo-mesh/runtime';
import { formatReport, type RunReport } from './report.js';
import { stopEmbeddedControlPlanes } from './control-plane.js';
import { loadScenario, runScenario, scenarioFiles } from './run.js';
import { ScenarioError } from './scenario.js';

const flagsSchema = z
  .object({
    pilots: z.coerce.number().int().min(1).max(8).optional(),
    scale: z.coerce.number().positive().max(1000).default(1),
    parallel: z.coerce.number().int().min(1).max(64).default(1),
    continue: z.literal('true').optional(),
    report: z.string().min(1).optional(),
    timeline: z.literal('true').optional(),
    dispatcher: z.string().regex(/^[^:]+:\d+$/, 'expected host:port').optional(),
    meta: z.string().regex(/^[^:]+:\d+$/, 'expected host:port').optional(),
    metaAdmin: z.string().regex(/^[^:]+:\d+$/, 'expected host:port').optional(),
    root: z.string().min(1).optional(),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('warn'),
  })
  .strict()
  .refine((f) => !!f.dispatcher === !!f.meta && !!f.meta === !!f.metaAdmin, { message: '--dispatcher, --meta and --meta-admin go together', path: ['dispatcher'] });

const usage = 'usage: octo-mock-sidecar validate|run <scenario.yaml|dir>... [--pilots N] [--scale K] [--parallel N] [--continue] [--report FILE] [--timeline] [--dispatcher H:P --meta H:P --meta-admin H:P]';

function parseArgs(argv: string[]): { command: string; paths: string[]; flags: Record<string, string> } {
  const paths: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      paths.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq < 0 ? undefined : eq).replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (eq >= 0) flags[name] = a.slice(eq + 1);
    else if (['continue', 'timeline'].includes(name)) flags[name] = 'true';
    else flags[name] = argv[++i] ?? '';
  }
  const [command = '', ...rest] = paths;
  return { command, paths: rest, flags };
}

async function main(): Promise<number> {
  const { command, paths, flags: raw } = parseArgs(process.argv.slice(2));
  if (!['run', 'validate'].includes(command) || !paths.length) {
    console.error(usage);
    return 2;
  }
  const parsed = flagsSchema.safeParse(raw);
  if (!parsed.success) {
    for (const i of parsed.error.issues) console.error(`octo-mock-sidecar: invalid flag --${formatPath(i.path).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${i.message}`);
    return 2;
  }
  const flags = parsed.data;
  let files: string[];
  try {
    files = scenarioFiles(paths);
  } catch (err) {
    console.error(`octo-mock-sidecar: ${(err as Error).message}`);
    return 2;
  }
  const scenarios = [];
  for (const f of files) {
    try {
      scenarios.push(loadScenario(f));
    } catch (err) {
      if (err instanceof ScenarioError) {
        console.error(err.message);
        return 2;
      }
      throw err;
    }
  }
  if (command === 'validate') {
    for (const [i, s] of scenarios.entries()) console.log(`${files[i]}: ${s.name}, ${s.steps.length} steps: valid`);
    return 0;
  }
  const root = flags.root ?? join(dirname(fileURLToPath(import.meta.url)), '../../..');
  const reports: RunReport[] = [];
  for (const s of scenarios) {
    const report = await runScenario(s, {
      root,
      pilots: flags.pilots,
      scale: flags.scale,
      parallel: flags.parallel,
      continueOnFailure: !!flags.continue,
      logLevel: flags.logLevel,
      external: flags.dispatcher ? { dispatcher: flags.dispatcher, meta: flags.meta!, metaAdmin: flags.metaAdmin! } : undefined,
      log: (l) => console.error(l),
    });
    reports.push(report);
    console.log(formatReport(report, { timeline: !!flags.timeline }));
    console.log('');
  }
  if (flags.report) writeFileSync(flags.report, JSON.stringify(reports, null, 2));
  return reports.every((r) => r.ok) ? 0 : 1;
}

// SIGTERM/SIGINT mid-run: the dispatcher, meta server and pilots this run started go with it.
let stopping = false;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    console.error(`octo-mock-sidecar: ${sig}: stopping the control plane this run started`);
    void stopEmbeddedControlPlanes().finally(() => process.exit(sig === 'SIGTERM' ? 143 : 130));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`octo-mock-sidecar: ${err.message}`);
    process.exit(1);
  },
);
