// Fixed-rate HTTP/1.1 load generator (Debian has no wrk2): sends RATE requests per second on
// keep-alive connections for DURATION seconds and reports latency percentiles measured from each
// request's *scheduled* send time, so a stall is not hidden (no coordinated omission).
//
// The first WARMUP seconds (default 1) run at the same rate and are not recorded: they open the
// connections and warm the JIT of this client and of the target, which otherwise put the first
// requests' connection setup and interpreter time into the tail percentiles.
// Usage: node fixed-rate.mjs <port> <rate> <seconds> [host-header] [connections]
import http from 'node:http';

const [port, rate, seconds, host = 'bench', conns = '32'] = process.argv.slice(2);
const warmup = Number(process.env.WARMUP ?? 1);
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(conns) });
const skip = Math.round(Number(rate) * warmup);
const total = skip + Number(rate) * Number(seconds);
const interval = 1e9 / Number(rate);
const lat = [];
let errors = 0;
const start = process.hrtime.bigint() + 200_000_000n; // 200 ms before the schedule starts
let sent = 0;
await new Promise((done) => {
  let finished = 0;
  const fire = (scheduled, recorded) => {
    const req = http.request({ host: '127.0.0.1', port: Number(port), path: '/', headers: { host }, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        if (res.statusCode !== 200) errors++;
        else if (recorded) lat.push(Number(process.hrtime.bigint() - scheduled) / 1000);
        if (++finished === total) done();
      });
    });
    req.on('error', () => {
      errors++;
      if (++finished === total) done();
    });
    req.end();
  };
  const tick = () => {
    const now = process.hrtime.bigint();
    while (sent < total && start + BigInt(Math.round(sent * interval)) <= now) {
      fire(start + BigInt(Math.round(sent * interval)), sent >= skip);
      sent++;
    }
    if (sent < total) setImmediate(tick);
  };
  tick();
});
lat.sort((a, b) => a - b);
const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
process.stdout.write(JSON.stringify({ requests: total - skip, errors, p50_us: Math.round(q(0.5)), p99_us: Math.round(q(0.99)), max_us: Math.round(lat[lat.length - 1] ?? NaN) }) + '\n');
agent.destroy();
