// bench/lego/swap.mjs's traffic, each part in a worker thread of its own (an isolate, a heap and a
// GC of its own): `upstreams` (the HTTP/1.1 and h2c servers the proxy forwards to) and `load`
// (the load generator). The benchmark's driver — status polls, metrics, /proc reads — runs on the
// main thread, so its garbage no longer pauses the requests it times.
import { parentPort, workerData } from 'node:worker_threads';
import { upstreams } from '../../packages/lego-agent/dist/test-support/harness.js';
import { LoadGenerator } from '../../packages/lego-agent/dist/test-support/load.js';

// This thread's own GC pauses over 5 ms, on the wall clock: [start, ms].
const gc = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.duration > 5) gc.push([performance.timeOrigin + e.startTime, e.duration]);
}).observe({ entryTypes: ['gc'] });

if (workerData.role === 'upstreams') {
  const up = await upstreams();
  parentPort.postMessage({ h1Port: up.h1Port, h2Port: up.h2Port });
  parentPort.on('message', async (m) => {
    if (m === 'gc') parentPort.postMessage({ gc });
    if (m === 'close') {
      await up.close();
      parentPort.postMessage('closed');
      parentPort.close();
    }
  });
} else {
  const load = new LoadGenerator(workerData.opts);
  load.start();
  // The generator's 0 on the wall clock (performance.timeOrigin + now is comparable across threads).
  parentPort.postMessage({ t0Wall: performance.timeOrigin + performance.now() - load.now() });
  parentPort.on('message', async (m) => {
    if (m !== 'stop') return;
    const s = await load.stop();
    parentPort.postMessage({ stats: { sent: s.sent, ok: s.ok, failed: s.failed, errors: s.errors, retriedRefused: s.retriedRefused, failedAt: s.failedAt, samples: s.samples }, gc });
    parentPort.close();
  });
}
