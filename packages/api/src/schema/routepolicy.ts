import { z } from 'zod';
import { parseDuration } from '../duration.js';
import {
  API_VERSION,
  celExactlyOne,
  countPresent,
  dnsLabel,
  duration,
  labels,
  objectMeta,
  percent,
  policyStatus,
  regexString,
} from './common.js';
import { RETRY_ON } from '../retry-on.js';
import { withRules } from './rules.js';

const exactlyOne = (fields: string[], what: string) => ({
  cel: celExactlyOne(fields),
  message: `exactly one of ${fields.join(', ')} must be set for ${what}`,
  check: (v: Record<string, unknown>) => countPresent(...fields.map((f) => v[f])) === 1 || `exactly one of ${fields.join(', ')} must be set for ${what}`,
});

const pathMatch = withRules(
  z
    .object({
      exact: z.string().min(1).max(1024).startsWith('/').optional().meta({ description: 'The path equals this.' }),
      prefix: z.string().min(1).max(1024).startsWith('/').optional().meta({ description: 'The path starts with this.' }),
      regex: regexString('The whole path matches this RE2 regular expression.').optional(),
    })
    .strict()
    .meta({ description: 'How the request path must look; exactly one of exact, prefix, regex.' }),
  [exactlyOne(['exact', 'prefix', 'regex'], 'a path match')],
);

