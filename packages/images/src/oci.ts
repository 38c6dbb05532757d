/**
 * OCI image archives without a daemon or registry: layers written by `writeLayer`, the image
 * config, the manifest and an OCI image layout, packed into one tar that
 * `ctr -n k8s.io images import` (and `skopeo`, `podman load`) accept. Nothing in it depends on
 * the clock or the machine: the same inputs give the same manifest digest.
 */
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { writeLayer, type LayerEntry } from './tar.js';

export interface ImageConfig {
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  /** `uid:gid`; images of the mesh never run as root. */
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
  exposedPorts?: number[];
}

export interface ImageSpec {
  /** Full reference the image is imported as, e.g. `octo.local/octo-mesh/control-plane:0.1.0`. */
  name: string;
  /** Layers, bottom first: entries, or a layer prepared once for several images. */
  layers: (LayerEntry[] | PreparedLayer)[];
  config: ImageConfig;
}

export interface BuiltImage {
  name: string;
  archive: Buffer;
  /** `sha256:…` of the manifest: the image's identity (what `ctr images ls` shows as digest). */
  manifestDigest: string;
  configDigest: string;
  /** Bytes of the compressed layers. */
  layerBytes: number;
}

/** A layer compressed once, to be shared by several images (the runtime layer). */
export interface PreparedLayer {
  gz: Buffer;
  diffId: string;
  digest: string;
}

/** Writes and compresses a layer (gzip level 9 by the pinned Node's zlib: the same bytes every time). */
export function prepareLayer(entries: readonly LayerEntry[]): PreparedLayer {
  const tar = writeLayer(entries);
  const gz = gzipSync(tar, { level: 9 });
  return { gz, diffId: `sha256:${sha(tar)}`, digest: `sha256:${sha(gz)}` };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** Builds the archive. Layers are gzip-compressed at level 9 (zlib of the pinned Node: same bytes every time). */
export function buildImage(spec: ImageSpec): BuiltImage {
  const blobs = new Map<string, Buffer>();
  const layers = spec.layers.map((l) => {
    const p = Array.isArray(l) ? prepareLayer(l) : l;
    blobs.set(p.digest.slice('sha256:'.length), p.gz);
    return { diffId: p.diffId, digest: p.digest, size: p.gz.length };
  });
  const c = spec.config;
  const config = json({
    architecture: 'amd64',
    os: 'linux',
    config: {
      ...(c.user ? { User: c.user } : {}),
      Env: c.env ?? ['PATH=/usr/local/bin:/usr/bin:/bin'],
      ...(c.entrypoint ? { Entrypoint: c.entrypoint } : {}),
      ...(c.cmd ? { Cmd: c.cmd } : {}),
      ...(c.workingDir ? { WorkingDir: c.workingDir } : {}),
      ...(c.labels ? { Labels: c.labels } : {}),
      ...(c.exposedPorts ? { ExposedPorts: Object.fromEntries(c.exposedPorts.map((p) => [`${p}/tcp`, {}])) } : {}),
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
  });
  const configDigest = sha(config);
  blobs.set(configDigest, config);
  const manifest = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
  });
  const manifestDigest = sha(manifest);
  blobs.set(manifestDigest, manifest);
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: `sha256:${manifestDigest}`,
        size: manifest.length,
        platform: { architecture: 'amd64', os: 'linux' },
        // containerd names the imported image after the first; other tools read the second.
        annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': spec.name },
      },
    ],
  });
  const archive = writeLayer([
    { path: 'oci-layout', data: json({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', data: index },
    ...[...blobs].map(([hex, data]) => ({ path: `blobs/sha256/${hex}`, data })),
  ]);
  return { name: spec.name, archive, manifestDigest: `sha256:${manifestDigest}`, configDigest: `sha256:${configDigest}`, layerBytes: layers.reduce((n, l) => n + l.size, 0) };
}

/** An image of one static binary at `/<name>` (the test cluster's pause and CoreDNS images). */
export function staticBinaryImage(name: string, binaryName: string, binary: Buffer, config: ImageConfig): BuiltImage {
  return buildImage({ name, layers: [[{ path: binaryName, data: binary, mode: 0o755 }]], config: { entrypoint: [`/${binaryName}`], ...config } });
}
