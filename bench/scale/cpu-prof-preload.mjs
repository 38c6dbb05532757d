// A V8 CPU profile of one window of a process's life, for bench/scale --profile DIR (issue 20).
// Loaded with NODE_OPTIONS=--import (node refuses --cpu-prof there, and --cpu-prof would profile
// the whole run): the first SIGUSR2 starts the profiler, the second writes
// $OCTO_PROF_DIR/<name>-<pid>.cpuprofile (Chrome DevTools, or bench/scale/prof-summary.mjs).
// <name>: the pilot id, else the package of a dist/main.js, else the script's file name.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { basename, dirname, join } from 'node:path';

const dir = process.env.OCTO_PROF_DIR;
if (dir) {
  const argv = process.argv;
  const id = argv.indexOf('--pilot-id');
  const script = argv[1] ?? 'node';
  const name = id > 0 ? argv[id + 1] : basename(script) === 'main.js' ? basename(dirname(dirname(script))) : basename(script).replace(/\.m?js$/, '');
  let session;
  process.on('SIGUSR2', () => {
    if (!session) {
      session = new Session();
      session.connect();
      session.post('Profiler.enable', () => session.post('Profiler.start'));
      return;
    }
    const s = session;
    session = undefined;
    s.post('Profiler.stop', (err, res) => {
      if (err) process.stderr.write(`cpu-prof-preload: ${err.message}\n`);
      else writeFileSync(join(dir, `${name}-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
      s.disconnect();
    });
  });
}
