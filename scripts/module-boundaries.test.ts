// The package-boundary rule is real: a deployable that imports another deployable, or a client
// library that imports the Kubernetes client, fails lint. Each case lints a snippet as if it were
// a file of that package, with the repository's own ESLint config and Nx project graph.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';
import { ESLint } from 'eslint';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RULE = '@nx/enforce-module-boundaries';

async function boundaryErrors(file: string, code: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: ROOT });
  const [result] = await eslint.lintText(code, { filePath: join(ROOT, file) });
  return result!.messages.filter((m) => m.ruleId === RULE).map((m) => m.message);
}

describe('Nx module boundaries', () => {
  // columns: file the snippet pretends to be, the snippet, whether the rule must fire
  it.each([
    ['packages/octoctl/src/x.ts', "import { MemoryStore } from '@octo-mesh/dispatcher';\nexport const s = MemoryStore;\n", true],
    ['packages/pilot/src/x.ts', "import { MetaServer } from '@octo-mesh/meta-server';\nexport const s = MetaServer;\n", true],
    ['packages/clients/src/x.ts', "import { KubeConfig } from '@kubernetes/client-node';\nexport const k = KubeConfig;\n", true],
    ['packages/contracts/src/x.ts', "import { credentials } from '@grpc/grpc-js';\nexport const c = credentials;\n", true],
    ['packages/octoctl/src/x.ts', "import { DispatcherConnection } from '@octo-mesh/clients';\nexport const c = DispatcherConnection;\n", false],
    ['packages/pilot/src/x.ts', "import { compareVersions } from '@octo-mesh/contracts';\nexport const c = compareVersions;\n", false],
  ])('%s: %j fails lint: %s', async (file, code, fails) => {
    const errors = await boundaryErrors(file, code);
    if (fails) expect(errors.join('\n')).toMatch(/can only depend on libs tagged|is not allowed to import/i);
    else expect(errors).toEqual([]);
  }, 120_000);
});
