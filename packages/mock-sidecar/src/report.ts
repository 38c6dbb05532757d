/**
 * What a run reports: per step, the latencies it measured (p50/p99/max over sidecars), and the
 * control plane's CPU and memory over time, read from /proc of the processes the runner started.
 * The arithmetic and the formatting are pure; {@link ProcSampler} is the thin I/O part.
 */
import { readFileSync } from 'node:fs';
import type { ComponentInfo } from './control-plane.js';

export interface StepResult {
  index: number;
  kind: string;
  /** One line on what the step did or checked. */
  summary: string;
  ok: boolean;
  error?: string;
  wallMs: number;
  /** Per-sidecar latencies the step measured (push, sync, re-homing), ms. */
  latencies: number[];
  /** Extra figures (pushes per sidecar, changes applied, …). */
  figures?: Record<string, number>;
}

export interface Sample {
  /** ms since the run started. */
  t: number;
  /** component name → CPU % of one core since the previous sample, RSS MB. */
  procs: Record<string, { cpu: number; rssMb: number }>;
}

export interface RunReport {
  scenario: string;
  sidecars: number;
  ok: boolean;
  steps: StepResult[];
  samples: Sample[];
  wallMs: number;
}

/** Nearest-rank percentile; NaN for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const ms = (x: number) => (Number.isNaN(x) ? '-' : `${Math.round(x)}`);

/** Per step: p50/p99/max; then each component's CPU and RSS (mean, peak) and a coarse timeline. */
export function formatReport(r: RunReport, opts: { timeline?: boolean } = {}): string {
  const out: string[] = [];
  out.push(`scenario ${r.scenario}: ${r.ok ? 'PASSED' : 'FAILED'} — ${r.sidecars} sidecars, ${(r.wallMs / 1000).toFixed(1)} s`);
  out.push('  step                      n      p50     p99     max (ms)  wall   what');
  for (const s of r.steps) {
    const name = `${String(s.index).padStart(2)} ${s.kind}`.padEnd(24);
    const n = String(s.latencies.length).padStart(5);
    const figs = s.figures ? ' ' + Object.entries(s.figures).map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(2)}`).join(' ') : '';
    out.push(
      `  ${s.ok ? ' ' : '✗'}${name} ${n} ${ms(percentile(s.latencies, 50)).padStart(7)} ${ms(percentile(s.latencies, 99)).padStart(7)} ${ms(s.latencies.length ? Math.max(...s.latencies) : NaN).padStart(7)}  ${ms(s.wallMs).padStart(7)}  ${s.summary}${figs}`,
    );
    if (s.error) out.push(`      ${s.error.split('\n').join('\n      ')}`);
  }
  const names = [...new Set(r.samples.flatMap((s) => Object.keys(s.procs)))];
  if (names.length) {
    out.push('  control plane (from /proc; CPU % of one core):');
    for (const n of names) {
      const xs = r.samples.map((s) => s.procs[n]).filter((x) => x !== undefined);
      const cpu = xs.map((x) => x.cpu);
      const rss = xs.map((x) => x.rssMb);
      out.push(
        `    ${n.padEnd(12)} CPU mean ${(cpu.reduce((a, b) => a + b, 0) / Math.max(1, cpu.length)).toFixed(0).padStart(3)} %, peak ${Math.max(0, ...cpu).toFixed(0).padStart(3)} %; RSS first ${rss[0]?.toFixed(0) ?? '-'} MB, peak ${Math.max(0, ...rss).toFixed(0)} MB, last ${rss.at(-1)?.toFixed(0) ?? '-'} MB`,
      );
    }
    if (opts.timeline) {
      out.push(`    timeline (t s: ${names.map((n) => `${n} cpu%/MB`).join(', ')}):`);
      const every = Math.max(1, Math.ceil(r.samples.length / 30));
      for (let i = 0; i < r.samples.length; i += every) {
        const s = r.samples[i]!;
        out.push(`    ${(s.t / 1000).toFixed(1).padStart(6)}  ${names.map((n) => (s.procs[n] ? `${s.procs[n].cpu.toFixed(0)}/${s.procs[n].rssMb.toFixed(0)}` : 'down')).join('  ')}`);
      }
    }
  }
  return out.join('\n');
}

/** utime+stime (clock ticks) and RSS (kB) of a pid; undefined when it is gone. */
export function readProc(pid: number): { ticks: number; rssKb: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+)/.exec(status);
    return { ticks, rssKb: rss ? Number(rss[1]) : 0 };
  } catch {
    return undefined;
  }
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Samples the control plane's processes every `intervalMs`. */
export class ProcSampler {
  readonly samples: Sample[] = [];
  private readonly prev = new Map<number, { ticks: number; at: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly t0 = performance.now();

  constructor(
    private readonly components: () => ComponentInfo[],
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): Sample[] {
    clearInterval(this.timer);
    this.sample();
    return this.samples;
  }

  private sample(): void {
    const now = performance.now();
    const procs: Sample['procs'] = {};
    for (const c of this.components()) {
      if (!c.pid) continue;
      const p = readProc(c.pid);
      if (!p) continue;
      const before = this.prev.get(c.pid);
      this.prev.set(c.pid, { ticks: p.ticks, at: now });
      const cpu = before && now > before.at ? (((p.ticks - before.ticks) / TICKS_PER_SECOND) * 1000 * 100) / (now - before.at) : 0;
      procs[c.name] = { cpu, rssMb: p.rssKb / 1024 };
    }
    this.samples.push({ t: now - this.t0, procs });
  }
}
