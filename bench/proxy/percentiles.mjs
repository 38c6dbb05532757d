// Pools latency files written by fixed-rate.mjs (LAT_FILE) and prints "p50 p99 count" in µs, the
// percentiles taken over every request of every file — one estimate from all rounds, rather than
// a median of per-round p99s, each of which rests on its slowest 1 % (~100 requests).
// Usage: node percentiles.mjs <file>...
import { quantile, readLatFile } from './lat-file.mjs';

const all = process.argv.slice(2).flatMap((f) => readLatFile(f).rows.map((r) => r.us));
if (all.length === 0) {
  console.error('percentiles.mjs: no latencies in', process.argv.slice(2).join(' ') || '(no files)');
  process.exit(1);
}
const sorted = Float64Array.from(all).sort();
const q = (p) => Math.round(quantile(sorted, p));
console.log(q(0.5), q(0.99), sorted.length);
