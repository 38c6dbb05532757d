import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { formatIssue, kindInfo, parseManifests, type MeshResource, type ResourceKind } from '@octo-mesh/api';
import { DispatcherConnection, MetaAdminClient, PilotAdminClient, adminGet, type AdminClientOptions, type MeshTls } from '@octo-mesh/clients';
import { worstSyncState } from '@octo-mesh/contracts';
import { parseFlags } from '@octo-mesh/runtime';
import { ago, table } from './format.js';
import { DEFAULT_REPOSITORY, isRepositoryUrl, packagePush, packageSign } from './package.js';
import { ROLLOUT_ACTIONS, rolloutAction, type RolloutAction } from './rollout.js';
import { readState, type EmbeddedState } from './state.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export const USAGE = `octoctl — look at and change an octo-mesh

Usage:
  octoctl status                         pilots, sidecars, their assigned pilot and sync state
  octoctl config-dump <sidecar>          a sidecar's configuration (its admin /config_dump)
  octoctl validate -f <file|dir>...      check manifests; problems are printed with file and field
  octoctl apply -f <file|dir>...         validate, then create or replace through the dispatcher
  octoctl get routepolicies|authorizationpolicies|proxyversions|services|endpoints [-n ns] [-o yaml|json]
  octoctl delete <kind> <name> [-n ns]
  octoctl rollout status|pause|resume|abort|undo <proxyversion> [-n ns]
                                         a ProxyVersion rollout: batches, counts, failures with
                                         reasons; pause/resume; abort (roll back); undo (back to
                                         the previous Succeeded release)
  octoctl package push <file> [--repository URL] [--url-base URL]
                                         upload a proxy package; prints its URL (under --url-base:
                                         the repository as the pods see it) and sha256
  octoctl package sign <file> --key <ed25519.pem>  prints the package's detached signature (base64)

