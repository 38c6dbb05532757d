#!/usr/bin/env node
// Validates mesh manifests (RoutePolicy, ProxyVersion, AuthorizationPolicy) in YAML files or folders and prints every
// problem with its file, object and field path. Exit code 0 when all are valid, 1 otherwise.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { formatIssue, parseManifests } from '../manifest.js';

function files(path: string): string[] {
  if (statSync(path).isDirectory()) return readdirSync(path).sort().flatMap((n) => files(join(path, n)));
  return /\.ya?ml$/.test(path) ? [path] : [];
}

const args = process.argv.slice(2).filter((a) => a !== '-f');
if (!args.length) {
  console.error('usage: validate FILE|DIR [...]   (YAML manifests of RoutePolicy, ProxyVersion and AuthorizationPolicy)');
  process.exit(2);
}
let bad = 0;
let good = 0;
for (const file of args.flatMap(files)) {
  const { objects, issues } = parseManifests(readFileSync(file, 'utf8'), file);
  good += objects.length;
  for (const i of issues) console.log(formatIssue(i));
  bad += issues.length;
  for (const o of objects) if (!issues.length) console.log(`${file}: ${o.kind}/${o.metadata.namespace ?? 'default'}/${o.metadata.name} valid`);
}
console.log(`${good} valid object(s), ${bad} problem(s)`);
process.exit(bad ? 1 : 0);
