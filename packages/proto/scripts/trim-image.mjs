// Trims a compiled set of protos (a FileDescriptorSet, e.g. `buf build` output) to what one reader
// reads, for code generation: the proxy decodes Listener, Cluster, … but reads a few dozen of the
// hundreds of Envoy messages their fields reach, and every generated message costs memory in
// every sidecar (docs/footprint.md, round 4).
//
// Rule: a message named in `keep` (or a google.protobuf well-known type, or a map's entry) is
// generated as it is; a message-typed field of a kept message whose type is not kept is retyped
// to google.protobuf.Empty, with the same name and number. On the wire and in JSON such a field
// still decodes, to `{}` when present (its content is skipped), so a reader can still tell
// whether it was set — which is all the proxy's allow-list asks of a field it does not read:
// it refuses it, or accepts it without acting on it. Scalars and enums are kept as they are.
// Then every message, enum and file nothing kept refers to is dropped, and options and source
// info are removed (they only carry comments and custom annotations).
//
// Pure: trimDescriptors(set, {keep, services}) returns a new set; the input is not modified.
import { clone, create } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, FieldDescriptorProto_Type } from '@bufbuild/protobuf/wkt';

const EMPTY = 'google.protobuf.Empty';
const EMPTY_FILE = 'google/protobuf/empty.proto';

/**
 * @param {import('@bufbuild/protobuf/wkt').FileDescriptorSet} input
 * @param {{ keep: Iterable<string>, services: Iterable<string> }} opts `keep`: full names of the
 *   messages generated whole (the reader's roots and every message it reads into); `services`:
 *   files whose services are kept (their request and response messages must be in `keep`).
 * @returns {import('@bufbuild/protobuf/wkt').FileDescriptorSet}
 */
export function trimDescriptors(input, opts) {
  const set = clone(FileDescriptorSetSchema, input);
  const wanted = new Set(opts.keep);
  const serviceFiles = new Set(opts.services);

  /** full name → { file, desc, kind, parent } for every message and enum. */
  const types = new Map();
  const index = (file, prefix, messages, enums, parent) => {
    for (const e of enums) types.set(`${prefix}${e.name}`, { file, desc: e, kind: 'enum', parent });
    for (const m of messages) {
      const name = `${prefix}${m.name}`;
      types.set(name, { file, desc: m, kind: 'message', parent });
      index(file, `${name}.`, m.nestedType, m.enumType, name);
    }
  };
  for (const f of set.file) index(f, f.package ? `${f.package}.` : '', f.messageType, f.enumType, undefined);
  for (const name of wanted) if (types.get(name)?.kind !== 'message') throw new Error(`trim: no message ${name} in the descriptor set`);

  const isKept = (name) => wanted.has(name) || name.startsWith('google.protobuf.') || types.get(name)?.desc.options?.mapEntry === true;
  const used = new Set();
  const queue = [];
  const use = (name) => {
    if (used.has(name)) return;
    const t = types.get(name);
    if (!t) throw new Error(`trim: unknown type ${name}`);
    used.add(name);
    if (t.parent) use(t.parent); // a nested type needs its enclosing message
    if (t.kind === 'message') queue.push(t.desc);
  };
  const MESSAGE = new Set([FieldDescriptorProto_Type.MESSAGE, FieldDescriptorProto_Type.GROUP]);
  for (const name of wanted) use(name);
  for (const f of set.file) {
    if (!serviceFiles.has(f.name)) continue;
    for (const s of f.service)
      for (const m of s.method) {
        use(m.inputType.slice(1));
        use(m.outputType.slice(1));
      }
  }
  while (queue.length) {
    const m = queue.pop();
    for (const field of m.field) {
      if (!field.typeName) continue;
      const name = field.typeName.slice(1);
      if (MESSAGE.has(field.type) && !isKept(name)) {
        field.typeName = `.${EMPTY}`;
        use(EMPTY);
      } else use(name);
    }
  }

  // Keep what is used; drop options (custom annotations), unknown fields (buf's image extension)
  // and source info.
  const prune = (prefix, messages, enums) => ({
    enums: enums.filter((e) => used.has(`${prefix}${e.name}`)).map((e) => ({ ...e, options: undefined, $unknown: undefined })),
    messages: messages
      .filter((m) => used.has(`${prefix}${m.name}`))
      .map((m) => {
        const inner = prune(`${prefix}${m.name}.`, m.nestedType, m.enumType);
        return {
          ...m,
          nestedType: inner.messages,
          enumType: inner.enums,
          options: m.options?.mapEntry ? { ...m.options, $unknown: undefined } : undefined,
          field: m.field.map((f) => ({ ...f, options: f.options?.packed !== undefined ? { ...f.options, $unknown: undefined } : undefined, $unknown: undefined })),
          $unknown: undefined,
        };
      }),
  });
  const out = [];
  const kept = new Set();
  for (const f of set.file) {
    const { messages, enums } = prune(f.package ? `${f.package}.` : '', f.messageType, f.enumType);
    const service = serviceFiles.has(f.name) ? f.service.map((s) => ({ ...s, options: undefined, method: s.method.map((m) => ({ ...m, options: undefined })) })) : [];
    if (!messages.length && !enums.length && !service.length) continue;
    kept.add(f.name);
    out.push({ ...f, messageType: messages, enumType: enums, service, extension: [], options: undefined, sourceCodeInfo: undefined, $unknown: undefined });
  }
  if (used.has(EMPTY) && !kept.has(EMPTY_FILE)) throw new Error(`trim: ${EMPTY_FILE} is not in the descriptor set`);

  // Each file's imports: the files of the types it refers to (and nothing else).
  const fileOf = (typeName) => types.get(typeName.slice(1)).file.name;
  for (const f of out) {
    const deps = new Set();
    const walk = (messages) => {
      for (const m of messages) {
        for (const field of m.field) if (field.typeName) deps.add(fileOf(field.typeName));
        walk(m.nestedType);
      }
    };
    walk(f.messageType);
    for (const s of f.service)
      for (const m of s.method) {
        deps.add(fileOf(m.inputType));
        deps.add(fileOf(m.outputType));
      }
    deps.delete(f.name);
    f.dependency = [...deps].filter((d) => kept.has(d));
    if (f.dependency.length !== deps.size) throw new Error(`trim: ${f.name} refers to a dropped file`);
    f.publicDependency = [];
    f.weakDependency = [];
  }
  return create(FileDescriptorSetSchema, { file: out.map((f) => create(FileDescriptorProtoSchema, f)) });
}
