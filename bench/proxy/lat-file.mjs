// Reads the latency file fixed-rate.mjs writes (LAT_FILE; format in its header comment), for
// percentiles.mjs, stalls.mjs and hops.mjs.
import { readFileSync } from 'node:fs';

/**
 * @returns {{ startUs: number | undefined, wallUs: number | undefined, rows: { at: number, us: number, seq: number | undefined }[] }}
 *   the schedule's start on the monotonic and the wall clock in µs (undefined when the header lacks
 *   them) and one row per recorded request: scheduled time in ms after the start, latency in µs,
 *   sequence number (TAG=1 only).
 */
export function readLatFile(path) {
  const lines = readFileSync(path, 'utf8').split('\n');
  const header = /^# start (\d+)(?: wall (\d+))?/.exec(lines[0] ?? '');
  const rows = [];
  for (const l of lines) {
    if (!l || l.startsWith('#')) continue;
    const [at, us, seq] = l.split(' ').map(Number);
    rows.push({ at, us, seq });
  }
  const us = (ns) => (ns === undefined ? undefined : Number(BigInt(ns) / 1000n));
  return { startUs: us(header?.[1]), wallUs: us(header?.[2]), rows };
}

/** The p-quantile (0..1) of numbers sorted ascending. */
export const quantile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
