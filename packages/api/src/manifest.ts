import { parseAllDocuments } from 'yaml';
import { API_VERSION } from './schema/common.js';
import { kindInfo, KINDS } from './kinds.js';
import type { ProxyVersion } from './schema/proxyversion.js';
import type { RoutePolicy } from './schema/routepolicy.js';
import type { AuthorizationPolicy } from './schema/authorizationpolicy.js';

/** A problem with one manifest, located by source, document index and field path. */
export interface ManifestIssue {
  /** File path or other source name. */
  source: string;
  /** 0-based index of the YAML document in the source. */
  document: number;
  /** `kind/namespace/name` when known. */
  object?: string;
  /** Field path such as `spec.rules[1].route`; empty for whole-document problems. */
  path: string;
  message: string;
}

export type MeshObject = RoutePolicy | ProxyVersion | AuthorizationPolicy;

export interface ParseResult {
  objects: MeshObject[];
  issues: ManifestIssue[];
}

/** Formats an issue the way every tool prints it: `file#doc kind/ns/name: path: message`. */
export function formatIssue(i: ManifestIssue): string {
  const where = `${i.source}${i.document > 0 ? `#${i.document}` : ''}${i.object ? ` ${i.object}` : ''}`;
  return `${where}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out;
}

/** Validates one parsed object of any mesh kind. */
export function validateObject(value: unknown, source = '<input>', document = 0): { ok: true; value: MeshObject } | { ok: false; issues: ManifestIssue[] } {
  const obj = value as { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } } | null;
  const fail = (path: string, message: string, object?: string) => ({ ok: false as const, issues: [{ source, document, path, message, ...(object ? { object } : {}) }] });
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return fail('', 'expected a Kubernetes object (a mapping with apiVersion, kind, metadata, spec)');
  if (obj.apiVersion !== API_VERSION) return fail('apiVersion', `must be ${API_VERSION}, got ${JSON.stringify(obj.apiVersion)}`);
  const info = typeof obj.kind === 'string' ? kindInfo(obj.kind) : undefined;
  if (!info) return fail('kind', `must be one of ${KINDS.map((k) => k.kind).join(', ')}, got ${JSON.stringify(obj.kind)}`);
  const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '?';
  const ns = typeof obj.metadata?.namespace === 'string' ? obj.metadata.namespace : 'default';
  const object = `${info.kind}/${ns}/${name}`;
  const result = info.schema.safeParse(obj);
  if (result.success) return { ok: true, value: result.data as MeshObject };
  return {
    ok: false,
    issues: result.error.issues.map((i) => ({ source, document, object, path: pathOf(i.path), message: i.message })),
  };
}

/** Parses a (multi-document) YAML text and validates every object in it. */
export function parseManifests(text: string, source = '<input>'): ParseResult {
  const objects: MeshObject[] = [];
  const issues: ManifestIssue[] = [];
  parseAllDocuments(text).forEach((doc, document) => {
    if (doc.errors.length) {
      for (const e of doc.errors) issues.push({ source, document, path: '', message: `YAML: ${e.message.split('\n')[0]}` });
      return;
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) return; // empty document
    const r = validateObject(value, source, document);
    if (r.ok) objects.push(r.value);
    else issues.push(...r.issues);
  });
  return { objects, issues };
}
