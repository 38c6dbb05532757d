import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import type { RoutePolicy } from '@octo-mesh/api';
import { createLogger } from '@octo-mesh/runtime';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { SOURCE_ANNOTATION } from '@octo-mesh/clients';
import { DirectorySource, planDirectorySync, type LoadedFile } from './dir-source.js';
import { MemoryStore } from './memory-store.js';

const policy = (name: string, v1: number) => `apiVersion: mesh.octo.io/v1alpha1
kind: RoutePolicy
metadata: { name: ${name}, namespace: demo }
spec:
  targetRef: { service: ${name} }
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
  rules: [{ route: [{ subset: v1, weight: ${v1} }, { subset: v2, weight: ${100 - v1} }] }]
`;
const BAD_WEIGHTS = policy('catalog', 80).replace('weight: 20', 'weight: 30');

const weightOf = (o: unknown) => (o as RoutePolicy).spec.rules?.[0]?.route[0]?.weight;

describe('planDirectorySync', () => {
  // columns: case, files before, files now, expected puts (name:v1 weight), expected deletes, expected issue paths
  it.each([
    ['new file', {}, { 'a.yaml': policy('catalog', 80) }, ['catalog:80'], [], []],
    ['unchanged file', { 'a.yaml': policy('catalog', 80) }, { 'a.yaml': policy('catalog', 80) }, [], [], []],
    ['edited file', { 'a.yaml': policy('catalog', 80) }, { 'a.yaml': policy('catalog', 50) }, ['catalog:50'], [], []],
    ['removed file', { 'a.yaml': policy('catalog', 80) }, {}, [], ['demo/catalog'], []],
    ['bad edit keeps the last good object', { 'a.yaml': policy('catalog', 80) }, { 'a.yaml': BAD_WEIGHTS }, [], [], ['spec.rules[0].route']],
    ['bad new file is ignored, others apply', {}, { 'a.yaml': BAD_WEIGHTS, 'b.yaml': policy('ratings', 60) }, ['ratings:60'], [], ['spec.rules[0].route']],
    ['object moved between files', { 'a.yaml': policy('catalog', 80) }, { 'b.yaml': policy('catalog', 80) }, [], [], []],
    ['duplicate: first file wins', {}, { 'a.yaml': policy('catalog', 80), 'b.yaml': policy('catalog', 10) }, ['catalog:80'], [], ['metadata.name']],
    ['YAML syntax error', {}, { 'a.yaml': 'kind: [' }, [], [], ['']],
  ] as const)('%s', (_case, before, now, puts, deletes, issuePaths) => {
    const prev = planDirectorySync(new Map(), new Map(Object.entries(before))).next as Map<string, LoadedFile>;
    const plan = planDirectorySync(prev, new Map(Object.entries(now)));
    expect(plan.puts.map((o) => `${o.metadata.name}:${weightOf(o)}`)).toEqual(puts);
    expect(plan.deletes.map((d) => d.key)).toEqual(deletes);
    expect(plan.issues.map((i) => i.path)).toEqual(issuePaths);
  });
});

