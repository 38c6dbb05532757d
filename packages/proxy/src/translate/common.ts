import type { Duration } from '@octo-mesh/proto/gen/proxy/google/protobuf/duration.js';
import type { HeaderValueOption } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import type { Address } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/address.js';
import { HTTPFault } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/fault/v3/fault.js';
import { LocalRateLimit } from '@octo-mesh/proto/gen/proxy/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.js';
import { TYPE_URL } from '@octo-mesh/proto/proxy-codecs.js';
import type { Any } from '@octo-mesh/proto/gen/proxy/google/protobuf/any.js';
import type { StringMatcher } from '@octo-mesh/proto/gen/proxy/envoy/type/matcher/v3/string.js';
import type { FractionalPercent } from '@octo-mesh/proto/gen/proxy/envoy/type/v3/percent.js';
import { FractionalPercent_DenominatorType } from '@octo-mesh/proto/gen/proxy/envoy/type/v3/percent.js';
import { HeaderValueOption_HeaderAppendAction } from '@octo-mesh/proto/gen/proxy/envoy/config/core/v3/base.js';
import { SafeRegex } from './regex.js';
import { HTTP_FAULT, LOCAL_RATE_LIMIT, checkFields } from './allow-list.js';
import type { FaultSpec, HeaderAdd, RateLimitSpec, SocketAddr, StringMatch } from '../model.js';

/**
 * Thrown inside a translator to abort it with a message naming the field; caught at the
 * translator's edge and turned into `{ok: false}`. Never escapes `translate/`.
 */
export class InvalidField extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

export function invalid(path: string, message: string): never {
  throw new InvalidField(path, message);
}

/** Runs a translator body, turning InvalidField into an error result prefixed by `subject`. */
export function guard<T>(subject: string, body: () => T): { ok: true; value: T } | { ok: false; error: string } {
  try {
    return { ok: true, value: body() };
  } catch (err) {
    if (err instanceof InvalidField) return { ok: false, error: `${subject}: ${err.message}` };
    throw err;
  }
}

export function durationMs(d: Duration | undefined, fallbackMs: number): number {
  if (!d) return fallbackMs;
  return Math.round(Number(d.seconds) * 1000 + d.nanos / 1e6);
}

export function fraction(p: FractionalPercent | undefined, fallback: number): number {
  if (!p) return fallback;
  const denom =
    p.denominator === FractionalPercent_DenominatorType.TEN_THOUSAND
      ? 10_000
      : p.denominator === FractionalPercent_DenominatorType.MILLION
        ? 1_000_000
        : 100;
  return Math.min(1, p.numerator / denom);
}

/** Compiles an RE2 pattern (Envoy's `safe_regex`) as a full-string match, or aborts naming `path`. */
export function compileRegex(pattern: string, path: string, ignoreCase = false): SafeRegex {
  const r = SafeRegex.compile(pattern, ignoreCase);
  if (!r.ok) return invalid(path, `invalid regex ${JSON.stringify(pattern)} (RE2 syntax): ${r.error}`);
  return r.value;
}

export function stringMatch(m: StringMatcher | undefined, path: string): StringMatch {
  if (!m) return invalid(path, 'a string matcher is required');
  const ignoreCase = m.ignoreCase;
  if (m.exact !== undefined) return { kind: 'exact', value: m.exact, ignoreCase };
  if (m.prefix !== undefined) return { kind: 'prefix', value: m.prefix, ignoreCase };
  if (m.suffix !== undefined) return { kind: 'suffix', value: m.suffix, ignoreCase };
  if (m.contains !== undefined) return { kind: 'contains', value: m.contains, ignoreCase };
  if (m.safeRegex !== undefined) return { kind: 'regex', regex: compileRegex(m.safeRegex.regex, `${path}.safe_regex.regex`) };
  return invalid(path, 'unsupported string matcher (want exact, prefix, suffix, contains or safe_regex)');
}

