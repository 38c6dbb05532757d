// jest loads globalSetup outside its ESM test runtime (no moduleNameMapper): build this package
// (incremental tsc -b) and run the compiled setup of the single-node cluster.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
execFileSync(join(here, '../../node_modules/.bin/tsc'), ['-b', here], { stdio: 'inherit' });
const { default: setup } = await import('./dist/node-global-setup.js');
export default setup;
