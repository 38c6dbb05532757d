/**
 * The mesh's two images, built from the workspace without a daemon: each deployable bundled by
 * esbuild into one ESM file under /app (no node_modules in the image), on the runtime layer.
 *
 * - control plane: /app/{dispatcher,meta-server,pilot,operator,injector,ca}.mjs — the chart picks
 *   one per Deployment by its command (`node /app/pilot.mjs …`); the package repository is
 *   operator.mjs with `--repository-only` (no app of its own);
 * - sidecar: /app/lego-agent.mjs, which starts /app/proxy.mjs (the bootstrap proxy version).
 *
 * Both share the runtime layer (same digest, stored once by containerd).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { asciiOnly } from '@octo-mesh/proxy-package/build.js';
import { buildImage, prepareLayer, type BuiltImage, type PreparedLayer } from './oci.js';
import { NONROOT, runtimeLayer } from './runtime-layer.js';

export interface MeshImageOptions {
  repoRoot: string;
  /** Image tag; default the root package.json version. */
  tag: string;
  /** Registry/repository prefix, e.g. `octo.local/octo-mesh`. */
  repository: string;
}

export const CONTROL_PLANE_APPS = ['dispatcher', 'meta-server', 'pilot', 'operator', 'injector', 'ca', 'health'] as const;
export const SIDECAR_APPS = ['lego-agent', 'proxy'] as const;

/** Workspace imports resolve to TypeScript sources, as under jest: no prior `tsc` needed. */
const workspaceSources = (root: string): Plugin => ({
  name: 'octo-workspace-sources',
  setup(b) {
    b.onResolve({ filter: /^@octo-mesh\// }, (a) => {
      const m = /^@octo-mesh\/([a-z-]+)(?:\/(.+)\.js)?$/.exec(a.path);
      if (!m) return undefined;
      return { path: join(root, 'packages', m[1]!, 'src', `${m[2] ?? 'index'}.ts`) };
    });
  },
});

/** One deployable's `src/main.ts` and all it imports as one ESM file for Node 24. */
export async function bundleApp(root: string, app: string, version: string): Promise<Buffer> {
  const r = await build({
    entryPoints: [join(root, 'packages', app, 'src/main.ts')],
    absWorkingDir: root,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    write: false,
    define: { __OCTO_PROXY_VERSION__: JSON.stringify(version) },
    // CommonJS dependencies (grpc-js, winston, …) require() Node built-ins.
    banner: { js: "import { createRequire as __octoCreateRequire } from 'node:module';\nconst require = __octoCreateRequire(import.meta.url);" },
    legalComments: 'none',
    logLevel: 'error',
    plugins: [workspaceSources(root)],
  });
  // ASCII only, or V8 holds the whole source as a two-byte string (see asciiOnly).
  return Buffer.from(asciiOnly(r.outputFiles[0]!.text), 'latin1');
}

async function appImage(o: MeshImageOptions, image: string, apps: readonly string[], runtime: { layer: PreparedLayer; nodeVersion: string }): Promise<BuiltImage & { apps: string[] }> {
  const present = apps.filter((a) => existsSync(join(o.repoRoot, 'packages', a, 'src/main.ts')));
  // The bootstrap proxy reports its package's semver (rollouts compare versions), not the tag.
  const proxyVersion = (JSON.parse(readFileSync(join(o.repoRoot, 'packages/proxy/package.json'), 'utf8')) as { version: string }).version;
  const bundles = await Promise.all(present.map(async (a) => ({ path: `app/${a}.mjs`, data: await bundleApp(o.repoRoot, a, proxyVersion), mode: 0o644 })));
  const built = buildImage({
    name: `${o.repository}/${image}:${o.tag}`,
    layers: [runtime.layer, bundles],
    config: {
      user: `${NONROOT}:${NONROOT}`,
      entrypoint: ['/usr/local/bin/node'],
      workingDir: '/app',
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/nonroot', 'NODE_ENV=production'],
      labels: {
        'org.opencontainers.image.title': `octo-mesh ${image}`,
        'org.opencontainers.image.version': o.tag,
        'io.octo-mesh.node-version': runtime.nodeVersion,
        'io.octo-mesh.apps': present.join(','),
      },
    },
  });
  return { ...built, apps: present };
}

export async function buildMeshImages(o: MeshImageOptions): Promise<{ controlPlane: BuiltImage & { apps: string[] }; sidecar: BuiltImage & { apps: string[] } }> {
  const { entries, nodeVersion } = runtimeLayer(o.repoRoot);
  const runtime = { layer: prepareLayer(entries), nodeVersion };
  const controlPlane = await appImage(o, 'control-plane', CONTROL_PLANE_APPS, runtime);
  const sidecar = await appImage(o, 'sidecar', SIDECAR_APPS, runtime);
  return { controlPlane, sidecar };
}