Where the mesh is: flags --dispatcher host:port (gRPC), --meta-admin host:port (HTTP),
--repository URL, else the embedded mesh's .octo/embedded/state.json (written by \`npm start\`),
else 127.0.0.1 default ports. --tls-dir DIR: an administrator's certificate (sa/octo-admin:
cert-chain.pem, key.pem, root-cert.pem) for a control plane that speaks mTLS; the embedded
mesh's is used by default. --admin-mtls: the admin ports serve HTTPS and want that certificate
(the chart's control plane with security.enabled).
`;

const KIND_ALIASES: Record<string, ResourceKind> = {
  routepolicies: 'RoutePolicy',
  routepolicy: 'RoutePolicy',
  rp: 'RoutePolicy',
  proxyversions: 'ProxyVersion',
  proxyversion: 'ProxyVersion',
  pv: 'ProxyVersion',
  pxv: 'ProxyVersion',
  authorizationpolicies: 'AuthorizationPolicy',
  authorizationpolicy: 'AuthorizationPolicy',
  authz: 'AuthorizationPolicy',
  services: 'Service',
  service: 'Service',
  svc: 'Service',
  endpoints: 'ServiceEndpoints',
  ep: 'ServiceEndpoints',
  workloads: 'Workload',
  workload: 'Workload',
  endpointhealth: 'EndpointHealth',
  health: 'EndpointHealth',
};

/** Splits argv into positional words and flags; `-f a -f b` collects into a list, `-n x` is `namespace`. */
export function parseArgs(argv: readonly string[]): { words: string[]; flags: Record<string, string>; files: string[] } {
  const words: string[] = [];
  const files: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-f' || a === '--filename') files.push(argv[++i] ?? '');
    else if (a === '-n') rest.push('--namespace', argv[++i] ?? '');
    else if (a === '-o') rest.push('--output', argv[++i] ?? '');
    else if (a.startsWith('-')) {
      rest.push(a);
      if (!a.includes('=') && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('-')) rest.push(argv[++i]!);
    } else words.push(a);
  }
  return { words, flags: parseFlags(rest), files };
}

/** Every manifest file named: files as given, directories expanded to their *.yaml / *.yml. */
export function manifestFiles(paths: readonly string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p, { recursive: true, encoding: 'utf8' })
          .filter((f) => /\.ya?ml$/.test(f))
          .sort()
          .map((f) => join(p, f))
      : [p],
  );
}

/** mTLS as an administrator (`sa/octo-admin`): --tls-dir, else the embedded mesh's admin certificate; none: plaintext. */
function adminTls(flags: Record<string, string>, state: EmbeddedState | undefined): MeshTls | undefined {
  const certDir = flags['tlsDir'] ?? state?.security?.adminTlsDir;
  if (!certDir) return undefined;
  const s = state?.security;
  return { certDir, ...(s ? { trustDomain: s.trustDomain, controlNamespace: s.controlNamespace } : {}) };
}

function endpoints(flags: Record<string, string>, state: EmbeddedState | undefined) {
  return {
    dispatcher: flags['dispatcher'] ?? state?.dispatcher.grpc ?? '127.0.0.1:15012',
    tls: adminTls(flags, state),
    metaAdmin: flags['metaAdmin'] ?? state?.meta.admin ?? '127.0.0.1:15015',
  };
}

/** How the admin (debug) ports are read: over mTLS with the administrator's certificate with --admin-mtls, else plain HTTP. */
function adminOptions(flags: Record<string, string>, state: EmbeddedState | undefined): AdminClientOptions {
  if (flags['adminMtls'] === undefined || flags['adminMtls'] === 'false') return {};
  const tls = adminTls(flags, state);
  if (!tls) throw new Error('--admin-mtls needs an administrator certificate: --tls-dir DIR');
  return { tls };
}

/**
 * Each connected node's sync state on one pilot, the worst of its types (as istioctl
 * proxy-status shows it). A pilot that does not answer yields an error per pilot, shown in the
 * table rather than hidden.
 */
async function pilotSync(admin: string, opts: AdminClientOptions): Promise<{ states: Map<string, string>; notReady?: string } | { error: string }> {
  try {
    const [nodes, ready] = await Promise.all([
      new PilotAdminClient(admin, opts).syncz(),
      adminGet(admin, '/readyz', opts).then((r) => (r.ok ? undefined : r.text.replace(/^not ready\n/, '').trim().replace(/\n/g, '; '))),
    ]);
    // A pilot that is not ready (its mesh source failing) serves what it had: acknowledged, but
    // possibly stale — never shown as SYNCED.
    const shown = (s: string) => (ready && s === 'SYNCED' ? 'STALE' : s);
    return { states: new Map(nodes.map((n) => [n.node, shown(worstSyncState(n))])), ...(ready ? { notReady: ready } : {}) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function status(flags: Record<string, string>, io: Io, state: EmbeddedState | undefined): Promise<number> {
  const opts = adminOptions(flags, state);
  const meta = new MetaAdminClient(endpoints(flags, state).metaAdmin, opts);
  const [pilots, sidecars] = await Promise.all([meta.pilots(), meta.sidecars()]);
  const syncs = new Map(await Promise.all(pilots.map(async (p) => [p.id, p.adminAddress ? await pilotSync(p.adminAddress, opts) : { error: 'no admin address advertised' }] as const)));
  for (const [id, s] of syncs) if ('error' in s) io.err(`octoctl status: sync state of pilot ${id} unknown: ${s.error}\n`);
  for (const [id, s] of syncs) if ('notReady' in s && s.notReady) io.err(`octoctl status: pilot ${id} is not ready (its sidecars may be stale): ${s.notReady}\n`);
  const syncOf = (pilot: string, node: string) => {
    const s = syncs.get(pilot);
    return !s ? 'unknown' : 'error' in s ? 'UNKNOWN' : (s.states.get(node) ?? 'NOT CONNECTED');
  };
  const notReady = (id: string) => {
    const s = syncs.get(id);
    return s && 'notReady' in s && s.notReady ? 'live, not ready' : undefined;
  };
  io.out(table(['pilot', 'xds', 'sidecars', 'state', 'last heartbeat'], pilots.map((p) => [p.id, p.xdsAddress, p.sidecars, p.suspect ? 'suspect' : (notReady(p.id) ?? 'live'), ago(p.lastHeartbeat)])));
  io.out('\n');
  io.out(
    table(
      ['sidecar', 'workload', 'assigned pilot', 'connected to', 'sync'],
      sidecars.map((s) => [s.nodeId, `${s.namespace}/${s.workload}`, s.pilot, s.connectedTo, s.connectedTo ? syncOf(s.connectedTo, s.nodeId) : 'DISCONNECTED']),
    ),
  );
  return 0;
}

function loadManifests(files: readonly string[], io: Io): { objects: MeshResource[]; bad: number } {
  let bad = 0;
  const objects: MeshResource[] = [];
  for (const file of manifestFiles(files)) {
    const r = parseManifests(readFileSync(file, 'utf8'), file);
    objects.push(...(r.objects as MeshResource[]));
    for (const i of r.issues) {
      io.err(`${formatIssue(i)}\n`);
      bad++;
    }
  }
  return { objects, bad };
}

/** Applies in flight at once: a bulk apply is pipelined, not one round trip per object. */
const APPLY_CONCURRENCY = 64;

/**
 * Applies every object, up to {@link APPLY_CONCURRENCY} at a time, and reports them in the order
 * given. The first failure stops new applies and is thrown once those in flight have settled.
 */
async function applyAll(d: DispatcherConnection, objects: readonly MeshResource[], io: Io): Promise<void> {
  const results: (Promise<MeshResource> | undefined)[] = new Array(objects.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < objects.length) {
      const i = next++;
      results[i] = d.apply(objects[i]!);
      await results[i]!.catch(() => (failed = true));
    }
  };
  await Promise.all(Array.from({ length: Math.min(APPLY_CONCURRENCY, objects.length) }, worker));
  for (const [i, r] of results.entries()) {
    if (!r) break;
    const stored = await r; // throws the first failure, after reporting what was applied before it
    io.out(`${nameOf(objects[i]!)} applied (version ${stored.metadata.resourceVersion})\n`);
  }
}

const nameOf = (o: MeshResource) => `${o.kind.toLowerCase()}/${o.metadata.namespace ?? 'default'}/${o.metadata.name}`;

/** Runs one octoctl command; resolves with the process exit code (0 ok, 1 failure, 2 usage). */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  const { words, flags, files } = parseArgs(argv);
  const [cmd, arg] = words;
  let state: EmbeddedState | undefined;
  try {
    state = readState(flags['state']);
  } catch (err) {
    io.err(`octoctl: ${(err as Error).message}\n`);
    return 1;
  }
  const where = endpoints(flags, state);
  const withDispatcher = async <T>(fn: (d: DispatcherConnection) => Promise<T>): Promise<T> => {
    const d = new DispatcherConnection(where.dispatcher, where.tls);
    try {
      return await fn(d);
    } finally {
      d.close();
    }
  };
  try {
    switch (cmd) {
      case 'status':
        return await status(flags, io, state);
      case 'config-dump': {
        if (!arg) return usage(io, 'config-dump needs a sidecar (node id, or app name in the embedded mesh)');
        const sidecar = state?.sidecars.find((s) => s.nodeId === arg || s.app === arg);
        const admin = flags['admin'] ?? sidecar?.admin;
        if (!admin) throw new Error(`no sidecar ${arg} in ${state ? 'the embedded mesh' : 'any state file'}; pass --admin host:port`);
        const dump = await sidecarConfigDump(admin);
        io.out(flags['output'] === 'json' ? `${JSON.stringify(dump, null, 2)}\n` : stringify(dump));
        return 0;
      }
      case 'validate': {
        if (!files.length) return usage(io, 'validate needs -f <file|dir>');
        const { objects, bad } = loadManifests(files, io);
        io.out(`${objects.length} valid, ${bad} problem${bad === 1 ? '' : 's'}\n`);
        return bad ? 1 : 0;
      }
      case 'apply': {
        if (!files.length) return usage(io, 'apply needs -f <file|dir>');
        const { objects, bad } = loadManifests(files, io);
        if (bad) {
          io.err('nothing applied: fix the problems above first\n');
          return 1;
        }
        await withDispatcher((d) => applyAll(d, objects, io));
        return 0;
      }
      case 'get': {
        const kind = arg ? KIND_ALIASES[arg.toLowerCase()] : undefined;
        if (!kind) return usage(io, `get needs one of: ${Object.keys(KIND_ALIASES).join(', ')}`);
        const list = await withDispatcher((d) => d.list(kind, flags['namespace'] ?? ''));
        if (flags['output'] === 'json') io.out(`${JSON.stringify(list.items, null, 2)}\n`);
        else if (flags['output'] === 'yaml') io.out(list.items.map((o) => stringify(o)).join('---\n'));
        else io.out(printTable(kind, list.items));
        return 0;
      }
      case 'delete': {
        const kind = arg ? KIND_ALIASES[arg.toLowerCase()] : undefined;
        const name = words[2];
        if (!kind || !name) return usage(io, 'delete needs a kind and a name');
        await withDispatcher((d) => d.delete(kind, `${flags['namespace'] ?? 'default'}/${name}`));
        io.out(`${kind.toLowerCase()}/${flags['namespace'] ?? 'default'}/${name} deleted\n`);
        return 0;
      }
      case 'rollout': {
        const action = arg as RolloutAction | undefined;
        const name = words[2];
        if (!action || !ROLLOUT_ACTIONS.includes(action) || !name) return usage(io, `rollout needs one of ${ROLLOUT_ACTIONS.join('|')} and a ProxyVersion name`);
        io.out(await withDispatcher((d) => rolloutAction(d, action, `${flags['namespace'] ?? 'default'}/${name}`)));
        return 0;
      }
      case 'package': {
        const file = words[2];
        if ((arg !== 'push' && arg !== 'sign') || !file) return usage(io, 'package needs push|sign and a file');
        if (arg === 'push') {
          const urlBase = flags['urlBase'];
          if (urlBase !== undefined && !isRepositoryUrl(urlBase)) return usage(io, `--url-base: "${urlBase}" is not an http(s) URL`);
          io.out(await packagePush(file, flags['repository'] ?? state?.repository?.url ?? DEFAULT_REPOSITORY, urlBase));
        } else {
          if (!flags['key']) return usage(io, 'package sign needs --key <ed25519 private key, PEM>');
          io.out(await packageSign(file, flags['key']));
        }
        return 0;
      }
      case undefined:
      case 'help':
        io.out(USAGE);
        return cmd ? 0 : 2;
      default:
        return usage(io, `unknown command ${cmd}`);
    }
  } catch (err) {
    io.err(`octoctl ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}

