import { z } from 'zod';

/**
 * A cross-field rule, written once and enforced twice: as a CEL rule in the generated CRD (so the
 * API server rejects the object) and as a zod refinement (so embedded mode and `octoctl validate`
 * reject it with the same message). Keep `check` and `cel` equivalent; the CRD tests on a real
 * API server and the example tables prove they agree.
 */
export interface CrossRule<T> {
  /** CEL expression over `self` (and `oldSelf` for transition rules); true means valid. */
  cel: string;
  /** Static message (CEL `message`). */
  message?: string;
  /** CEL `messageExpression`, for messages that quote the bad value. */
  messageExpression?: string;
  /** Where the error points, relative to this object, e.g. ['route'] (CEL `fieldPath`). */
  path?: (string | number)[];
  /** CEL `reason` (FieldValueInvalid unless set). */
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  /** The zod side: true when valid, else the message (equal to what the CEL rule says). */
  check: (value: T) => true | string;
}

/** K8s `x-kubernetes-validations` entry. */
export interface CelValidation {
  rule: string;
  message?: string;
  messageExpression?: string;
  fieldPath?: string;
  reason?: string;
}

function celFieldPath(path: (string | number)[] | undefined): string | undefined {
  if (!path?.length) return undefined;
  return path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('');
}

/** Attaches cross-field rules to an object schema (CEL metadata + zod refinement). */
export function withRules<S extends z.ZodType>(schema: S, rules: CrossRule<z.output<S>>[]): S {
  const existing = (schema.meta()?.['x-kubernetes-validations'] as CelValidation[] | undefined) ?? [];
  const cel: CelValidation[] = rules
    .filter((r) => !r.cel.includes('oldSelf'))
    .map((r) => ({
      rule: r.cel,
      ...(r.messageExpression ? { messageExpression: r.messageExpression } : { message: r.message ?? r.cel }),
      ...(celFieldPath(r.path) ? { fieldPath: celFieldPath(r.path) } : {}),
      ...(r.reason ? { reason: r.reason } : {}),
    }));
  const withMeta = schema.meta({ ...schema.meta(), 'x-kubernetes-validations': [...existing, ...cel] });
  return withMeta.superRefine((value, ctx) => {
    // Cross-field rules only judge an object whose fields are valid on their own, so a bad
    // field is reported once, not again by every rule that reads it.
    if (ctx.issues.length > 0) return;
    for (const r of rules) {
      const verdict = r.check(value);
      // zod prepends the parents' path segments to an issue's path in place: pass a copy.
      if (verdict !== true) ctx.addIssue({ code: 'custom', message: verdict, path: [...(r.path ?? [])] });
    }
  }) as unknown as S;
}

/**
 * Transition rules (`oldSelf`) only make sense on the API server: they compare an update with
 * the stored object. Embedded mode enforces them in its store instead (see `checkTransition`).
 */
export function withTransitionRules<S extends z.ZodType>(schema: S, rules: CelValidation[]): S {
  const existing = (schema.meta()?.['x-kubernetes-validations'] as CelValidation[] | undefined) ?? [];
  return schema.meta({ ...schema.meta(), 'x-kubernetes-validations': [...existing, ...rules] }) as S;
}

/** How many of the values are present (for "exactly one of" rules). */
export function countPresent(...values: unknown[]): number {
  return values.filter((v) => v !== undefined).length;
}

/** CEL for "exactly one of these fields is set". */
export function celExactlyOne(fields: string[]): string {
  return `[${fields.map((f) => `has(self.${f})`).join(', ')}].filter(x, x).size() == 1`;
}
