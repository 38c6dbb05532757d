import { RE2JS } from 're2js';

/**
 * A `safe_regex` compiled for RE2's semantics (Envoy's `google_re2`): RE2 syntax, a full match
 * of the input, and matching in time linear in the input whatever the pattern — so one request
 * cannot stall the event loop with a catastrophic-backtracking pattern such as `(a+)+b`.
 *
 * Matching runs on `re2js` (a pure-JS port of RE2/J). Look-around and back-references are not
 * RE2 and are rejected at compile time, as Envoy rejects them.
 */
export class SafeRegex {
  private readonly re: RE2JS;

  private constructor(
    /** The pattern as configured (without anchors). */
    readonly source: string,
    readonly ignoreCase: boolean,
  ) {
    this.re = RE2JS.compile(source, ignoreCase ? RE2JS.CASE_INSENSITIVE : 0);
  }

  /**
   * Compiles `pattern`; returns the RE2 syntax error (e.g. "invalid or unsupported Perl syntax:
   * `(?=`") instead of throwing.
   */
  static compile(pattern: string, ignoreCase = false): { ok: true; value: SafeRegex } | { ok: false; error: string } {
    try {
      return { ok: true, value: new SafeRegex(pattern, ignoreCase) };
    } catch (err) {
      return { ok: false, error: (err as Error).message.replace(/^error parsing regexp: /, '') };
    }
  }

  /** True when the whole of `input` matches. */
  test(input: string): boolean {
    return this.re.matches(input);
  }

  /** How the golden files and `/config_dump` show it. */
  toJSON(): string {
    return `re2:/${this.source}/${this.ignoreCase ? 'i' : ''}`;
  }
}
