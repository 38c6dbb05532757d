/**
 * AuthorizationPolicy: which workload identities may call a service, on which paths and methods.
 * The semantics are Istio's AuthorizationPolicy (security.istio.io/v1), which platform engineers
 * already know, narrowed to one service per policy:
 *
 * - a policy selects `spec.service` in its own namespace and is enforced by the inbound proxies of
 *   that service's instances (the callee side), on the identity the caller's mTLS certificate
 *   proves (`spiffe://<trust-domain>/ns/<ns>/sa/<sa>`, packages/identity/README.md);
 * - within a rule every present field must match (AND), the values of one field are alternatives
 *   (OR); a rule without `from` matches any source, without `to` any operation;
 * - per service: any matching DENY policy denies; otherwise, when there is at least one ALLOW
 *   policy, a request no ALLOW policy matches is denied; otherwise it is allowed. An ALLOW policy
 *   without rules therefore denies everything (Istio: it matches nothing);
 * - a sidecar whose workload backs several services (a Service named unlike its workload) enforces
 *   the DENY policies of all of them on every request, and each one's ALLOW policies on requests
 *   naming it (packages/pilot/README.md, "Authorization");
 * - a plaintext caller has no identity: it matches only rules whose sources say nothing about
 *   identity, so an ALLOW policy naming identities denies plaintext callers.
 */
import { z } from 'zod';
import { API_VERSION, dnsLabel, objectMeta, policyStatus } from './common.js';
import { withRules } from './rules.js';

/** HTTP methods a rule may name (gRPC calls are POST). */
export const AUTHZ_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

/** `<namespace>/<service account>`: a namespace label, then a DNS-1123 subdomain (what Kubernetes allows for a ServiceAccount). */
export const SERVICE_ACCOUNT_REF = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** A SPIFFE ID of the mesh's form (packages/identity): `spiffe://<trust domain>/ns/<ns>/sa/<sa>`. */
export const SPIFFE_ID = /^spiffe:\/\/[a-z0-9._-]+\/ns\/[a-z0-9]([-a-z0-9]*[a-z0-9])?\/sa\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * A path pattern, as Istio's: `/exact`, `/prefix*`, `*suffix` or `*` (any path). Exact and
 * prefix forms start with `/`; `*` appears only at one end.
 */
export const AUTHZ_PATH = /^(\*|\*[^*]+|\/[^*]*\*?)$/;

const PATH_MESSAGE = 'must be a path pattern: "/exact", "/prefix*", "*suffix" or "*"';

const namespaces = (description: string) => z.array(dnsLabel('A namespace.')).min(1).max(32).optional().meta({ description });

const serviceAccounts = (description: string) =>
  z
    .array(
      z
        .string()
        .min(1)
        .max(317)
        .regex(SERVICE_ACCOUNT_REF, { message: 'must be <namespace>/<service account>, e.g. "shop/frontend"' }),
    )
    .min(1)
    .max(32)
    .optional()
    .meta({ description });

const paths = (description: string) =>
  z
    .array(z.string().min(1, { message: 'must not be empty', abort: true }).max(1024).regex(AUTHZ_PATH, { message: PATH_MESSAGE }))
    .min(1)
    .max(32)
    .optional()
    .meta({ description });

const methods = (description: string) => z.array(z.enum(AUTHZ_METHODS)).min(1).max(AUTHZ_METHODS.length).optional().meta({ description });

const SOURCE_FIELDS = ['principals', 'namespaces', 'serviceAccounts', 'notNamespaces', 'notServiceAccounts'] as const;
const OPERATION_FIELDS = ['paths', 'methods', 'notPaths', 'notMethods'] as const;

const atLeastOne = (fields: readonly string[], what: string) => ({
  cel: fields.map((f) => `has(self.${f})`).join(' || '),
  message: `${what} needs at least one of ${fields.join(', ')}`,
  check: (v: Record<string, unknown>) => fields.some((f) => v[f] !== undefined) || `${what} needs at least one of ${fields.join(', ')}`,
});

const source = withRules(
  z
    .object({
      principals: z
        .array(z.string().min(1).max(512).regex(SPIFFE_ID, { message: 'must be a SPIFFE ID spiffe://<trust domain>/ns/<namespace>/sa/<service account>' }))
        .min(1)
        .max(32)
        .optional()
        .meta({ description: 'Caller identities, as full SPIFFE IDs; any of them.' }),
      namespaces: namespaces('Callers whose identity is in one of these namespaces.'),
      serviceAccounts: serviceAccounts('Callers whose identity is one of these service accounts, each <namespace>/<name>.'),
      notNamespaces: namespaces('Callers whose identity is in none of these namespaces (a caller without an identity does not match).'),
      notServiceAccounts: serviceAccounts('Callers whose identity is none of these service accounts (a caller without an identity does not match).'),
    })
    .strict()
    .meta({ description: 'Who calls: every field present must match; the values of one field are alternatives.' }),
  [atLeastOne(SOURCE_FIELDS, 'a source')],
);

const operation = withRules(
  z
    .object({
      paths: paths('Request paths (without the query): "/exact", "/prefix*", "*suffix" or "*"; any of them.'),
      methods: methods('HTTP methods; any of them (gRPC calls are POST).'),
      notPaths: paths('Paths the request must not have.'),
      notMethods: methods('Methods the request must not have.'),
    })
    .strict()
    .meta({ description: 'What is called: every field present must match; the values of one field are alternatives.' }),
  [atLeastOne(OPERATION_FIELDS, 'an operation')],
);

const rule = z
  .object({
    from: z.array(source).min(1).max(16).optional().meta({ description: 'Sources, any of which matches; without it any caller matches.' }),
    to: z.array(operation).min(1).max(16).optional().meta({ description: 'Operations, any of which matches; without it any request matches.' }),
  })
  .strict()
  .meta({ description: 'A rule matches a request when its from and its to both match.' });

export const authorizationPolicySpec = z
  .object({
    service: dnsLabel('The service (in the policy\'s namespace) whose inbound proxies enforce the policy.'),
    action: z.enum(['ALLOW', 'DENY']).default('ALLOW').meta({ description: 'ALLOW: requests no ALLOW policy of the service matches are denied. DENY: requests a rule matches are denied (DENY wins over ALLOW).' }),
    rules: z
      .array(rule)
      .max(32)
      .optional()
      .meta({ description: 'The policy matches a request when any rule does. An ALLOW policy without rules matches nothing, so it denies every request.' }),
  })
  .strict();

export const authorizationPolicyStatus = policyStatus('enforce');

export const authorizationPolicy = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal('AuthorizationPolicy'),
    metadata: objectMeta,
    spec: authorizationPolicySpec,
    status: authorizationPolicyStatus.optional(),
  })
  .meta({ description: 'Which caller identities (namespaces, service accounts) may call a service, on which paths and methods; enforced by the service\'s inbound sidecars.' });

export type AuthorizationPolicy = z.infer<typeof authorizationPolicy>;
export type AuthorizationPolicySpec = z.infer<typeof authorizationPolicySpec>;
export type AuthorizationPolicyStatus = z.infer<typeof authorizationPolicyStatus>;
export type AuthorizationRule = NonNullable<AuthorizationPolicySpec['rules']>[number];
export type AuthorizationSource = NonNullable<AuthorizationRule['from']>[number];
export type AuthorizationOperation = NonNullable<AuthorizationRule['to']>[number];