const headerMatch = withRules(
  z
    .object({
      name: z.string().min(1).max(256).regex(/^[A-Za-z0-9!#$%&'*+.^_`|~:-]+$/, { message: 'must be an HTTP header name' }).meta({ description: 'Header name (case-insensitive); pseudo-headers such as :authority allowed.' }),
      exact: z.string().max(4096).optional(),
      prefix: z.string().min(1).max(4096).optional(),
      regex: regexString('The whole value matches this RE2 regular expression.').optional(),
      present: z.boolean().optional().meta({ description: 'true: the header is present (any value); false: it is absent.' }),
    })
    .strict()
    .meta({ description: 'A header condition; exactly one of exact, prefix, regex, present.' }),
  [exactlyOne(['exact', 'prefix', 'regex', 'present'], 'a header match')],
);

const queryMatch = withRules(
  z
    .object({
      name: z.string().min(1).max(256),
      exact: z.string().max(4096).optional(),
      regex: regexString('The whole value matches this RE2 regular expression.').optional(),
      present: z.boolean().optional(),
    })
    .strict()
    .meta({ description: 'A query parameter condition; exactly one of exact, regex, present.' }),
  [exactlyOne(['exact', 'regex', 'present'], 'a query parameter match')],
);

const httpMatch = z
  .object({
    path: pathMatch.optional(),
    method: z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']).optional().meta({ description: 'HTTP method.' }),
    headers: z.array(headerMatch).max(16).optional().meta({ description: 'All must match.' }),
    queryParams: z.array(queryMatch).max(16).optional().meta({ description: 'All must match.' }),
  })
  .strict()
  .meta({ description: 'Conditions that must all hold; an empty match matches every request.' });

const destination = z
  .object({
    subset: dnsLabel('A subset named in spec.subsets; omit for all endpoints of the service.').optional(),
    weight: z.number().int().min(0).max(100).optional().meta({ description: 'Share of the rule\'s traffic, percent. Required when a rule has more than one destination; the weights of a rule sum to 100.' }),
  })
  .strict();


const retries = withRules(
  z
    .object({
      attempts: z.number().int().min(0).max(10).default(2).meta({ description: 'Retries after the first try (0 disables retries).' }),
      perTryTimeout: duration('Timeout of each try, including the first.').optional(),
      retryOn: z.array(z.enum(RETRY_ON)).min(1).max(RETRY_ON.length).default(['5xx', 'connect-failure', 'reset']).meta({ description: 'Conditions that cause a retry, as in Envoy\'s x-envoy-retry-on and x-envoy-retry-grpc-on.' }),
      retriableStatusCodes: z.array(z.number().int().min(100).max(599)).max(16).optional().meta({ description: 'HTTP codes retried with retry-on retriable-status-codes.' }),
      backoff: withRules(
        z
          .object({
            baseInterval: duration('First backoff interval; later ones grow exponentially with jitter.').default('25ms'),
            maxInterval: duration('Upper bound of a backoff interval (default 10× baseInterval).').optional(),
          })
          .strict(),
        [
          {
            cel: '!has(self.maxInterval) || duration(self.maxInterval) >= duration(self.baseInterval)',
            message: 'maxInterval must not be shorter than baseInterval',
            path: ['maxInterval'],
            check: (b) => !b.maxInterval || parseDuration(b.maxInterval)! >= parseDuration(b.baseInterval)! || 'maxInterval must not be shorter than baseInterval',
          },
        ],
      ).optional(),
    })
    .strict()
    .meta({ description: 'Retry policy of a rule.' }),
  [
    {
      cel: "!has(self.retryOn) || !('retriable-status-codes' in self.retryOn) || (has(self.retriableStatusCodes) && size(self.retriableStatusCodes) > 0)",
      message: 'retriableStatusCodes must be set when retryOn includes retriable-status-codes',
      path: ['retriableStatusCodes'],
      check: (r) =>
        !r.retryOn.includes('retriable-status-codes') || (r.retriableStatusCodes?.length ?? 0) > 0 || 'retriableStatusCodes must be set when retryOn includes retriable-status-codes',
    },
  ],
);

const fault = withRules(
  z
    .object({
      delay: z
        .object({ fixedDelay: duration('Delay added before the request is forwarded.'), percent: percent('Share of requests delayed.') })
        .strict()
        .optional(),
      abort: withRules(
        z
          .object({
            httpStatus: z.number().int().min(200).max(599).optional().meta({ description: 'HTTP status returned instead of forwarding.' }),
            grpcStatus: z.number().int().min(1).max(16).optional().meta({ description: 'gRPC status returned instead of forwarding.' }),
            percent: percent('Share of requests aborted.'),
          })
          .strict(),
        [exactlyOne(['httpStatus', 'grpcStatus'], 'a fault abort')],
      ).optional(),
    })
    .strict()
    .meta({ description: 'Fault injection for testing resilience.' }),
  [
    {
      cel: 'has(self.delay) || has(self.abort)',
      message: 'a fault needs a delay, an abort or both',
      check: (f) => !!(f.delay || f.abort) || 'a fault needs a delay, an abort or both',
    },
  ],
);

const headerOps = z
  .object({
    set: labels('Headers set, replacing any present.').optional(),
    add: labels('Headers appended.').optional(),
    remove: z.array(z.string().min(1).max(256)).max(32).optional().meta({ description: 'Headers removed.' }),
  })
  .strict();

const rateLimit = z
  .object({
    maxTokens: z.number().int().min(1).max(1_000_000).meta({ description: 'Bucket size: the largest burst allowed.' }),
    tokensPerFill: z.number().int().min(1).max(1_000_000).default(1).meta({ description: 'Tokens added each fillInterval.' }),
    fillInterval: duration('How often tokens are added (at least 50ms).'),
    statusCode: z.number().int().min(400).max(599).default(429).meta({ description: 'Status answered when the bucket is empty.' }),
  })
  .strict()
  .meta({ description: 'Local rate limit: a token bucket in each sidecar (Envoy local_ratelimit semantics).' });

const rule = withRules(
  z
    .object({
      name: dnsLabel('Optional name, shown in stats and status.').optional(),
      matches: z.array(httpMatch).max(16).optional().meta({ description: 'The rule applies when any match holds; none means every request.' }),
      route: z.array(destination).min(1).max(16).meta({ description: 'Weighted destinations.' }),
      timeout: duration('Overall timeout of a request, retries included.').optional(),
      retries: retries.optional(),
      fault: fault.optional(),
      requestHeaders: headerOps.optional().meta({ description: 'Changes to request headers.' }),
      responseHeaders: headerOps.optional().meta({ description: 'Changes to response headers.' }),
      rateLimit: rateLimit.optional(),
    })
    .strict()
    .meta({ description: 'An HTTP/gRPC routing rule; rules are tried in order and the first that matches wins.' }),
  [
    {
      cel: 'size(self.route) < 2 || self.route.all(d, has(d.weight))',
      message: 'every destination needs a weight when a rule has more than one',
      path: ['route'],
      check: (r) => r.route.length < 2 || r.route.every((d) => d.weight !== undefined) || 'every destination needs a weight when a rule has more than one',
    },
    {
      cel: '!self.route.all(d, has(d.weight)) || self.route.map(d, d.weight).sum() == 100',
      // format(), not string(): the API server's cost estimate of string(int) is unbounded.
      messageExpression: "'weights of a rule must sum to 100, got %d'.format([self.route.map(d, d.weight).sum()])",
      path: ['route'],
      check: (r) => {
        if (!r.route.every((d) => d.weight !== undefined)) return true;
        const sum = r.route.reduce((s, d) => s + d.weight!, 0);
        return sum === 100 || `weights of a rule must sum to 100, got ${sum}`;
      },
    },
    {
      cel: '!has(self.timeout) || !has(self.retries) || !has(self.retries.perTryTimeout) || duration(self.retries.perTryTimeout) <= duration(self.timeout)',
      message: 'retries.perTryTimeout must not exceed timeout',
      path: ['retries'],
      check: (r) =>
        !r.timeout || !r.retries?.perTryTimeout || parseDuration(r.retries.perTryTimeout)! <= parseDuration(r.timeout)! || 'retries.perTryTimeout must not exceed timeout',
    },
  ],
);

const ringHash = withRules(
  z
    .object({
      hashOn: z.enum(['header', 'cookie', 'sourceIP']).meta({ description: 'What the hash key is taken from.' }),
      header: z.string().min(1).max(256).optional().meta({ description: 'Header name, with hashOn: header.' }),
      cookie: z
        .object({ name: z.string().min(1).max(256), ttl: duration('Lifetime of a cookie the proxy sets when absent.').optional() })
        .strict()
        .optional()
        .meta({ description: 'Cookie, with hashOn: cookie.' }),
      minimumRingSize: z.number().int().min(1).max(8_388_608).default(1024),
    })
    .strict(),
  [
    {
      cel: "self.hashOn != 'header' || has(self.header)",
      message: 'header is required when hashOn is header',
      path: ['header'],
      check: (r) => r.hashOn !== 'header' || !!r.header || 'header is required when hashOn is header',
    },
    {
      cel: "self.hashOn != 'cookie' || has(self.cookie)",
      message: 'cookie is required when hashOn is cookie',
      path: ['cookie'],
      check: (r) => r.hashOn !== 'cookie' || !!r.cookie || 'cookie is required when hashOn is cookie',
    },
  ],
);

const loadBalancer = withRules(
  z
    .object({
      policy: z.enum(['RoundRobin', 'LeastRequest', 'Random', 'RingHash']).default('RoundRobin'),
      ringHash: ringHash.optional(),
      localityPreference: z.boolean().default(true).meta({ description: 'Prefer endpoints in the caller\'s own zone, failing over by priority.' }),
      panicThreshold: percent('Below this share of healthy endpoints, balance over all endpoints anyway.').default(50),
    })
    .strict()
    .meta({ description: 'How a sidecar picks an endpoint.' }),
  [
    {
      cel: "(self.policy == 'RingHash') == has(self.ringHash)",
      message: 'ringHash must be set exactly when policy is RingHash',
      path: ['ringHash'],
      check: (l) => (l.policy === 'RingHash') === !!l.ringHash || 'ringHash must be set exactly when policy is RingHash',
    },
  ],
);

const circuitBreaker = z
  .object({
    maxConnections: z.number().int().min(1).max(1_000_000).optional(),
    maxPendingRequests: z.number().int().min(1).max(1_000_000).optional(),
    maxRequests: z.number().int().min(1).max(1_000_000).optional(),
    maxRetries: z.number().int().min(0).max(1_000_000).optional(),
  })
  .strict()
  .meta({ description: 'Limits per sidecar and destination; past them requests fail fast with 503.' });

const outlierDetection = z
  .object({
    consecutive5xx: z.number().int().min(1).max(1000).optional().meta({ description: 'Eject an endpoint after this many 5xx in a row.' }),
    consecutiveGatewayErrors: z.number().int().min(1).max(1000).optional().meta({ description: 'Eject after this many 502/503/504 in a row.' }),
    interval: duration('How often ejections are evaluated.').default('10s'),
    baseEjectionTime: duration('Ejection time, multiplied by the number of times the endpoint was ejected.').default('30s'),
    maxEjectionPercent: percent('At most this share of endpoints is ejected at once.').default(10),
  })
  .strict()
  .meta({ description: 'Passive health: sidecars eject endpoints that fail.' });

const healthCheck = withRules(
  z
    .object({
      http: z
        .object({
          path: z.string().min(1).max(1024).startsWith('/'),
          expectedStatuses: z.array(z.number().int().min(100).max(599)).max(16).optional().meta({ description: 'Default: 200-399.' }),
        })
        .strict()
        .optional(),
      tcp: z.object({}).strict().optional().meta({ description: 'Healthy when a TCP connection opens.' }),
      grpc: z
        .object({
          service: z
            .string()
            .max(256)
            .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/, 'must be a fully-qualified gRPC service name (package.Service)')
            .optional()
            .meta({ description: 'The service asked about in grpc.health.v1.Health/Check; absent = the whole server ("").' }),
          authority: z
            .string()
            .max(261)
            .regex(/^[A-Za-z0-9]([-.A-Za-z0-9]*[A-Za-z0-9])?(:[0-9]{1,5})?$/, 'must be host or host:port')
            .optional()
            .meta({ description: 'The :authority of the check; default: the service\'s host (name.namespace.svc).' }),
        })
        .strict()
        .optional()
        .meta({ description: 'Standard gRPC health check (grpc.health.v1.Health/Check over h2c): healthy when the answer is SERVING; the timeout is the deadline.' }),
      interval: duration('Time between checks.').default('10s'),
      timeout: duration('Time a check may take.').default('1s'),
      healthyThreshold: z.number().int().min(1).max(100).default(1),
      unhealthyThreshold: z.number().int().min(1).max(100).default(3),
    })
    .strict()
    .meta({ description: 'Active health checking, done centrally by the control plane and published with endpoints.' }),
  [
    exactlyOne(['http', 'tcp', 'grpc'], 'a health check'),
    {
      cel: 'duration(self.timeout) < duration(self.interval)',
      message: 'timeout must be shorter than interval',
      path: ['timeout'],
      check: (h) => parseDuration(h.timeout)! < parseDuration(h.interval)! || 'timeout must be shorter than interval',
    },
  ],
);

const subset = z
  .object({
    name: dnsLabel('Subset name, referenced by destinations.'),
    labels: labels('Endpoints whose labels include all of these are in the subset.'),
  })
  .strict();

export const routePolicySpec = withRules(
  z
    .object({
      targetRef: z
        .object({
          service: dnsLabel('The destination service this policy governs.'),
          namespace: dnsLabel('Namespace of the service; default: the policy\'s own.').optional(),
          port: z.number().int().min(1).max(65535).optional().meta({ description: 'Only this port of the service; default: all ports.' }),
        })
        .strict()
        .meta({ description: 'The destination service the policy governs.' }),
      subsets: z
        .array(subset)
        .max(32)
        .optional()
        .meta({ description: 'Named groups of endpoints, e.g. by version label.', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] } as Record<string, unknown>),
      rules: z.array(rule).max(64).optional().meta({ description: 'Ordered HTTP/gRPC rules; without rules all traffic goes to the whole service.' }),
      loadBalancer: loadBalancer.optional(),
      circuitBreaker: circuitBreaker.optional(),
      outlierDetection: outlierDetection.optional(),
      healthCheck: healthCheck.optional(),
    })
    .strict(),
  [
    {
      cel: '!has(self.rules) || self.rules.all(r, r.route.all(d, !has(d.subset) || (has(self.subsets) && self.subsets.exists(s, s.name == d.subset))))',
      message: 'every destination subset must be defined in spec.subsets',
      path: ['rules'],
      check: (s) => {
        const defined = new Set((s.subsets ?? []).map((x) => x.name));
        for (const [i, r] of (s.rules ?? []).entries())
          for (const [j, d] of r.route.entries())
            if (d.subset && !defined.has(d.subset)) return `every destination subset must be defined in spec.subsets (rules[${i}].route[${j}] names "${d.subset}")`;
        return true;
      },
    },
  ],
).superRefine((s, ctx) => {
  // The API server enforces this through x-kubernetes-list-type: map on spec.subsets
  // ("duplicate entries for key"), so it needs no CEL rule.
  const names = (s.subsets ?? []).map((x) => x.name);
  if (new Set(names).size !== names.length) ctx.addIssue({ code: 'custom', message: 'subset names must be unique', path: ['subsets'] });
});

export const routePolicyStatus = policyStatus('run');

export const routePolicy = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal('RoutePolicy'),
    metadata: objectMeta,
    spec: routePolicySpec,
    status: routePolicyStatus.optional(),
  })
  .meta({ description: 'Traffic governance for one destination service: routing, load balancing, retries, timeouts, rate limits, circuit breaking, outlier detection and health checks.' });

export type RoutePolicy = z.infer<typeof routePolicy>;
export type RoutePolicySpec = z.infer<typeof routePolicySpec>;
export type RoutePolicyStatus = z.infer<typeof routePolicyStatus>;
export type RoutePolicyRule = RoutePolicySpec extends { rules?: (infer R)[] } ? R : never;
