import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { envValues, formatPath, loadConfig, parseFile, parseFlags, schemaKeys, serviceLinkOf } from './config.js';

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

describe('loadConfig and a shared environment (Kubernetes service links, other tools)', () => {
  // As the sidecar's schemas: strict objects whose fields include ports named like links.
  const sidecar = z
    .object({
      adminPort: z.coerce.number().int().min(0).max(65535).default(15000),
      inboundPort: z.coerce.number().int().min(0).max(65535).default(15006),
      namespace: z.string().default('default'),
    })
    .strict();
  const refined = sidecar.refine((c) => c.adminPort !== c.inboundPort, { path: ['inboundPort'], message: 'must differ from adminPort' });
  const piped = z.preprocess((x) => x, sidecar);

  it.each([
    // what the env holds (prefix OCTO_PROXY_), what loads (or the error it must name)
    ['a Service "octo-proxy": every link var names no field', { OCTO_PROXY_SERVICE_HOST: '10.0.0.1', OCTO_PROXY_SERVICE_PORT: '80', OCTO_PROXY_PORT: 'tcp://10.0.0.1:80', OCTO_PROXY_PORT_80_TCP: 'tcp://10.0.0.1:80', OCTO_PROXY_PORT_80_TCP_PROTO: 'tcp', OCTO_PROXY_PORT_80_TCP_PORT: '80', OCTO_PROXY_PORT_80_TCP_ADDR: '10.0.0.1' }, { adminPort: 15000, inboundPort: 15006, namespace: 'default' }],
    ['a Service "octo-proxy-metrics" with a named port', { OCTO_PROXY_METRICS_SERVICE_HOST: '10.0.0.2', OCTO_PROXY_METRICS_SERVICE_PORT_HTTP: '9090', OCTO_PROXY_METRICS_PORT: 'tcp://10.0.0.2:9090' }, { adminPort: 15000, inboundPort: 15006, namespace: 'default' }],
    ['an unknown variable of a tool or a typo', { OCTO_PROXY_SOMETHING_ELSE: 'x', OCTO_PROXY_ADMIN_PROT: '1' }, { adminPort: 15000, inboundPort: 15006, namespace: 'default' }],
    ['a defined field is still read', { OCTO_PROXY_ADMIN_PORT: '15100', OCTO_PROXY_NAMESPACE: 'shop', OCTO_PROXY_SERVICE_HOST: '10.0.0.1' }, { adminPort: 15100, inboundPort: 15006, namespace: 'shop' }],
    ['a bad value of a defined field is an error naming it', { OCTO_PROXY_ADMIN_PORT: '99999' }, /adminPort: .*\(from env OCTO_PROXY_ADMIN_PORT\)/],
    ['a Service "octo-proxy-admin" collides with a defined field: an error that says so', { OCTO_PROXY_ADMIN_PORT: 'tcp://10.0.0.9:80' }, /adminPort: .*from env OCTO_PROXY_ADMIN_PORT, which looks like the Kubernetes service link of a Service named "octo-proxy-admin"/],
  ])('%s', (_, env, want) => {
    for (const schema of [sidecar, refined, piped]) {
      if (want instanceof RegExp) expect(() => loadConfig(schema, { envPrefix: 'OCTO_PROXY_', argv: [], env })).toThrow(want);
      else expect(loadConfig(schema, { envPrefix: 'OCTO_PROXY_', argv: [], env })).toEqual(want);
    }
  });

  it('a flag wins over a colliding link, so a launcher can pin what it owns', () => {
    expect(loadConfig(sidecar, { envPrefix: 'OCTO_PROXY_', argv: ['--admin-port', '0'], env: { OCTO_PROXY_ADMIN_PORT: 'tcp://10.0.0.9:80' } }).adminPort).toBe(0);
  });

  it('flags and files stay strict: an unknown key there is an error', () => {
    expect(() => loadConfig(sidecar, { envPrefix: 'OCTO_PROXY_', argv: ['--admin-prot', '1'], env: {} })).toThrow(ConfigError);
  });

  it('refinements still apply to what came from the environment', () => {
    expect(() => loadConfig(refined, { envPrefix: 'OCTO_PROXY_', argv: [], env: { OCTO_PROXY_INBOUND_PORT: '15000' } })).toThrow(/inboundPort: must differ from adminPort/);
  });

  it.each([
    // name, value, the Service it is a link of
    ['OCTO_PROXY_ADMIN_PORT', 'tcp://10.0.0.9:80', 'octo-proxy-admin'],
    ['OCTO_AGENT_PORT', 'udp://[fd00::1]:53', 'octo-agent'],
    ['OCTO_PROXY_ADMIN_PORT', '15000', undefined],
    ['OCTO_PROXY_SERVICE_HOST', 'tcp://10.0.0.9:80', undefined],
  ])('serviceLinkOf(%s=%s) → %s', (name, value, service) => expect(serviceLinkOf(name, value)).toBe(service));

  it.each([
    ['object', z.object({ a: z.string(), b: z.number() }), ['a', 'b']],
    ['strict, refined', z.object({ a: z.string() }).strict().refine(() => true), ['a']],
    ['preprocessed', z.preprocess((x) => x, z.object({ a: z.string() })), ['a']],
    ['not an object', z.string(), undefined],
  ])('schemaKeys of %s', (_, schema, keys) => expect(keys === undefined ? schemaKeys(schema) : [...schemaKeys(schema)!].sort()).toEqual(keys));
});

describe('parseFile', () => {
  // columns: what, file content, what it reads as (or the error it throws, as a RegExp)
  it.each<[string, string, unknown]>([
    ['JSON', '{"pilotId": "p", "xdsPort": 1, "nested": {"list": [1, "2", null, true]}}', { pilotId: 'p', xdsPort: 1, nested: { list: [1, '2', null, true] } }],
    ['JSON after blank lines', '\n\n  {"a": "\\u00e9"}\n', { a: 'é' }],
    ['YAML', 'pilotId: p\nxdsPort: 1\n', { pilotId: 'p', xdsPort: 1 }],
    ['a YAML flow mapping (starts like JSON, is not)', '{a: 1, b: [x, y]}', { a: 1, b: ['x', 'y'] }],
    ['empty', '', null],
    ['a JSON key twice: the last value, as JSON.parse reads it', '{"a": 1, "a": 2}', { a: 2 }],
    ['neither', '{"a": 1,, }', /./],
    ['a YAML key twice', 'a: 1\na: 2\n', /unique/],
  ])('%s', (_what, text, want) => {
    if (want instanceof RegExp) expect(() => parseFile(text)).toThrow(want);
    else expect(parseFile(text)).toEqual(want);
  });
});
