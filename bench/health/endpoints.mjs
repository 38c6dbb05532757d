// Child of check-rate.mjs: N cheap endpoints in one process (one listener each on 127.0.0.1):
// HTTP answering every request 200 "ok", or (argv[3] = grpc) grpc-js servers whose
// grpc.health.v1.Health answers SERVING. Sends {ports} over IPC when listening, and {requests}
// when asked; exits when the parent disconnects.
import { createServer } from 'node:http';
import { HealthServer } from '../../packages/health/dist/test-support/grpc-health.js';

const n = Number(process.argv[2] ?? 1000);
const protocol = process.argv[3] ?? 'http';
let requests = 0;
const servers = [];
const grpcServers = [];
for (let i = 0; protocol === 'grpc' && i < n; i++) {
  const s = new HealthServer(true);
  s.statuses.set('', 1);
  await s.listen();
  grpcServers.push(s);
}
for (let i = 0; protocol === 'http' && i < n; i++) {
  const s = createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'content-length': 2 });
    res.end('ok');
  });
  s.keepAliveTimeout = 1000;
  await new Promise((r) => s.listen(0, '127.0.0.1', 511, r));
  servers.push(s);
}
process.send({ ports: protocol === 'grpc' ? grpcServers.map((s) => s.port) : servers.map((s) => s.address().port) });
process.on('message', (m) => {
  if (m === 'count') process.send({ requests: requests + grpcServers.reduce((a, s) => a + s.checks, 0) });
});
process.on('disconnect', () => process.exit(0));
