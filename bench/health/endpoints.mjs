// Child of check-rate.mjs: N cheap HTTP endpoints in one process (one listener each on
// 127.0.0.1), answering every request 200 "ok". Sends {ports} over IPC when listening, and
// {requests} when asked; exits when the parent disconnects.
import { createServer } from 'node:http';

const n = Number(process.argv[2] ?? 1000);
let requests = 0;
const servers = [];
for (let i = 0; i < n; i++) {
  const s = createServer((req, res) => {
    requests++;
    res.writeHead(200, { 'content-length': 2 });
    res.end('ok');
  });
  s.keepAliveTimeout = 1000;
  await new Promise((r) => s.listen(0, '127.0.0.1', 511, r));
  servers.push(s);
}
process.send({ ports: servers.map((s) => s.address().port) });
process.on('message', (m) => {
  if (m === 'count') process.send({ requests });
});
process.on('disconnect', () => process.exit(0));
