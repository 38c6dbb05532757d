#!/usr/bin/env node
// Summarises V8 .cpuprofile files (bench/scale --profile): per file, the share of non-idle samples
// by function, self and inclusive (a function counted once per stack), top N of each, and how busy
// the process was (non-idle share of samples) per --bucket ms of the profile.
// Usage: node bench/scale/prof-summary.mjs [--top 25] [--bucket 500] FILE...
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const args = process.argv.slice(2);
const ti = args.indexOf('--top');
const TOP = ti >= 0 ? Number(args.splice(ti, 2)[1]) : 25;
const bi = args.indexOf('--bucket');
const BUCKET_MS = bi >= 0 ? Number(args.splice(bi, 2)[1]) : 500;
for (const file of args) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n) => {
    const f = n.callFrame;
    const where = f.url ? `${basename(f.url)}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'} ${where}`.trim();
  };
  const hits = new Map();
  for (const s of p.samples) hits.set(s, (hits.get(s) ?? 0) + 1);
  const self = new Map();
  const incl = new Map();
  let total = 0;
  let idle = 0;
  for (const [id, h] of hits) {
    const n = byId.get(id);
    if (n.callFrame.functionName === '(idle)') {
      idle += h;
      continue;
    }
    total += h;
    self.set(label(n), (self.get(label(n)) ?? 0) + h);
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const l = label(byId.get(x));
      if (seen.has(l)) continue;
      seen.add(l);
      incl.set(l, (incl.get(l) ?? 0) + h);
    }
  }
  const ms = (p.endTime - p.startTime) / 1000;
  // Busy share per bucket of wall time (sample times from timeDeltas, µs).
  const buckets = [];
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    const b = Math.floor((t - p.startTime) / 1000 / BUCKET_MS);
    buckets[b] ??= [0, 0];
    buckets[b][1]++;
    if (byId.get(id).callFrame.functionName !== '(idle)') buckets[b][0]++;
  });
  const busy = buckets.map((x) => (x ? `${Math.round((100 * x[0]) / x[1])}` : '-')).join(' ');
  console.log(`\n== ${basename(file)}: ${(ms / 1000).toFixed(1)} s, ${total + idle} samples, non-idle ${((100 * total) / (total + idle)).toFixed(0)} %`);
  const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([l, h]) => `  ${((100 * h) / total).toFixed(1).padStart(5)} %  ${l}`).join('\n');
  console.log(` busy % per ${BUCKET_MS} ms: ${busy}`);
  console.log(` self:\n${top(self)}\n inclusive:\n${top(incl)}`);
}
