import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { parseScenario, scaleScenario, ScenarioError } from './scenario.js';
import { percentile } from './report.js';

const base = {
  name: 't',
  services: [{ name: 'catalog', namespace: 'shop' }],
  templates: { frontend: { workload: 'frontend', namespace: 'shop', dependencies: ['catalog'] } },
};
const withSteps = (steps: unknown[]) => stringify({ ...base, steps });

describe('parseScenario', () => {
  it('fills defaults and keeps each step with its index', () => {
    const s = parseScenario(withSteps([{ start: { template: 'frontend', count: 3 } }, { expectPush: { to: { dependsOn: 'shop/catalog' }, within: '1.5s' } }, { sleep: '250ms' }]));
    expect(s.pilots).toBe(2);
    expect(s.templates['frontend']!.protocol).toBe('sotw');
    expect(s.steps.map((x) => [x.index, x.kind])).toEqual([[0, 'start'], [1, 'expectPush'], [2, 'sleep']]);
    expect(s.steps[1]!.args).toMatchObject({ within: 1500, types: ['eds'], othersQuietFor: 1000 });
    expect(s.steps[2]!.args).toBe(250);
    expect((scaleScenario(s, 10).steps[0]!.args as { count: number }).count).toBe(30);
  });

  // columns: steps, the line the error must contain
  it.each([
    [[{ start: { template: 'frontend' } }, { expectPush: { to: {}, within: 'soon' } }], 'steps[1] (expectPush).within: expected a duration such as 500ms or 2s, got "soon"'],
    [[{ start: { template: 'backend' } }], 'steps[0] (start).template: no template named "backend"'],
    [[{ start: { template: 'frontend' }, sleep: '1s' }], 'steps[0]: a step has exactly one of'],
    [[{ explode: {} }], 'got explode'],
    [[{ kill: { component: 'operator' } }], 'steps[0] (kill).component: expected dispatcher, meta-server, pilot or pilot-<id>'],
    [[{ expectPush: { to: { dependsOn: 'catalog' } } }], 'steps[0] (expectPush).to.dependsOn: expected namespace/name'],
    [[{ nack: { to: {}, type: 'xds' } }], 'steps[0] (nack).type:'],
    [[{ applyPolicy: { metadata: { name: 'p', namespace: 'shop' }, spec: { targetRef: { service: 'catalog' }, rules: [{ route: [{ subset: 'v1', weight: 90 }] }] } } }], 'steps[0] (applyPolicy).spec.rules[0].route'],
    [[{ expectResources: { to: { template: 'nope' } } }], 'steps[0] (expectResources).to.template: no template named "nope"'],
  ])('rejects %j naming the step and field', (steps, message) => {
    let err: unknown;
    try {
      parseScenario(withSteps(steps), 'x.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScenarioError);
    expect((err as ScenarioError).message).toContain('x.yaml: invalid scenario');
    expect((err as ScenarioError).issues.join('\n')).toContain(message);
  });

  it('reports every bad step, not only the first', () => {
    expect(() => parseScenario(withSteps([{ sleep: 'x' }, { start: { template: 'frontend' } }, { sleep: 'y' }]))).toThrow(/steps\[0\] \(sleep\)[^]*steps\[2\] \(sleep\)/);
  });

  it('accepts every scenario of the e2e library', () => {
    const dir = fileURLToPath(new URL('../../../e2e/scenarios/', import.meta.url));
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(4);
    for (const f of files) expect(() => parseScenario(readFileSync(dir + f, 'utf8'), f)).not.toThrow();
  });
});

describe('percentile', () => {
  // columns: values, p, expected (nearest rank)
  it.each([
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50, 5],
    [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99, 10],
    [[7], 99, 7],
  ])('%j p%i = %i', (xs, p, want) => expect(percentile(xs, p)).toBe(want));
  it('is NaN for no values', () => expect(percentile([], 50)).toBeNaN());
});
