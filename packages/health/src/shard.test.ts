import { describe, expect, it } from '@jest/globals';
import { ServiceShards } from './shard.js';

const services = Array.from({ length: 400 }, (_, i) => `ns${i % 7}/svc-${i}`);
const owned = (self: string, members: string[]) => {
  const s = new ServiceShards(self, members);
  return services.filter((k) => s.owns(k));
};

describe('ServiceShards: services over checker replicas on the meta server\'s ring', () => {
  it('replicas that see the same members split every service exactly once', () => {
    const members = ['c-a', 'c-b', 'c-c'];
    const parts = members.map((m) => owned(m, members));
    expect(parts.flat().sort()).toEqual([...services].sort());
    for (const p of parts) expect(p.length).toBeGreaterThan(services.length / 3 / 2); // roughly even
  });

  it('a replica that dies: only its services move, to the survivors', () => {
    const before = { a: owned('c-a', ['c-a', 'c-b', 'c-c']), b: owned('c-b', ['c-a', 'c-b', 'c-c']) };
    const after = { a: owned('c-a', ['c-a', 'c-b']), b: owned('c-b', ['c-a', 'c-b']) };
    expect(after.a).toEqual(expect.arrayContaining(before.a));
    expect(after.b).toEqual(expect.arrayContaining(before.b));
    expect(after.a.length + after.b.length).toBe(services.length);
  });

  it('a replica always counts itself and alone owns everything; setMembers reports changes', () => {
    const s = new ServiceShards('c-a');
    expect(services.every((k) => s.owns(k))).toBe(true);
    expect(s.setMembers(['c-b'])).toBe(true);
    expect(s.members).toEqual(['c-a', 'c-b']);
    expect(s.setMembers(['c-b', 'c-a'])).toBe(false);
  });
});
