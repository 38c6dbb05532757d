import type { EmbeddedState } from '@octo-mesh/contracts';

export interface DashboardInput {
  state: EmbeddedState;
  /** req/s per `service/version`. */
  rates: ReadonlyMap<string, number>;
  requests: number;
  failures: number;
  /** nodeId → pilot currently serving it. */
  pilotOf: ReadonlyMap<string, string | undefined>;
  /** nodeId → its LEGO agent: the proxy version it runs, its phase, its target. */
  agents?: ReadonlyMap<string, { runningVersion: string; phase: string; target: string | null }>;
  exits: readonly { name: string; signal: string | null; code: number | null }[];
  uptimeS: number;
}

const pad = (s: string, n: number) => s.padEnd(n);

/** The runner's screen: where to look, live rates per service and version, which pilot serves which sidecar, what to try. Pure. */
export function renderDashboard(d: DashboardInput): string {
  const { state } = d;
  const lines: string[] = [];
  lines.push(`octo-mesh embedded — up ${Math.floor(d.uptimeS)}s  (Ctrl-C stops everything; logs in .octo/embedded/logs/)`);
  lines.push('');
  lines.push('Control plane');
  lines.push(`  dispatcher   grpc ${state.dispatcher.grpc}   http://${state.dispatcher.admin}/debug/watchers  /debug/store?kind=RoutePolicy`);
  lines.push(`  meta server  grpc ${state.meta.grpc}   http://${state.meta.admin}/debug/sidecars  /debug/pilots  /debug/assignments`);
  const dead = new Set(d.exits.map((e) => e.name));
  for (const p of state.pilots) lines.push(`  ${pad(p.id, 11)}  xds  ${p.xds}   http://${p.admin}/debug/syncz   pid ${p.pid ?? '-'}${dead.has(p.id) ? '   (exited)' : ''}`);
  lines.push('');
  lines.push(`Traffic (req/s over the last 5 s; ${d.requests} requests, ${d.failures} failed)`);
  const byService = new Map<string, [string, number][]>();
  for (const [series, rate] of d.rates) {
    const [service = series, version = ''] = series.split('/');
    byService.set(service, [...(byService.get(service) ?? []), [version, rate]]);
  }
  if (!byService.size) lines.push('  (waiting for traffic)');
  for (const [service, versions] of byService) {
    const sum = versions.reduce((s, [, r]) => s + r, 0);
    for (const [version, rate] of versions) {
      const share = sum ? Math.round((100 * rate) / sum) : 0;
      lines.push(`  ${pad(service, 10)} ${pad(version, 4)} ${rate.toFixed(1).padStart(6)}  ${'█'.repeat(Math.round(share / 4)).padEnd(25)} ${share}%`);
    }
  }
  lines.push('');
  lines.push('Sidecars → pilot, proxy version (LEGO agent)');
  for (const s of state.sidecars) {
    const a = d.agents?.get(s.nodeId);
    const proxy = a ? `proxy ${a.runningVersion}${a.phase !== 'Idle' ? ` ${a.phase}` : ''}${a.target && a.target !== a.runningVersion ? ` → ${a.target}` : ''}` : 'proxy ?';
    lines.push(`  ${pad(s.nodeId, 22)} ${pad(d.pilotOf.get(s.nodeId) ?? '(none)', 9)} ${pad(proxy, 26)} admin http://${s.admin}/config_dump`);
  }
  lines.push('');
  lines.push('Try');
  lines.push(`  edit ${state.manifests}/catalog.yaml (weights of v1/v2)  → the catalog split follows within a second`);
  const frontend = state.sidecars.find((s) => s.workload === 'frontend') ?? state.sidecars[0];
  const serving = state.pilots.find((p) => p.id === d.pilotOf.get(frontend?.nodeId ?? '') && !dead.has(p.id)) ?? state.pilots.find((p) => !dead.has(p.id));
  if (serving && state.pilots.filter((p) => !dead.has(p.id)).length > 1)
    lines.push(`  kill ${serving.pid ?? '<pid>'}   (${serving.id}, serving ${frontend?.nodeId ?? 'frontend'})  → its sidecars move to the other pilot; no request fails`);
  lines.push('  npm run demo:upgrade -- --version 1.1.0   → a new proxy release rolls out in place: canary, half, all (--broken: canary fails, rolls back)');
  lines.push('  npm run octoctl -- status  |  npm run octoctl -- get routepolicies  |  npm run octoctl -- get pxv  |  npm run octoctl -- rollout status <name> -n demo');
  return `${lines.join('\n')}\n`;
}
