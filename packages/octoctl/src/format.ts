/** Renders rows as an aligned text table, kubectl style: upper-case headers, two spaces between columns. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number | undefined)[])[]): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === undefined || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

/** "1.2s ago" from an ISO time (or "-" when absent). */
export function ago(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const ms = now - Date.parse(iso);
  if (!Number.isFinite(ms)) return '-';
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)}s ago` : `${Math.round(ms / 60_000)}m ago`;
}
