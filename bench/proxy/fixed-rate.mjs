// Fixed-rate HTTP/1.1 load generator (Debian has no wrk2): sends RATE requests per second on
// keep-alive connections for DURATION seconds and reports latency percentiles measured from each
// request's *scheduled* send time, so a stall is not hidden (no coordinated omission).
//
// It speaks HTTP/1.1 over plain sockets (one pre-encoded request, responses framed by their
// content-length) rather than through node:http: the client's own allocations and garbage
// collection pauses would otherwise show up in every target's tail. The first WARMUP seconds
// (default 1) run at the same rate and are not recorded: they open the connections and warm the
// JIT of this client and of the target. With LAT_FILE set, the recorded requests are also
// written there, one per line in the order they completed: scheduled send time in ms after the
// schedule's start, latency in µs; a first line `# start <ns> wall <ns>` gives the start on the
// monotonic clock (CLOCK_MONOTONIC, as `perf -k mono` uses) and on the wall clock (as packet
// captures are stamped), so callers can pool runs or line them up with a trace. With TAG=1 every
// request carries a header `x-seq: <n>` and each line a third column n, so that a packet capture
// can follow the request through a proxy (hops.mjs).
// Usage: node fixed-rate.mjs <port> <rate> <seconds> [host-header] [connections]
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { quantile } from './lat-file.mjs';

const [port, rate, seconds, host = 'bench', conns = '32'] = process.argv.slice(2);
const warmup = Number(process.env.WARMUP ?? 1);
const skip = Math.round(Number(rate) * warmup);
const total = skip + Number(rate) * Number(seconds);
const interval = 1e9 / Number(rate);
const request = Buffer.from(`GET / HTTP/1.1\r\nhost: ${host}\r\n\r\n`, 'latin1');
const tag = process.env.TAG === '1'; // each request carries `x-seq: <n>`, and LAT_FILE a third column n
const tagged = (n) => Buffer.from(`GET / HTTP/1.1\r\nhost: ${host}\r\nx-seq: ${n}\r\n\r\n`, 'latin1');
const CRLF2 = Buffer.from('\r\n\r\n', 'latin1');
const lat = new Float64Array(total);
const at = new Float64Array(total);
const seqs = new Float64Array(total);
let recorded = 0;
let errors = 0;
let finished = 0;
let sent = 0;

/** One keep-alive connection: at most one request in flight, in the order sent. */
class Conn {
  constructor() {
    this.busy = false;
    this.scheduled = 0n;
    this.record = false;
    this.buf = Buffer.alloc(0);
    this.need = -1; // bytes still expected of the current response's body; -1 while in the head
    this.ok = false;
    this.socket = net.connect({ host: '127.0.0.1', port: Number(port), noDelay: true });
    this.socket.on('data', (d) => this.onData(d));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      if (this.busy) this.done(false);
      conns_.splice(conns_.indexOf(this), 1);
    });
  }
  send(scheduled, record, n) {
    this.busy = true;
    this.scheduled = scheduled;
    this.record = record;
    this.seq = n;
    this.socket.write(tag ? tagged(n) : request);
  }
  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.need < 0) {
        const end = this.buf.indexOf(CRLF2);
        if (end < 0) return;
        const head = this.buf.toString('latin1', 0, end);
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        this.ok = head.startsWith('HTTP/1.1 200');
        this.need = m ? Number(m[1]) : 0;
        this.buf = this.buf.subarray(end + 4);
      }
      if (this.buf.length < this.need) return;
      this.buf = this.buf.subarray(this.need);
      this.need = -1;
      this.done(this.ok);
      if (!this.buf.length) return;
    }
  }
  done(ok) {
    this.busy = false;
    if (!ok) errors++;
    else if (this.record) {
      lat[recorded] = Number(process.hrtime.bigint() - this.scheduled) / 1000;
      seqs[recorded] = this.seq;
      at[recorded++] = Number(this.scheduled - start) / 1e6;
    }
    if (++finished === total) finish();
  }
}

const conns_ = Array.from({ length: Number(conns) }, () => new Conn());
await Promise.all(conns_.map((c) => new Promise((r) => c.socket.once('connect', r))));
let finish;
const start = process.hrtime.bigint() + 200_000_000n; // 200 ms before the schedule starts
// the wall clock at `start` (packet captures are stamped with it), to within a few µs
const wall = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e3)) * 1000n - process.hrtime.bigint();
await new Promise((done) => {
  finish = done;
  const tick = () => {
    const now = process.hrtime.bigint();
    while (sent < total && start + BigInt(Math.round(sent * interval)) <= now) {
      const c = conns_.find((x) => !x.busy);
      if (!c) break; // every connection busy: the request waits, its latency counts from its schedule
      c.send(start + BigInt(Math.round(sent * interval)), sent >= skip, sent);
      sent++;
    }
    if (sent < total) setImmediate(tick);
  };
  tick();
});
if (process.env.LAT_FILE) {
  const rows = Array.from(lat.subarray(0, recorded), (l, i) => `${at[i].toFixed(3)} ${l.toFixed(1)}${tag ? ` ${seqs[i]}` : ''}`);
  writeFileSync(process.env.LAT_FILE, `# start ${start} wall ${start + wall}\n${rows.join('\n')}\n`);
}
const sorted = lat.subarray(0, recorded).sort();
const q = (p) => quantile(sorted, p) ?? NaN;
process.stdout.write(JSON.stringify({ requests: total - skip, errors, p50_us: Math.round(q(0.5)), p99_us: Math.round(q(0.99)), max_us: Math.round(sorted[sorted.length - 1] ?? NaN) }) + '\n');
for (const c of conns_) c.socket.destroy();
