import { TOP_LEVEL_RULES, type MessageRule } from './allow-list.js';

export const DOC_BEGIN = '<!-- allow-list:begin -->';
export const DOC_END = '<!-- allow-list:end -->';

/** Every rule reachable from the top-level ones, each once, in the order the README lists them. */
export function allRules(): MessageRule[] {
  const out: MessageRule[] = [];
  const seen = new Set<string>();
  const visit = (r: MessageRule) => {
    const key = `${r.message}|${r.context ?? ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(r);
    for (const f of Object.values(r.read)) if (f !== true) visit(f);
  };
  Object.values(TOP_LEVEL_RULES).forEach(visit);
  return out;
}

/** `Cluster`, `RouteAction.HashPolicy`; with its package where two messages share a name. */
function namer(rules: MessageRule[]): (message: string) => string {
  const bare = (m: string) => m.replace(/^envoy\.(config|extensions|type)\.(.*\.)?v3\./, '');
  const count = new Map<string, number>();
  for (const r of rules) count.set(bare(r.message), (count.get(bare(r.message)) ?? 0) + 1);
  return (m) => ((count.get(bare(m)) ?? 0) > 1 ? m.replace(/^envoy\.(config|extensions)\./, '') : bare(m));
}

/** The README's table of the fields each Envoy message may set (the allow-list, rendered). */
export function renderAllowList(): string {
  const rules = allRules();
  const bare = namer(rules);
  const short = (r: MessageRule) => (r.context ? `${bare(r.message)} (${r.context})` : bare(r.message));
  const rows = rules.map((r) => {
    const read = Object.entries(r.read).map(([name, f]) => (f === true ? `\`${name}\`` : `\`${name}\` (${short(f)})`));
    const byReason = new Map<string, string[]>();
    for (const [name, why] of Object.entries(r.ignored ?? {})) byReason.set(why, [...(byReason.get(why) ?? []), `\`${name}\``]);
    const ignored = [...byReason].map(([why, names]) => `${names.join(', ')}: ${why}`);
    return `| \`${short(r)}\` | ${read.join(', ') || '— (only an empty message)'} | ${ignored.join('; ') || '—'} |`;
  });
  return [
    DOC_BEGIN,
    '<!-- generated from src/translate/allow-list.ts by `npm run gen:proxy-readme`; do not edit -->',
    '',
    '| message | fields acted on | fields accepted and ignored |',
    '| --- | --- | --- |',
    ...rows,
    '',
    DOC_END,
  ].join('\n');
}

/** `readme` with its generated section replaced by `renderAllowList()`; throws without the markers. */
export function withAllowList(readme: string): string {
  const a = readme.indexOf(DOC_BEGIN);
  const b = readme.indexOf(DOC_END);
  if (a < 0 || b < a) throw new Error('README lacks the allow-list markers');
  return readme.slice(0, a) + renderAllowList() + readme.slice(b + DOC_END.length);
}
