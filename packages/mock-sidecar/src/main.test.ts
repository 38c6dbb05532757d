import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from '@jest/globals';
import { REPO_ROOT } from '@octo-mesh/testing';

const main = join(REPO_ROOT, 'packages/mock-sidecar/dist/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 30_000 });

beforeAll(() => {
  execFileSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-b', 'packages/mock-sidecar'], { cwd: REPO_ROOT, stdio: 'inherit' });
}, 300_000);

describe('octo-mock-sidecar', () => {
  it('validates the e2e scenario library', () => {
    const r = run('validate', join(REPO_ROOT, 'e2e/scenarios'));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/01-push-to-affected\.yaml: push-to-affected, \d+ steps: valid/);
  });

  it('rejects a bad scenario naming the step and field (exit 2)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mock-sidecar-cli-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'name: bad\ntemplates: { a: { workload: a } }\nsteps:\n  - start: { template: a }\n  - expectPush: { to: {}, within: soon }\n');
    const r = run('run', file);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('steps[1] (expectPush).within: expected a duration such as 500ms or 2s, got "soon"');
  });

  it('rejects a bad flag naming it (exit 2)', () => {
    const r = run('run', join(REPO_ROOT, 'e2e/scenarios'), '--scale', '-3');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('invalid flag --scale');
  });

  it('on SIGTERM mid-run stops the control plane it started and exits 143', async () => {
    const cli = spawn(process.execPath, [main, 'run', join(REPO_ROOT, 'e2e/scenarios/01-push-to-affected.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    cli.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => cli.once('exit', (code) => r(code)));
    const children = (): number[] => {
      try {
        return readFileSync(`/proc/${cli.pid}/task/${cli.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      } catch {
        return [];
      }
    };
    // Dispatcher, meta server and at least one pilot: real child processes of the CLI.
    const deadline = Date.now() + 60_000;
    let pids: number[] = [];
    while ((pids = children()).length < 3) {
      if (Date.now() > deadline) throw new Error(`control plane not started within 60 s: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    cli.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(stderr).toContain('SIGTERM: stopping the control plane this run started');
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 90_000);
});
