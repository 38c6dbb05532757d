// Child of check-rate.mjs: what one sidecar would run if it actively checked every endpoint it
// may call — the checker's own probes (HTTP: packages/health probe(), a GET on a new connection
// with the timeout; gRPC: its GrpcHealthChannels, one channel per endpoint) of every given port
// once per interval, each endpoint on its own timer started at a random phase (as per-host
// checkers jitter), so the load is even over the interval. No informer, thresholds or
// publishing: the bare probing cost. Sends {checks, ok} over IPC when asked; exits when the
// parent disconnects.
import { GrpcHealthChannels } from '../../packages/health/dist/grpc-probe.js';
import { probe } from '../../packages/health/dist/probe.js';

const { ports, intervalMs, timeoutMs, protocol } = JSON.parse(process.argv[2]);
const channels = new GrpcHealthChannels(intervalMs);
let checks = 0;
let ok = 0;
/** Failure reasons seen, with counts (reported, so a broken run is not mistaken for a fast one). */
const reasons = new Map();

const check = async (port) => {
  const started = Date.now();
  const r =
    protocol === 'grpc'
      ? await channels.check({ address: '127.0.0.1', port, timeoutMs, service: '', authority: 'bench.default.svc' })
      : await probe({ address: '127.0.0.1', port, timeoutMs, http: { path: '/health', host: 'bench.default.svc' } });
  checks++;
  if (r.ok) ok++;
  else {
    const why = (r.reason ?? 'unknown').slice(0, 80);
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  }
  setTimeout(() => void check(port), Math.max(0, intervalMs - (Date.now() - started)));
};
for (const port of ports) setTimeout(() => void check(port), Math.random() * intervalMs);

process.on('message', (m) => {
  if (m === 'count') process.send({ checks, ok, reasons: Object.fromEntries(reasons) });
});
process.on('disconnect', () => process.exit(0));
