#!/usr/bin/env node
// Writes the proxy's golden files (packages/proxy/testdata/NN.golden.yaml) from their inputs;
// the test (src/translate/golden.test.ts) never writes. Run through `npm run golden:proxy`, which
// builds packages/proxy first, then review the diff.
// Usage: update-golden.mjs [NAME...]   (default: every case)
import { writeFileSync, existsSync, readFileSync } from 'node:fs';
import { goldenCases, goldenPath, renderGolden } from '../dist/test-support/golden.js';

const wanted = process.argv.slice(2);
let written = 0;
for (const name of goldenCases().filter((n) => wanted.length === 0 || wanted.includes(n))) {
  const { text, error, expectError } = renderGolden(name);
  if (expectError && !(error ?? '').includes(expectError)) console.error(`${name}: expected an error containing ${JSON.stringify(expectError)}, got ${error ?? 'none'}`);
  if (!expectError && error) console.error(`${name}: unexpected error: ${error}`);
  const path = goldenPath(name);
  if (existsSync(path) && readFileSync(path, 'utf8') === text) continue;
  writeFileSync(path, text);
  written++;
  console.log(`wrote ${path}`);
}
console.log(`golden:proxy: ${written} file(s) written`);
