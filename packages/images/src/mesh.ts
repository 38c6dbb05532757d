/**
 * The mesh's two images, built from the workspace without a daemon: each deployable bundled by
 * esbuild into one ESM file under /app (no node_modules in the image), on the runtime layer.
 *
 * - control plane: /app/{dispatcher,meta-server,pilot,operator,injector,ca}.mjs — the chart picks
 *   one per Deployment by its command (`node /app/pilot.mjs …`); the package repository is
 *   operator.mjs with `--repository-only` (no app of its own);
 * - sidecar: /app/lego-agent.mjs, which starts /app/proxy.mjs (the bootstrap proxy version), and
 *   /app/compile-cache: both bundles' V8 code cache, built here with the image's Node for the
 *   image's user, so a new pod's agent and first proxy start without compiling them
 *   (docs/footprint.md, round 7);
 *
 * Both share the runtime layer (same digest, stored once by containerd).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { asciiOnly, LEFT_OUT } from '@octo-mesh/proxy-package/build.js';
import { buildCompileCache, COMPILE_CACHE_DIR } from '@octo-mesh/proxy-package/compile-cache.js';
import { buildImage, prepareLayer, type BuiltImage, type PreparedLayer } from './oci.js';
import { NONROOT, runtimeLayer, runtimeNode } from './runtime-layer.js';

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
    // The bootstrap proxy leaves out what a proxy package's bundle leaves out (grpc-js's lazy
    // require of @grpc/proto-loader, with protobufjs and long: code the proxy never runs, which
    // every proxy would parse and hold; `bundleProxy`, docs/footprint.md rounds 4 and 7).
    external: app === 'proxy' ? [...LEFT_OUT] : [],
  });
  // ASCII only, or V8 holds the whole source as a two-byte string (see asciiOnly).
  return Buffer.from(asciiOnly(r.outputFiles[0]!.text), 'latin1');
}

async function appImage(
  o: MeshImageOptions,
  image: string,
  apps: readonly string[],
  runtime: { layer: PreparedLayer; nodeVersion: string },
  compileCache = false,
): Promise<BuiltImage & { apps: string[] }> {
  const present = apps.filter((a) => existsSync(join(o.repoRoot, 'packages', a, 'src/main.ts')));
  // The bootstrap proxy reports its package's semver (rollouts compare versions), not the tag.
  const proxyVersion = (JSON.parse(readFileSync(join(o.repoRoot, 'packages/proxy/package.json'), 'utf8')) as { version: string }).version;
  const bundles = await Promise.all(present.map(async (a) => ({ path: `${a}.mjs`, data: await bundleApp(o.repoRoot, a, proxyVersion) })));
  // Compiled by the image's own Node binary, named for the image's user (Node keys its cache
  // directory by uid); read-only in the pod, so a pod run as another user or on a CPU with other
  // features than the build machine's finds no entry and starts as without it.
  const cache = compileCache ? await buildCompileCache({ files: bundles, modules: bundles.map((b) => b.path), node: runtimeNode(o.repoRoot), uid: NONROOT }) : [];
  const built = buildImage({
    name: `${o.repository}/${image}:${o.tag}`,
    layers: [runtime.layer, [...bundles, ...cache].map((f) => ({ path: `app/${f.path}`, data: f.data, mode: 0o644 }))],
    config: {
      user: `${NONROOT}:${NONROOT}`,
      entrypoint: ['/usr/local/bin/node'],
      workingDir: '/app',
      // The agent's own cache (it sets its proxy children's itself).
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/nonroot', 'NODE_ENV=production', ...(compileCache ? [`NODE_COMPILE_CACHE=/app/${COMPILE_CACHE_DIR}`, 'NODE_COMPILE_CACHE_PORTABLE=1'] : [])],
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
  const sidecar = await appImage(o, 'sidecar', SIDECAR_APPS, runtime, true);
  return { controlPlane, sidecar };
}
