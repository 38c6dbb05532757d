// The generated CRDs on a real kube-apiserver: they establish, every valid example is accepted,
// every invalid example is rejected by the API server itself (OpenAPI schema or CEL) with an
// error that names the field, and ProxyVersion's immutable fields hold.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { parse, stringify } from 'yaml';
import { crdFor, KINDS } from '@octo-mesh/api';
import { createTestNamespace, kubectl, REPO_ROOT } from '@octo-mesh/testing';

const examples = join(REPO_ROOT, 'examples');
const yamlIn = (dir: string) => readdirSync(join(examples, dir)).filter((f) => f.endsWith('.yaml')).sort();

/**
 * Invalid examples the API server cannot judge, with why. Each is still rejected by zod
 * (examples.test.ts) and, in a cluster, reported in the policy's status by the control plane.
 */
const NOT_ENFORCED_BY_API_SERVER: Record<string, string> = {
  'rp-bad-regex.yaml': 'CEL has no way to ask whether a string compiles as a regular expression',
  'rp-bad-regex-lookahead.yaml': 'CEL has no way to ask whether a string is RE2 syntax',
  'rp-bad-regex-backreference.yaml': 'CEL has no way to ask whether a string is RE2 syntax',
};

/** Messages of our CEL rules (static ones, and the fixed prefix of messageExpressions). */
const celMessages: string[] = KINDS.flatMap((k) => {
  const out: string[] = [];
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object') return;
    for (const [key, v] of Object.entries(n)) {
      if (key === 'x-kubernetes-validations')
        for (const c of v as { message?: string; messageExpression?: string }[]) {
          if (c.message) out.push(c.message);
          // A messageExpression 'text %d'.format([...]): the text before the first verb.
          const prefix = c.messageExpression && /^'([^'%]*)/.exec(c.messageExpression)?.[1];
          if (prefix) out.push(`${prefix}\u0000`);
        }
      else walk(v);
    }
  };
  walk(crdFor(k));
  return out;
});

let ns = '';
const apply = (file: string, obj: Record<string, any>) =>
  kubectl(['apply', '--server-side', '--field-manager=octo-e2e', '-n', ns, '-f', '-'], { input: stringify({ ...obj, metadata: { ...obj.metadata, namespace: ns } }) });
const load = (dir: string, file: string) => parse(readFileSync(join(examples, dir, file), 'utf8')) as Record<string, any>;

beforeAll(async () => {
  const applied = kubectl(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds')]);
  expect(applied.stderr).toBe('');
  const established = kubectl(['wait', '--for=condition=Established', '--timeout=30s', ...KINDS.map((k) => `crd/${k.plural}.mesh.octo.io`)]);
  expect(established.status).toBe(0);
  ns = await createTestNamespace('crds');
});

describe('CRDs on a real API server', () => {
  it('serve both kinds with their short names and printer columns', () => {
    const r = kubectl(['api-resources', '--api-group=mesh.octo.io', '-o', 'wide']);
    expect(r.stdout).toMatch(/proxyversions\s+pxv\s+mesh\.octo\.io\/v1alpha1\s+true\s+ProxyVersion/);
    expect(r.stdout).toMatch(/routepolicies\s+rp\s+mesh\.octo\.io\/v1alpha1\s+true\s+RoutePolicy/);
  });

  it.each(yamlIn('valid'))('accepts valid example %s', (file) => {
    const obj = load('valid', file);
    const r = apply(file, obj);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const got = kubectl(['get', obj.kind, obj.metadata.name, '-n', ns, '-o', 'json']);
    const stored = JSON.parse(got.stdout) as Record<string, any>;
    expect(stored.spec.targetRef ?? stored.spec.version).toEqual(obj.spec.targetRef ?? obj.spec.version);
  });

  const invalid = yamlIn('invalid').filter((f) => !(f in NOT_ENFORCED_BY_API_SERVER));
  it.each(invalid)('rejects invalid example %s, naming the field', (file) => {
    const text = readFileSync(join(examples, 'invalid', file), 'utf8');
    const [, path, message] = /^# expect: (\S+): (.+)$/m.exec(text)!;
    const r = apply(file, parse(text) as Record<string, any>);
    expect(r.status).not.toBe(0);
    // The API server's own wording for schema errors differs from zod's, but the field path is
    // the same; for our CEL rules the message is ours and must match too.
    expect(r.stderr).toContain(path!);
    // Static CEL messages must appear as they are; a messageExpression's (marked by a trailing
    // NUL) renders the whole message, values included, exactly as zod's check does.
    const cel = celMessages.find((m) => message!.startsWith(m.replace('\u0000', '')));
    if (cel) expect(r.stderr).toContain(cel.endsWith('\u0000') ? message! : cel);
    expect(kubectl(['get', parse(text).kind, parse(text).metadata.name, '-n', ns]).status).not.toBe(0);
  });

  it('lists which invalid examples only the control plane can judge', () => {
    for (const f of Object.keys(NOT_ENFORCED_BY_API_SERVER)) expect(yamlIn('invalid')).toContain(f);
  });

  it('keeps ProxyVersion version and package immutable, while other fields may change', () => {
    const pv = load('valid', 'proxyversion-canary.yaml');
    expect(apply('pv', pv).status).toBe(0);
    const changedVersion = apply('pv', { ...pv, spec: { ...pv.spec, version: '1.4.3' } });
    expect(changedVersion.status).not.toBe(0);
    expect(changedVersion.stderr).toContain('spec.version');
    expect(changedVersion.stderr).toContain('version is immutable');
    const changedPackage = apply('pv', { ...pv, spec: { ...pv.spec, package: { ...pv.spec.package, sha256: 'a'.repeat(64) } } });
    expect(changedPackage.stderr).toContain('package is immutable');
    const paused = apply('pv', { ...pv, spec: { ...pv.spec, paused: true } });
    expect(paused.stderr).toBe('');
    expect(JSON.parse(kubectl(['get', 'proxyversions', pv.metadata.name, '-n', ns, '-o', 'json']).stdout).spec.paused).toBe(true);
  });
});
