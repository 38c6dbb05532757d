#!/usr/bin/env node
import { resolve } from 'node:path';
import { parseFlags } from '@octo-mesh/runtime';
import { writePackage } from './build.js';

// `npm run package:proxy -- --version 1.2.3 --out DIR`: builds a proxy package and prints its
// path and sha256 (one line each, `path <p>` / `sha256 <hex>`).
const flags = parseFlags(process.argv.slice(2));
const version = flags['version'];
if (!version || !/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(version)) {
  process.stderr.write('package:proxy: --version must be a semantic version, e.g. --version 1.2.3\n');
  process.exit(2);
}
const out = resolve(flags['out'] ?? 'dist/packages');
const r = await writePackage({ version }, out);
process.stdout.write(`path ${r.path}\nsha256 ${r.sha256}\nsize ${r.size}\n`);
