// What bench/footprint reads of a process (/proc) and of its admin port, shared by footprint.mjs
// and snapshot.mjs.
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** VmRSS and RssAnon of a process, in bytes. */
export function rssOf(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), hwm: kb('VmHWM') };
}

/**
 * What the process costs beside others (/proc/<pid>/smaps_rollup): Pss (each page divided by the
 * processes mapping it), Uss (Private_Clean + Private_Dirty: pages only it maps) and Shared
 * (RSS − Uss: mostly the node binary's file pages, shared with every Node process on the machine,
 * so Pss here depends on what else runs; in a pod, with the agent).
 */
export function smapsOf(pid) {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
  const rss = kb('Rss');
  const uss = kb('Private_Clean') + kb('Private_Dirty');
  return { pss: kb('Pss'), uss, shared: rss - uss };
}

/** CPU time (user + system, all threads) a process has used so far, in ms: a start's cost that a
 * busy machine does not inflate the way it inflates wall time. */
export function cpuMsOf(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

export async function freePort() {
  const s = net.createServer().listen(0, '127.0.0.1');
  await new Promise((r) => s.once('listening', r));
  const p = s.address().port;
  await new Promise((r) => s.close(r));
  return p;
}

export async function get(port, path) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, text: await res.text() };
}
