// jest loads globalSetup outside its ESM test runtime (no moduleNameMapper), so this plain ESM
// entry builds packages/testing (incremental tsc -b, quick when nothing changed) and runs the
// compiled setup from dist.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
execFileSync(join(here, '../../node_modules/.bin/tsc'), ['-b', here], { stdio: 'inherit' });
const { default: setup } = await import('./dist/global-setup.js');
export default setup;
