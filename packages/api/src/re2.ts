import { RE2JS } from 're2js';

/**
 * Why `pattern` is not a regular expression in RE2 syntax (Envoy's `safe_regex` engine, and what
 * the proxy matches with), e.g. "invalid or unsupported Perl syntax: `(?=`"; undefined when it
 * is one. RE2 has no look-around and no back-references: every pattern it accepts matches in time
 * linear in the input. Compiled with re2js, the same RE2 port the proxy runs.
 */
export function re2SyntaxError(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (err) {
    return (err as Error).message.replace(/^error parsing regexp: /, '');
  }
}
