import { describe, expect, it } from '@jest/globals';
import { create } from '@bufbuild/protobuf';
import { FieldDescriptorProto_Label as Label, FieldDescriptorProto_Type as Type, FileDescriptorSetSchema, type FileDescriptorSet } from '@bufbuild/protobuf/wkt';
import { trimDescriptors } from '../scripts/trim-image.mjs';

const msg = (name: string, fields: [string, number, Type, string?, Label?][], nested: object[] = [], mapEntry = false) => ({
  name,
  field: fields.map(([n, number, type, typeName, label]) => ({ name: n, number, type, typeName, label: label ?? Label.OPTIONAL, jsonName: n })),
  nestedType: nested,
  ...(mapEntry ? { options: { mapEntry: true } } : {}),
});

/** a.proto: A (b: B, c: C, m: map<string, D>, e: E, s: string), C, D, E; b.proto: B (deep: X), X, Unused; svc.proto: a service of A → C. */
function set(): FileDescriptorSet {
  return create(FileDescriptorSetSchema, {
    file: [
      { name: 'google/protobuf/empty.proto', package: 'google.protobuf', syntax: 'proto3', messageType: [msg('Empty', [])] },
      { name: 'b.proto', package: 't', syntax: 'proto3', messageType: [msg('B', [['deep', 1, Type.MESSAGE, '.t.X']]), msg('X', [['v', 1, Type.STRING]]), msg('Unused', [])] },
      {
        name: 'a.proto',
        package: 't',
        syntax: 'proto3',
        dependency: ['b.proto'],
        enumType: [{ name: 'E', value: [{ name: 'E_ZERO', number: 0 }] }, { name: 'Unreferenced', value: [{ name: 'U_ZERO', number: 0 }] }],
        messageType: [
          msg(
            'A',
            [
              ['b', 1, Type.MESSAGE, '.t.B'],
              ['c', 2, Type.MESSAGE, '.t.C', Label.REPEATED],
              ['m', 3, Type.MESSAGE, '.t.A.MEntry', Label.REPEATED],
              ['e', 4, Type.ENUM, '.t.E'],
              ['s', 5, Type.STRING],
            ],
            [msg('MEntry', [['key', 1, Type.STRING], ['value', 2, Type.MESSAGE, '.t.D']], [], true)],
          ),
          msg('C', [['x', 1, Type.MESSAGE, '.t.X']]),
          msg('D', [['v', 1, Type.STRING]]),
        ],
      },
      {
        name: 'svc.proto',
        package: 't',
        syntax: 'proto3',
        dependency: ['a.proto'],
        service: [{ name: 'S', method: [{ name: 'Get', inputType: '.t.A', outputType: '.t.C' }] }],
      },
    ],
  });
}

const shape = (s: FileDescriptorSet) =>
  Object.fromEntries(
    s.file.map((f) => [
      f.name,
      {
        deps: f.dependency,
        enums: f.enumType.map((e) => e.name),
        services: f.service.map((x) => x.name),
        messages: Object.fromEntries(f.messageType.map((m) => [m.name, [...m.field.map((x) => `${x.name}:${x.typeName || 'scalar'}`), ...m.nestedType.map((n) => `nested ${n.name}: ${n.field.map((x) => `${x.name}:${x.typeName || 'scalar'}`).join(' ')}`)]])),
      },
    ]),
  );

describe('trimDescriptors', () => {
  // columns: what, keep, services, the trimmed set's shape (file → imports, enums, services, messages with their fields)
  it.each<[string, string[], string[], object]>([
    [
      'A alone: B, C and D become Empty (also as a map value), the enum stays, b.proto and the service go',
      ['t.A'],
      [],
      {
        'google/protobuf/empty.proto': { deps: [], enums: [], services: [], messages: { Empty: [] } },
        'a.proto': {
          deps: ['google/protobuf/empty.proto'],
          enums: ['E'],
          services: [],
          messages: { A: ['b:.google.protobuf.Empty', 'c:.google.protobuf.Empty', 'm:.t.A.MEntry', 'e:.t.E', 's:scalar', 'nested MEntry: key:scalar value:.google.protobuf.Empty'] },
        },
      },
    ],
    [
      'A, B and C kept; X (below both) becomes Empty; the service kept with its file',
      ['t.A', 't.B', 't.C'],
      ['svc.proto'],
      {
        'google/protobuf/empty.proto': { deps: [], enums: [], services: [], messages: { Empty: [] } },
        'b.proto': { deps: ['google/protobuf/empty.proto'], enums: [], services: [], messages: { B: ['deep:.google.protobuf.Empty'] } },
        'a.proto': {
          deps: ['b.proto', 'google/protobuf/empty.proto'],
          enums: ['E'],
          services: [],
          messages: {
            A: ['b:.t.B', 'c:.t.C', 'm:.t.A.MEntry', 'e:.t.E', 's:scalar', 'nested MEntry: key:scalar value:.google.protobuf.Empty'],
            C: ['x:.google.protobuf.Empty'],
          },
        },
        'svc.proto': { deps: ['a.proto'], enums: [], services: ['S'], messages: {} },
      },
    ],
    [
      'X kept: its file comes along and nothing else of it',
      ['t.A', 't.B', 't.X'],
      [],
      {
        'google/protobuf/empty.proto': { deps: [], enums: [], services: [], messages: { Empty: [] } },
        'b.proto': { deps: [], enums: [], services: [], messages: { B: ['deep:.t.X'], X: ['v:scalar'] } },
        'a.proto': {
          deps: ['b.proto', 'google/protobuf/empty.proto'],
          enums: ['E'],
          services: [],
          messages: { A: ['b:.t.B', 'c:.google.protobuf.Empty', 'm:.t.A.MEntry', 'e:.t.E', 's:scalar', 'nested MEntry: key:scalar value:.google.protobuf.Empty'] },
        },
      },
    ],
  ])('%s', (_what, keep, services, want) => {
    const input = set();
    const before = JSON.stringify(shape(input));
    expect(shape(trimDescriptors(input, { keep, services }))).toEqual(want);
    expect(JSON.stringify(shape(input))).toBe(before); // the input is not modified
  });

  it('refuses a kept name that is not a message of the set', () => {
    expect(() => trimDescriptors(set(), { keep: ['t.Nope'], services: [] })).toThrow('trim: no message t.Nope in the descriptor set');
  });
});
