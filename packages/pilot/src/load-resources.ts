/**
 * Loads mesh objects from YAML into the in-memory source: the pilot's stand-alone mode until the
 * dispatcher source is wired in, and the demo's way to seed a mesh.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isResourceKind, resourceSchema, type Endpoint, type ProxyVersion, type RoutePolicy, type Service, type ServiceEndpoints } from '@octo-mesh/api';
import { ValidationError, type FieldIssue } from '@octo-mesh/runtime';
import { parseAllDocuments } from 'yaml';
import { keyOf } from './model.js';
import type { MemoryMeshSource } from './source.js';

export interface LoadedResources {
  services: number;
  endpoints: number;
  policies: number;
  proxyVersions: ProxyVersion[];
}

function files(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(path, f));
}

/**
 * RoutePolicies are loaded even when invalid — Pilot rejects them and reports why, as it would
 * for any source — while services, endpoints and ProxyVersions must validate.
 * @throws ValidationError naming `file#document` and the field of every problem.
 */
export function loadResources(path: string, into: MemoryMeshSource): LoadedResources {
  const issues: FieldIssue[] = [];
  const out: LoadedResources = { services: 0, endpoints: 0, policies: 0, proxyVersions: [] };
  const endpoints: ServiceEndpoints[] = [];
  for (const file of files(path)) {
    parseAllDocuments(readFileSync(file, 'utf8')).forEach((doc, i) => {
      const where = `${file}#${i}`;
      if (doc.errors.length) return void issues.push({ path: where, message: `YAML: ${doc.errors[0]!.message.split('\n')[0]}` });
      const obj = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown } } | null;
      if (!obj) return;
      if (!isResourceKind(obj.kind)) return void issues.push({ path: `${where}.kind`, message: `unknown kind ${JSON.stringify(obj.kind)}` });
      if (obj.kind === 'RoutePolicy' && typeof obj.metadata?.name === 'string') {
        into.applyPolicy(obj as RoutePolicy);
        out.policies++;
        return;
      }
      const parsed = resourceSchema(obj.kind).safeParse(obj);
      if (!parsed.success) {
        for (const e of parsed.error.issues) issues.push({ path: `${where}.${e.path.join('.')}`, message: e.message });
        return;
      }
      const v = parsed.data as Service | ServiceEndpoints | ProxyVersion;
      if (v.kind === 'Service') {
        into.upsertService(v);
        out.services++;
      } else if (v.kind === 'ServiceEndpoints') endpoints.push(v);
      else if (v.kind === 'ProxyVersion') out.proxyVersions.push(v);
    });
  }
  for (const e of endpoints) {
    into.setEndpoints(keyOf(e as unknown as Service), e.spec.endpoints as Endpoint[]);
    out.endpoints++;
  }
  if (issues.length) throw new ValidationError(`resources in ${path}`, issues);
  return out;
}