describe('DirectorySource', () => {
  it('applies files, follows edits, reports a bad file with path and field and keeps the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-dir-'));
    const logs: string[] = [];
    const logger = createLogger('test', 'info', new Writable({ write: (c: Buffer, _e, cb) => (logs.push(c.toString()), cb()) }));
    const store = MemoryStore.open();
    writeFileSync(join(dir, 'catalog.yaml'), policy('catalog', 80));
    const source = new DirectorySource({ dir, store, logger, debounceMs: 20 });
    const until = async (cond: () => Promise<boolean>) => {
      const deadline = Date.now() + 5000;
      while (!(await cond())) {
        if (Date.now() > deadline) throw new Error('condition not met in 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await source.start();
      expect(weightOf(await store.get('RoutePolicy', 'demo/catalog'))).toBe(80);

      writeFileSync(join(dir, 'catalog.yaml'), policy('catalog', 30));
      await until(async () => weightOf(await store.get('RoutePolicy', 'demo/catalog')) === 30);

      writeFileSync(join(dir, 'catalog.yaml'), BAD_WEIGHTS);
      writeFileSync(join(dir, 'ratings.yaml'), policy('ratings', 60));
      await until(async () => (await store.list('RoutePolicy')).items.length === 2);
      await until(async () => source.issues().length === 1);
      expect(weightOf(await store.get('RoutePolicy', 'demo/catalog'))).toBe(30);
      expect(source.issues()[0]).toMatchObject({ source: 'catalog.yaml', path: 'spec.rules[0].route' });
      expect(logs.join('')).toContain('catalog.yaml');

      unlinkSync(join(dir, 'ratings.yaml'));
      await until(async () => (await store.list('RoutePolicy')).items.length === 1);
    } finally {
      await source.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deleting a file never deletes an object of the same name another source (octoctl) wrote since', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-dir-own-'));
    const store = MemoryStore.open();
    writeFileSync(join(dir, 'catalog.yaml'), policy('catalog', 80));
    writeFileSync(join(dir, 'ratings.yaml'), policy('ratings', 60));
    const source = new DirectorySource({ dir, store, logger: createLogger('test', 'error'), debounceMs: 20 });
    try {
      await source.start();
      expect((await store.get('RoutePolicy', 'demo/catalog')).metadata.annotations?.[SOURCE_ANNOTATION]).toBe('directory');
      // octoctl apply of the same name: the API now owns it.
      const applied = parse(policy('catalog', 50)) as RoutePolicy;
      await store.put({ ...applied, metadata: { ...applied.metadata, annotations: { [SOURCE_ANNOTATION]: 'api' } } });
      unlinkSync(join(dir, 'catalog.yaml'));
      unlinkSync(join(dir, 'ratings.yaml'));
      await untilTrue(async () => (await store.list('RoutePolicy')).items.length === 1);
      const kept = await store.get('RoutePolicy', 'demo/catalog');
      expect(weightOf(kept)).toBe(50);
      expect(kept.metadata.annotations?.[SOURCE_ANNOTATION]).toBe('api');
    } finally {
      await source.stop();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('restarted on a persisted store: octoctl objects stay as applied, objects of files removed meanwhile go', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'octo-dir-restart-'));
    const data = mkdtempSync(join(tmpdir(), 'octo-dir-data-'));
    const logger = createLogger('test', 'error');
    writeFileSync(join(dir, 'catalog.yaml'), policy('catalog', 80));
    writeFileSync(join(dir, 'ratings.yaml'), policy('ratings', 60));
    try {
      let store = MemoryStore.open({ dir: data });
      let source = new DirectorySource({ dir, store, logger, debounceMs: 20 });
      await source.start();
      const applied = parse(policy('catalog', 50)) as RoutePolicy;
      await store.put({ ...applied, metadata: { ...applied.metadata, annotations: { [SOURCE_ANNOTATION]: 'api' } } });
      await source.stop();
      await store.close();

      unlinkSync(join(dir, 'ratings.yaml')); // while the dispatcher is down
      store = MemoryStore.open({ dir: data });
      source = new DirectorySource({ dir, store, logger, debounceMs: 20 });
      await source.start();
      expect(weightOf(await store.get('RoutePolicy', 'demo/catalog'))).toBe(50);
      expect((await store.list('RoutePolicy')).items.map((o) => o.metadata.name)).toEqual(['catalog']);
      // An edit of the file is a new write by the directory: it wins again.
      writeFileSync(join(dir, 'catalog.yaml'), policy('catalog', 70));
      await untilTrue(async () => weightOf(await store.get('RoutePolicy', 'demo/catalog')) === 70);
      await source.stop();
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      rmSync(data, { recursive: true, force: true });
    }
  });
});

async function untilTrue(cond: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
