#!/usr/bin/env node
// Fails when checked-in generated files differ from what their generators produce now:
// - packages/proto/src/gen   (npm run gen:proto)
// - crds/                    (npm run gen:crds; needs packages/api built)
// Regenerates into a temporary folder and compares file by file; the working tree is untouched.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(import.meta.url), '../..');
const node = process.execPath;

function files(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? files(join(dir, n)) : [join(dir, n)]));
}

/** Lists files that differ between two trees, as paths relative to them. */
function diffTrees(want, have) {
  const a = new Set(files(want).map((f) => relative(want, f)));
  const b = new Set(files(have).map((f) => relative(have, f)));
  const out = [];
  for (const f of a) if (!b.has(f)) out.push(`missing: ${f}`);
  for (const f of b) if (!a.has(f)) out.push(`not generated: ${f}`);
  for (const f of a) if (b.has(f) && !readFileSync(join(want, f)).equals(readFileSync(join(have, f)))) out.push(`differs: ${f}`);
  return out;
}

const tmp = mkdtempSync(join(tmpdir(), 'octo-check-'));
let stale = 0;
try {
  const checks = [
    { name: 'packages/proto/src/gen', cmd: [join(root, 'packages/proto/scripts/gen-proto.mjs'), '--out', join(tmp, 'proto')], out: join(tmp, 'proto') },
    { name: 'crds', cmd: [join(root, 'packages/api/dist/cli/gen-crds.js'), join(tmp, 'crds')], out: join(tmp, 'crds') },
  ];
  for (const c of checks) {
    execFileSync(node, c.cmd, { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
    const diffs = diffTrees(c.out, join(root, c.name));
    if (diffs.length) {
      stale++;
      console.error(`${c.name} is stale (${diffs.length} file(s)); regenerate with npm run gen:\n  ${diffs.slice(0, 20).join('\n  ')}`);
    } else console.log(`${c.name}: up to date`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(stale ? 1 : 0);
