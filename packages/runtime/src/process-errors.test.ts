// The process-level error policy, in a real child process: an uncaught exception and an unhandled
// rejection are logged with their stack, /readyz turns 503 naming them, the shutdown hooks run,
// and the process exits 1 (so a supervisor restarts it).
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from '@jest/globals';
import { createMetricsRegistry, recordError } from './metrics.js';

const RUNTIME = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'octo-fatal-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A component: admin server, shutdown hooks; `fail()` throws once /readyz was read as ok. */
function script(fail: string): string {
  return `
import { GracefulShutdown, createLogger, createMetricsRegistry, startAdminServer } from ${JSON.stringify(RUNTIME)};
const logger = createLogger('t');
const admin = await startAdminServer({ port: 0, registry: createMetricsRegistry('t'), readiness: { started: () => true } });
new GracefulShutdown({ logger }).install().add('admin', async () => {
  const r = await fetch('http://127.0.0.1:' + admin.port + '/readyz');
  logger.info('readyz during shutdown', { status: r.status, body: await r.text() });
  await admin.close();
});
process.stdin.once('data', () => { ${fail} });
logger.info('up', { port: admin.port });
`;
}

async function runUntilExit(fail: string): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(file, script(fail));
  const child = spawn(process.execPath, [file], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  let told = false;
  // Told once: every later chunk still contains "up", and by then the child may be gone (EPIPE).
  child.stdin.on('error', () => undefined);
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
    if (!told && out.includes('"up"')) {
      told = true;
      child.stdin.write('go\n');
    }
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, lines: out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('process error policy', () => {
  it.each([
    // kind, what the process does
    ['uncaughtException', "setTimeout(() => { throw new Error('boom in a timer'); }, 0);", 'boom in a timer'],
    ['unhandledRejection', "Promise.reject(new Error('nobody waits for me'));", 'nobody waits for me'],
  ])('%s: logged with its stack, /readyz 503, hooks run, exit 1', async (kind, fail, message) => {
    const { code, lines } = await runUntilExit(fail);
    expect(code).toBe(1);
    const fatal = lines.find((l) => l['message'] === 'fatal error; stopping for a restart');
    expect(fatal).toMatchObject({ level: 'error', kind, error: message });
    expect(String(fatal?.['stack'])).toContain(message);
    const readyz = lines.find((l) => l['message'] === 'readyz during shutdown');
    expect(readyz).toMatchObject({ status: 503 });
    expect(String(readyz?.['body'])).toContain(`process: ${kind}: ${message}`);
  }, 20_000);

  it('recordError logs with context and counts per place', async () => {
    const registry = createMetricsRegistry('t');
    const logged: unknown[] = [];
    const logger = { log: (...a: unknown[]) => void logged.push(a) };
    recordError(logger, 'test-place', new Error('nope'), { key: 'a/b' });
    recordError(logger, 'test-place', 'plain');
    expect(logged[0]).toEqual(['warn', 'test-place failed', { key: 'a/b', error: 'nope' }]);
    expect(await registry.getSingleMetricAsString('octo_errors_total')).toMatch(/octo_errors_total\{where="test-place"\} [2-9]/);
  });
});
