import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { envValues, formatPath, loadConfig, parseFlags } from './config.js';

const schema = z.object({
  xdsPort: z.coerce.number().int().min(1).max(65535).default(15010),
  logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
  pilotId: z.string().min(1),
});

describe('formatPath', () => {
  it.each([
    [['spec', 'rules', 1, 'route', 0, 'weight'], 'spec.rules[1].route[0].weight'],
    [[0, 'a'], '[0].a'],
    [[], ''],
  ])('%j → %s', (path, expected) => expect(formatPath(path)).toBe(expected));
});

describe('parseFlags / envValues', () => {
  it('reads --a=b, --a b and bare --a', () => {
    expect(parseFlags(['positional', '--xds-port=1', '--log-level', 'debug', '--verbose'])).toEqual({ xdsPort: '1', logLevel: 'debug', verbose: 'true' });
  });
  it('reads prefixed environment variables', () => {
    expect(envValues({ OCTO_PILOT_XDS_PORT: '2', OTHER: 'x' }, 'OCTO_PILOT_')).toEqual({ xdsPort: '2' });
  });
});

describe('loadConfig', () => {
  it('merges defaults < file < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'pilotId: from-file\nlogLevel: warn\nxdsPort: 1\n');
    const cfg = loadConfig(schema, { envPrefix: 'OCTO_T_', file, env: { OCTO_T_XDS_PORT: '2' }, argv: ['--log-level=debug'] });
    expect(cfg).toEqual({ pilotId: 'from-file', logLevel: 'debug', xdsPort: 2 });
  });

  it.each([
    [['--pilot-id=a', '--xds-port=99999'], {}, /xdsPort: .*\(from flag --xds-port\)/],
    [[], { OCTO_T_PILOT_ID: 'a', OCTO_T_LOG_LEVEL: 'loud' }, /logLevel: .*\(from env OCTO_T_LOG_LEVEL\)/],
    [[], {}, /pilotId: .*\(from default\)/],
  ])('rejects %j %j naming the field and its source', (argv, env, message) => {
    expect(() => loadConfig(schema, { envPrefix: 'OCTO_T_', argv, env })).toThrow(ConfigError);
    expect(() => loadConfig(schema, { envPrefix: 'OCTO_T_', argv, env })).toThrow(message);
  });
});
