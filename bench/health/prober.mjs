// Child of check-rate.mjs: what one sidecar would run if it actively checked every endpoint it
// may call — the checker's own probe (packages/health probe(): HTTP GET, Connection: close, the
// timeout) of every given port once per interval, each endpoint on its own timer started at a
// random phase (as per-host checkers jitter), so the load is even over the interval. No informer,
// thresholds or publishing: the bare probing cost. Sends {checks, ok} over IPC when asked; exits
// when the parent disconnects.
import { probe } from '../../packages/health/dist/probe.js';

const { ports, intervalMs, timeoutMs } = JSON.parse(process.argv[2]);
let checks = 0;
let ok = 0;

const check = async (port) => {
  const started = Date.now();
  const r = await probe({ address: '127.0.0.1', port, timeoutMs, http: { path: '/health', host: 'bench.default.svc' } });
  checks++;
  if (r.ok) ok++;
  setTimeout(() => void check(port), Math.max(0, intervalMs - (Date.now() - started)));
};
for (const port of ports) setTimeout(() => void check(port), Math.random() * intervalMs);

process.on('message', (m) => {
  if (m === 'count') process.send({ checks, ok });
});
process.on('disconnect', () => process.exit(0));
