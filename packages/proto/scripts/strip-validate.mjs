// Removes protoc-gen-validate annotations from a .proto file's text.
//
// Why: the Envoy API protos that @grpc/grpc-js-xds ships under deps/ use validate options
// (e.g. `ignore_empty`) that the validate.proto shipped beside them does not define, so buf and
// protoc refuse to compile them. The annotations only drive PGV's generated validators: they do
// not change a message's fields, numbers or wire format, and ts-proto ignores them. Removing them
// (and the import of validate.proto) is therefore lossless for our generated code.
//
// This is a small proto lexer rather than a regex, so option values spanning lines, nested
// aggregates (`{...}`), strings and comments are handled exactly.

/** @typedef {{ kind: 'ws'|'comment'|'string'|'word'|'punct', text: string, start: number, end: number }} Token */

/** @param {string} src @returns {Token[]} */
export function tokenize(src) {
  /** @type {Token[]} */
  const tokens = [];
  let i = 0;
  while (i < src.length) {
    const start = i;
    const c = src[i];
    let kind;
    if (/\s/.test(c)) {
      while (i < src.length && /\s/.test(src[i])) i++;
      kind = 'ws';
    } else if (c === '/' && src[i + 1] === '/') {
      while (i < src.length && src[i] !== '\n') i++;
      kind = 'comment';
    } else if (c === '/' && src[i + 1] === '*') {
      const close = src.indexOf('*/', i + 2);
      if (close < 0) throw new Error(`unterminated block comment at offset ${i}`);
      i = close + 2;
      kind = 'comment';
    } else if (c === '"' || c === "'") {
      i++;
      while (i < src.length && src[i] !== c) i += src[i] === '\\' ? 2 : 1;
      if (i >= src.length) throw new Error(`unterminated string at offset ${start}`);
      i++;
      kind = 'string';
    } else if (/[A-Za-z0-9_.+-]/.test(c)) {
      // Identifiers, numbers (incl. 1e-3, -1) and dotted names are one word; `.` alone is punct.
      while (i < src.length && /[A-Za-z0-9_]/.test(src[i])) i++;
      if (i === start) i++;
      kind = c === '.' || c === '-' || c === '+' ? 'punct' : 'word';
    } else {
      i++;
      kind = 'punct';
    }
    tokens.push({ kind, text: src.slice(start, i), start, end: i });
  }
  return tokens;
}

const OPEN = { '{': '}', '[': ']', '(': ')', '<': '>' };

/**
 * @param {string} src proto source
 * @returns {string} the same source without validate imports and options
 */
export function stripValidate(src) {
  const all = tokenize(src);
  const sig = all.filter((t) => t.kind !== 'ws' && t.kind !== 'comment');
  /** @type {{start:number,end:number,text:string}[]} */
  const edits = [];

  const isValidateOptionAt = (k) =>
    sig[k]?.text === '(' && sig[k + 1]?.text === 'validate' && sig[k + 2]?.text === '.';

  // Index of the token that closes the bracket opened at k (which must be an opener).
  const closeOf = (k) => {
    const stack = [];
    for (let j = k; j < sig.length; j++) {
      const t = sig[j].text;
      if (sig[j].kind === 'punct' && t in OPEN && t !== '<') stack.push(OPEN[t]);
      else if (sig[j].kind === 'punct' && stack.length && t === stack[stack.length - 1]) {
        stack.pop();
        if (stack.length === 0) return j;
      }
    }
    throw new Error(`unbalanced '${sig[k].text}' at offset ${sig[k].start}`);
  };

  for (let k = 0; k < sig.length; k++) {
    const t = sig[k];
    if (t.kind === 'word' && t.text === 'import') {
      let s = k + 1;
      if (sig[s]?.text === 'public' || sig[s]?.text === 'weak') s++;
      if (sig[s]?.kind === 'string' && /validate\/validate\.proto/.test(sig[s].text) && sig[s + 1]?.text === ';') {
        edits.push({ start: t.start, end: sig[s + 1].end, text: '' });
        k = s + 1;
      }
    } else if (t.kind === 'word' && t.text === 'option' && isValidateOptionAt(k + 1)) {
      // `option (validate.required) = true;` or with an aggregate value `{...}`.
      let j = k + 1;
      while (j < sig.length && sig[j].text !== ';') j = sig[j].text in OPEN && sig[j].text !== '<' ? closeOf(j) + 1 : j + 1;
      edits.push({ start: t.start, end: sig[j].end, text: '' });
      k = j;
    } else if (t.text === '[' && sig[k - 1]?.kind === 'word' && /^\d/.test(sig[k - 1].text) && sig[k - 2]?.text === '=') {
      // Field or enum-value options: `= 3 [a = 1, (validate.rules).x = {...}]`.
      const close = closeOf(k);
      const items = [];
      let itemStart = k + 1;
      for (let j = k + 1; j <= close; j++) {
        if (j === close || sig[j].text === ',') {
          if (j > itemStart) items.push([itemStart, j - 1]);
          itemStart = j + 1;
        } else if (sig[j].text in OPEN && sig[j].text !== '<') {
          j = closeOf(j);
        }
      }
      const kept = items.filter(([a]) => !isValidateOptionAt(a));
      if (kept.length === items.length) continue;
      const text = kept.length ? `[${kept.map(([a, b]) => src.slice(sig[a].start, sig[b].end)).join(', ')}]` : '';
      // Also swallow the whitespace before a fully removed list, so `= 3 ;` reads `= 3;`.
      const start = kept.length ? t.start : sig[k - 1].end;
      edits.push({ start, end: sig[close].end, text });
      k = close;
    }
  }

  let out = src;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}
