#!/usr/bin/env node
// Rewrites the generated section of packages/proxy/README.md (the xDS fields the proxy accepts)
// from the allow-list in src/translate/allow-list.ts. Run through `npm run gen:proxy-readme`, which
// builds packages/proxy first; src/translate/allow-list.test.ts fails while the README is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { withAllowList } from '../dist/translate/allow-list-doc.js';

const path = fileURLToPath(new URL('../README.md', import.meta.url));
const before = readFileSync(path, 'utf8');
const after = withAllowList(before);
if (after !== before) writeFileSync(path, after);
console.log(`gen:proxy-readme: ${after === before ? 'up to date' : 'rewrote'} ${path}`);
