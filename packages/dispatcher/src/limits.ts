/**
 * Bounds on what a client may send, checked before any parser runs: a YAML or JSON parser's cost
 * grows with nesting (a 200 KB `[[[[…` took the YAML parser seconds of CPU), so the shape of the
 * text is checked first, in one linear pass.
 */
import { ValidationError } from '@octo-mesh/runtime';

/** Largest object Apply takes (the API server's etcd limit is about 1.5 MiB). */
export const MAX_OBJECT_BYTES = 1024 * 1024;
/** Deepest nesting of `[`/`{` (flow collections, JSON) or indentation levels Apply takes. */
export const MAX_NESTING = 32;

/**
 * Throws ValidationError (field `json`) when `text` is larger than `maxBytes` or nests deeper than
 * `maxDepth` — counted over brackets outside quoted strings, and over block indentation (each
 * deeper indentation than the line before is one level) — without parsing it.
 */
export function checkDocumentShape(text: string, maxBytes = MAX_OBJECT_BYTES, maxDepth = MAX_NESTING): void {
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) throw new ValidationError('request', [{ path: 'json', message: `object is ${bytes} bytes; at most ${maxBytes} are accepted` }]);
  let depth = 0;
  let quote = '';
  const indents: number[] = [];
  let lineStart = true;
  let indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\' && quote === '"') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (lineStart) {
      if (c === ' ') {
        indent++;
        continue;
      }
      if (c !== '\n' && c !== '#') {
        while (indents.length && indents[indents.length - 1]! >= indent) indents.pop();
        indents.push(indent);
        if (indents.length + depth > maxDepth) break;
      }
      lineStart = false;
    }
    if (c === '\n') {
      lineStart = true;
      indent = 0;
    } else if ((c === '"' || c === "'") && (i === 0 || ' \t:[{,\n-'.includes(text[i - 1]!))) quote = c; // a quoted scalar starts a token; `it's` does not quote
    else if (c === '[' || c === '{') {
      if (++depth + indents.length > maxDepth) break;
    } else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
  }
  if (depth + indents.length > maxDepth) throw new ValidationError('request', [{ path: 'json', message: `nested deeper than ${maxDepth} levels` }]);
}
