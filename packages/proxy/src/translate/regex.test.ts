import { describe, expect, it } from '@jest/globals';
import { TYPE_URL } from '@octo-mesh/proto';
import { SafeRegex } from './regex.js';
import { fromEnvoyJson, translateRouteConfiguration } from './index.js';
import { matchRoute } from '../data/router.js';
import type { RouteConfiguration } from '@octo-mesh/proto';

const compile = (p: string, ignoreCase = false) => {
  const r = SafeRegex.compile(p, ignoreCase);
  if (!r.ok) throw new Error(r.error);
  return r.value;
};

describe('SafeRegex (RE2 semantics)', () => {
  // columns: pattern, input, full match?
  it.each<[string, string, boolean]>([
    ['/items/[0-9]+', '/items/42', true],
    ['/items/[0-9]+', '/items/42/x', false], // a full match, as Envoy's safe_regex
    ['/items/[0-9]+', 'x/items/42', false],
    ['/v\\d+/.*', '/v2/a/b', true], // Perl classes are RE2
    ['(?i)/API/.*', '/api/x', true], // inline flags are RE2
    ['/(?P<id>[^/]+)', '/abc', true], // named groups, both spellings
    ['/(?<id>[^/]+)', '/abc', true],
    ['[[:alpha:]]+', 'abc', true], // POSIX classes are RE2
    ['\\pL+', 'héllo', true], // Unicode classes
    ['.', '😀', true], // a code point, not a UTF-16 unit
    ['a|b', 'ab', false],
    ['(a+)+b', 'aaab', true],
    ['(a+)+b', 'aaaa', false],
  ])('%s on %s → %s', (pattern, input, want) => {
    expect(compile(pattern).test(input)).toBe(want);
  });

  it('ignores case when asked (case_sensitive: false)', () => {
    expect(compile('/api/[a-z]+', true).test('/API/Items')).toBe(true);
    expect(compile('/api/[a-z]+').test('/API/Items')).toBe(false);
  });

  // columns: what, pattern, the error (as Envoy's RE2 would refuse it)
  it.each<[string, string, string]>([
    ['look-ahead', '/api/(?=v1).*', 'invalid or unsupported Perl syntax: `(?='],
    ['negative look-ahead', '/api/(?!v1).*', 'invalid or unsupported Perl syntax: `(?!'],
    ['look-behind', '(?<=/api)/x', 'invalid named capture'],
    ['negative look-behind', '(?<!/api)/x', 'invalid named capture'],
    ['a back-reference', '(a+)-\\1', 'invalid escape sequence: `\\1`'],
    ['a named back-reference', '(?<x>a)\\k<x>', 'invalid escape sequence: `\\k`'],
    ['a possessive quantifier', 'a++', 'invalid nested repetition operator'],
    ['a repeat count over 1000', 'a{1001}', 'invalid repeat count'],
    ['an unclosed group', '/api/(v1', 'missing closing )'],
  ])('refuses %s', (_what, pattern, error) => {
    const r = SafeRegex.compile(pattern);
    expect(r.ok ? '(compiled)' : r.error).toContain(error);
  });

  it('prints as re2:/source/flags in golden files and config dumps', () => {
    expect(JSON.stringify({ r: compile('[a-z]+', true) })).toBe('{"r":"re2:/[a-z]+/i"}');
  });
});

describe('ReDoS: (a+)+b through the router', () => {
  const rc = fromEnvoyJson<RouteConfiguration>(TYPE_URL.route, {
    name: 'r',
    virtual_hosts: [
      {
        name: 'vh',
        domains: ['*'],
        routes: [
          { name: 'evil', match: { safe_regex: { regex: '/(a+)+b' } }, route: { cluster: 'evil' } },
          { name: 'evil-header', match: { prefix: '/', headers: [{ name: 'x-id', string_match: { safe_regex: { regex: '(a+)+b' } } }] }, route: { cluster: 'evil' } },
          { name: 'default', match: { prefix: '/' }, route: { cluster: 'ok' } },
        ],
      },
    ],
  });
  if (!rc.ok) throw new Error(rc.error);
  const table = translateRouteConfiguration(rc.value);
  if (!table.ok) throw new Error(table.error);
  const vh = table.value.virtualHosts[0]!;

  it.each([28, 40, 1000, 100_000])('a %i-character path answers without backtracking (median well under 1 ms up to 1000 characters)', (n) => {
    const path = `/${'a'.repeat(n - 1)}`;
    const req = { method: 'GET', path, authority: 'x', headers: { 'x-id': 'a'.repeat(n) } };
    matchRoute(vh, req); // the first call compiles re2js's lazy DFA states for the pattern
    const times: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t = process.hrtime.bigint();
      expect(matchRoute(vh, req)?.name).toBe('default');
      times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    times.sort((a, b) => a - b);
    const median = times[10]!;
    // Both regexes run on every request here (path, then the header). Backtracking took 2.3 s at
    // 29 characters and doubles with each one more; this is linear: n = 100 000 stays in milliseconds.
    expect(median).toBeLessThan(n <= 1000 ? 1 : 50);
  });

  it('still matches what the pattern means', () => {
    expect(matchRoute(vh, { method: 'GET', path: '/aaab', authority: 'x', headers: {} })?.name).toBe('evil');
  });
});