/** A sidecar's `/config_dump` (the proxy's admin, or the LEGO agent fronting it). */
async function sidecarConfigDump(admin: string): Promise<unknown> {
  const url = `http://${admin}/config_dump`;
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) }).catch((err: Error) => {
    throw new Error(`${url}: ${(err.cause as Error | undefined)?.message ?? err.message}`);
  });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${(await res.text()).trim()}`);
  return res.json();
}

function usage(io: Io, message: string): number {
  io.err(`octoctl: ${message}\n\n${USAGE}`);
  return 2;
}

/**
 * `get`'s table: a CRD kind's printer columns (the ones `kubectl get` shows, from @octo-mesh/api),
 * else namespace, name, version and a one-line summary.
 */
export function printTable(kind: ResourceKind, items: readonly MeshResource[], now = Date.now()): string {
  const info = kindInfo(kind);
  if (!info) return table(['namespace', 'name', 'version', 'summary'], items.map((o) => [o.metadata.namespace, o.metadata.name, o.metadata.resourceVersion, summary(o)]));
  const cols = info.printerColumns.filter((c) => !c.priority);
  const cell = (o: MeshResource, c: (typeof cols)[number]) => {
    const v = c.jsonPath.split('.').slice(1).reduce<unknown>((x, k) => (x && typeof x === 'object' ? (x as Record<string, unknown>)[k] : undefined), o);
    if (v === undefined || v === null) return undefined;
    return c.type === 'date' ? ago(String(v), now).replace(/ ago$/, '') : String(v);
  };
  return table(['namespace', 'name', ...cols.map((c) => c.name)], items.map((o) => [o.metadata.namespace, o.metadata.name, ...cols.map((c) => cell(o, c))]));
}

/** One line about an object for `get`'s table. */
export function summary(o: MeshResource): string {
  switch (o.kind) {
    case 'RoutePolicy': {
      const rule = o.spec.rules?.[0];
      const split = rule?.route.map((d) => `${d.subset ?? '*'}=${d.weight ?? 100}`).join(',');
      return `${o.spec.targetRef.service}${split ? ` ${split}` : ''}`;
    }
    case 'ProxyVersion':
      return o.spec.version;
    case 'AuthorizationPolicy':
      return `${o.spec.service} ${o.spec.action} ${o.spec.rules?.length ?? 0} rules`;
    case 'Service':
      return o.spec.ports.map((p) => `${p.port}/${p.protocol}`).join(',');
    case 'ServiceEndpoints':
      return `${o.spec.endpoints.filter((e) => e.healthy).length}/${o.spec.endpoints.length} healthy`;
    case 'Workload':
      return `${o.spec.instances.length} instances`;
    case 'EndpointHealth': {
      const down = o.spec.endpoints.filter((e) => !e.healthy).map((e) => `${e.address}:${e.port}`);
      return `${o.spec.endpoints.length - down.length}/${o.spec.endpoints.length} healthy${down.length ? ` (down: ${down.join(', ')})` : ''}${o.spec.suspect ? ' SUSPECT' : ''}`;
    }
  }
}
