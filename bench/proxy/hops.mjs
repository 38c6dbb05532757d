// Splits each request's latency into hops, from a packet capture on lo (see stalls.sh, HOPS=1).
// Usage: node hops.mjs <tcpdump -A text> <fixed-rate LAT_FILE, TAG=1> <proxy port> <upstream port> <slow µs>
//
// Packets are stamped when their sender writes them, so for request n (header `x-seq: n`):
//   send      scheduled send time → the generator's request on the wire (A)
//   proxy in  A → the proxy's request to the upstream (B): wake-up, parse, route, write
//   upstream  B → the upstream's response (C)
//   proxy out C → the proxy's response to the generator (D)
//   receive   D → the generator records the response
// A response is matched to the request outstanding on its connection (one at a time on each).
import { readFileSync } from 'node:fs';
import { quantile, readLatFile } from './lat-file.mjs';

const [capFile, latFile, portArg, upArg, slowArg] = process.argv.slice(2);
const PORT = Number(portArg);
const UP = Number(upArg);
const SLOW = Number(slowArg ?? 500);

const A = new Map();
const B = new Map();
const C = new Map();
const D = new Map();
const outstanding = new Map(); // "port>port" of the request's direction → its seq
let packet; // { t, from, to, text } of the packet being read

function take() {
  if (!packet) return;
  const { t, from, to, text } = packet;
  packet = undefined;
  const seq = /x-seq: (\d+)/i.exec(text)?.[1];
  if (seq !== undefined && (to === PORT || to === UP)) {
    (to === PORT ? A : B).set(Number(seq), t);
    outstanding.set(`${from}>${to}`, Number(seq));
  } else if (from === UP || from === PORT) {
    const n = outstanding.get(`${to}>${from}`);
    const m = from === UP ? C : D;
    if (n !== undefined && !m.has(n)) m.set(n, t);
  }
}

// `tcpdump -nn -tt --time-stamp-precision=nano -A`: a header line per packet, then its bytes as text.
for (const line of readFileSync(capFile, 'latin1').split('\n')) {
  const h = /^(\d+)\.(\d+) IP [\d.]+\.(\d+) > [\d.]+\.(\d+): .* length (\d+)/.exec(line);
  if (h) {
    take();
    if (Number(h[5]) > 0) packet = { t: Number(h[1]) * 1e6 + Number(h[2]) / 1e3, from: Number(h[3]), to: Number(h[4]), text: '' };
  } else if (packet) packet.text += `${line}\n`;
}
take();

const lat = readLatFile(latFile);
if (lat.wallUs === undefined) throw new Error(`${latFile}: no "# start … wall …" line (run fixed-rate.mjs with LAT_FILE)`);
const wall0 = lat.wallUs;
const HOPS = ['send', 'proxy in', 'upstream', 'proxy out', 'receive'];
const all = HOPS.map(() => []);
const largest = {};
let unmatched = 0;
let slow = 0;
for (const { at, us, seq } of lat.rows) {
  if (seq === undefined || Number.isNaN(seq)) throw new Error(`${latFile}: no sequence numbers (run fixed-rate.mjs with TAG=1)`);
  const s = wall0 + at * 1000;
  const t = [A, B, C, D].map((m) => m.get(seq));
  if (t.some((x) => x === undefined)) {
    unmatched++;
    continue;
  }
  const hops = [t[0] - s, t[1] - t[0], t[2] - t[1], t[3] - t[2], s + us - t[3]];
  hops.forEach((h, i) => all[i].push(h));
  if (us > SLOW) {
    slow++;
    const i = hops.indexOf(Math.max(...hops));
    largest[HOPS[i]] = (largest[HOPS[i]] ?? 0) + 1;
  }
}
const pct = (a, p) => Math.round(quantile(Float64Array.from(a).sort(), p) ?? NaN);
console.log(`hops p50/p99 µs: ${HOPS.map((h, i) => `${h} ${pct(all[i], 0.5)}/${pct(all[i], 0.99)}`).join(', ')} (${unmatched} requests unmatched)`);
const by = Object.entries(largest).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
console.log(`largest hop of the ${slow} requests over ${SLOW} µs: ${by || 'none'}`);
