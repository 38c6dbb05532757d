#!/usr/bin/env node
// `npm run images [-- --out DIR --tag T --repository R]`: builds the control-plane and sidecar
// OCI archives (dist/images by default) and prints one line per image: name, digest, file, size.
// Same sources and Node binary → same digests (check: run it twice).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMeshImages } from './mesh.js';

const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : def;
};
const out = resolve(flag('out', join(REPO_ROOT, 'dist/images')));
const tag = flag('tag', 'dev');
const repository = flag('repository', 'octo.local/octo-mesh');
if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/.test(tag)) {
  process.stderr.write(`images: --tag ${JSON.stringify(tag)} is not a valid image tag\n`);
  process.exit(2);
}
const started = Date.now();
const images = await buildMeshImages({ repoRoot: REPO_ROOT, tag, repository });
mkdirSync(out, { recursive: true });
const summary: Record<string, unknown> = {};
for (const [key, img] of Object.entries(images)) {
  const file = join(out, `${key === 'controlPlane' ? 'control-plane' : 'sidecar'}.tar`);
  writeFileSync(file, img.archive);
  summary[key] = { name: img.name, digest: img.manifestDigest, file, bytes: img.archive.length, apps: img.apps };
  process.stdout.write(`${img.name} ${img.manifestDigest} ${file} ${(img.archive.length / 2 ** 20).toFixed(1)} MiB (${img.apps.join(', ')})\n`);
}
writeFileSync(join(out, 'images.json'), JSON.stringify(summary, null, 2) + '\n');
process.stderr.write(`images built in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
