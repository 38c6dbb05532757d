import { describe, expect, it } from '@jest/globals';
import { buildImage } from './oci.js';
import { writeLayer } from './tar.js';

/** Names of the entries of a tar, in order. */
function names(tar: Buffer): string[] {
  const out: string[] = [];
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    out.push(name);
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe('writeLayer', () => {
  it('sorts entries and adds their parent directories', () => {
    const tar = writeLayer([
      { path: 'usr/local/bin/node', data: Buffer.from('x'), mode: 0o755 },
      { path: 'app/pilot.mjs', data: Buffer.from('y') },
    ]);
    expect(names(tar)).toEqual(['app/', 'app/pilot.mjs', 'usr/', 'usr/local/', 'usr/local/bin/', 'usr/local/bin/node']);
  });
  it.each([['../etc/passwd'], ['/'], ['a/../../b']])('refuses the path %s', (p) => {
    expect(() => writeLayer([{ path: p, data: Buffer.alloc(1) }])).toThrow(/not a relative path/);
  });
  it('refuses a path given twice', () => {
    expect(() => writeLayer([{ path: 'a', data: Buffer.alloc(1) }, { path: './a', data: Buffer.alloc(1) }])).toThrow(/given twice/);
  });
  it('writes long paths with a pax record', () => {
    const long = `${'d'.repeat(90)}/${'f'.repeat(40)}`;
    const tar = writeLayer([{ path: long, data: Buffer.from('z') }]);
    expect(tar.toString('latin1')).toContain(` path=${long}\n`);
  });
});

describe('buildImage', () => {
  const spec = () => ({
    name: 'octo.local/test:1',
    layers: [[{ path: 'bin/hello', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 }]],
    config: { entrypoint: ['/bin/hello'], user: '65532:65532' },
  });
  it('is reproducible: the same inputs give the same bytes and digest', () => {
    const a = buildImage(spec());
    const b = buildImage(spec());
    expect(a.manifestDigest).toBe(b.manifestDigest);
    expect(a.archive.equals(b.archive)).toBe(true);
  });
  it('lays out an OCI image index naming the image for containerd', () => {
    const img = buildImage(spec());
    const entries = names(img.archive);
    expect(entries).toEqual(expect.arrayContaining(['oci-layout', 'index.json', `blobs/sha256/${img.manifestDigest.slice(7)}`, `blobs/sha256/${img.configDigest.slice(7)}`]));
    const index = /\{"schemaVersion":2,"mediaType":"application\/vnd.oci.image.index.v1\+json".*?\]\}/.exec(img.archive.toString('latin1'))![0];
    expect(JSON.parse(index).manifests[0].annotations['io.containerd.image.name']).toBe('octo.local/test:1');
  });
  it('records the uncompressed layer digest as the diff id', () => {
    const img = buildImage(spec());
    const config = JSON.parse(/\{"architecture".*?"rootfs":\{.*?\]\}\}/.exec(img.archive.toString('latin1'))![0]);
    expect(config.config.User).toBe('65532:65532');
    expect(config.rootfs.diff_ids).toHaveLength(1);
  });
});