const HEADER_NAME = /^:?[a-z0-9!#$%&'*+\-.^_`|~]+$/;

export function headerAdds(opts: readonly HeaderValueOption[], path: string): HeaderAdd[] {
  return opts.map((o, i) => {
    const name = (o.header?.key ?? '').toLowerCase();
    if (!HEADER_NAME.test(name)) invalid(`${path}[${i}].header.key`, `invalid header name ${JSON.stringify(o.header?.key ?? '')}`);
    if (/[\r\n\0]/.test(o.header?.value ?? '')) invalid(`${path}[${i}].header.value`, 'must not contain CR, LF or NUL');
    let action: HeaderAdd['action'];
    if (o.append !== undefined) action = o.append ? 'append' : 'overwrite';
    else if (o.appendAction === HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD) action = 'overwrite';
    else if (o.appendAction === HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT) action = 'if-absent';
    else if (o.appendAction === HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD) action = 'append';
    else invalid(`${path}[${i}].append_action`, 'unsupported append action');
    return { name, value: o.header?.value ?? '', action };
  });
}

export function headerNames(names: readonly string[], path: string): string[] {
  return names.map((n, i) => {
    const name = n.toLowerCase();
    if (!HEADER_NAME.test(name) || name.startsWith(':') || name === 'host')
      invalid(`${path}[${i}]`, `cannot remove header ${JSON.stringify(n)}`);
    return name;
  });
}

export function socketAddr(a: Address | undefined, path: string): SocketAddr {
  if (a?.pipe) {
    if (!a.pipe.path) invalid(`${path}.pipe.path`, 'must not be empty');
    return { kind: 'pipe', path: a.pipe.path };
  }
  const s = a?.socketAddress;
  if (!s) return invalid(path, 'socket_address or pipe is required');
  if (!s.address) invalid(`${path}.socket_address.address`, 'must not be empty');
  const port = s.portValue;
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535)
    invalid(`${path}.socket_address.port_value`, `must be a port number, got ${String(port)}`);
  return { kind: 'tcp', host: s.address, port };
}

export const FILTER = {
  hcm: 'envoy.filters.network.http_connection_manager',
  tcpProxy: 'envoy.filters.network.tcp_proxy',
  router: 'envoy.filters.http.router',
  localRateLimit: 'envoy.filters.http.local_ratelimit',
  fault: 'envoy.filters.http.fault',
} as const;

export const FILTER_TYPE_URL = {
  localRateLimit: 'type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  router: TYPE_URL.router,
} as const;

function decodeAs<T>(any: Any, codec: { decode(b: Uint8Array): T }, path: string): T {
  try {
    return codec.decode(any.value);
  } catch (err) {
    return invalid(path, `cannot decode ${any.typeUrl}: ${(err as Error).message}`);
  }
}

export function rateLimitSpec(any: Any, path: string): RateLimitSpec {
  if (any.typeUrl !== FILTER_TYPE_URL.localRateLimit) invalid(`${path}.type_url`, `expected ${FILTER_TYPE_URL.localRateLimit}, got ${any.typeUrl}`);
  const c = decodeAs(any, LocalRateLimit, path);
  checkFields(LOCAL_RATE_LIMIT, c, path);
  const tb = c.tokenBucket;
  if (!tb) return invalid(`${path}.token_bucket`, 'is required');
  if (!(tb.maxTokens > 0)) invalid(`${path}.token_bucket.max_tokens`, 'must be greater than 0');
  const fillIntervalMs = durationMs(tb.fillInterval, 0);
  if (!(fillIntervalMs > 0)) invalid(`${path}.token_bucket.fill_interval`, 'must be greater than 0');
  const status = c.status?.code ?? 429;
  return {
    maxTokens: tb.maxTokens,
    tokensPerFill: tb.tokensPerFill ?? 1,
    fillIntervalMs,
    enabled: fraction(c.filterEnabled?.defaultValue, 0),
    enforced: fraction(c.filterEnforced?.defaultValue, 0),
    status: status >= 400 && status < 600 ? status : 429,
  };
}

export function faultSpec(any: Any, path: string): FaultSpec {
  if (any.typeUrl !== FILTER_TYPE_URL.fault) invalid(`${path}.type_url`, `expected ${FILTER_TYPE_URL.fault}, got ${any.typeUrl}`);
  const f = decodeAs(any, HTTPFault, path);
  checkFields(HTTP_FAULT, f, path);
  const out: FaultSpec = {};
  if (f.delay) {
    if (!f.delay.fixedDelay) invalid(`${path}.delay.fixed_delay`, 'is required (header-controlled delays are not implemented)');
    out.delay = { ms: durationMs(f.delay.fixedDelay, 0), fraction: fraction(f.delay.percentage, 1) };
  }
  if (f.abort) {
    const { httpStatus, grpcStatus } = f.abort;
    if (httpStatus === undefined && grpcStatus === undefined)
      invalid(`${path}.abort`, 'http_status or grpc_status is required (header-controlled aborts are not implemented)');
    if (httpStatus !== undefined && (httpStatus < 200 || httpStatus >= 600)) invalid(`${path}.abort.http_status`, `must be in [200, 600), got ${httpStatus}`);
    out.abort = { fraction: fraction(f.abort.percentage, 1) };
    if (httpStatus !== undefined) out.abort.httpStatus = httpStatus;
    if (grpcStatus !== undefined) out.abort.grpcStatus = grpcStatus;
  }
  return out;
}
