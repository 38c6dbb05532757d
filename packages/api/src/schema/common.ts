import { z } from 'zod';
import { DURATION_PATTERN } from '../duration.js';
import { re2SyntaxError } from '../re2.js';
import { celExactlyOne, countPresent, withRules } from './rules.js';

export const GROUP = 'mesh.octo.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** A DNS-1123 label: the form of Kubernetes names and of our service and subset names. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const dnsLabel = (description: string) =>
  z
    .string()
    .min(1)
    .max(63)
    .regex(DNS_LABEL, { message: 'must be a DNS-1123 label: lower case letters, digits and "-", starting and ending with a letter or digit' })
    .meta({ description });

export const duration = (description: string) =>
  z
    .string()
    .max(32)
    .regex(DURATION_PATTERN, { message: 'must be a duration such as "250ms", "2s" or "1m30s"' })
    .meta({ description });

export const percent = (description: string) => z.number().int().min(0).max(100).meta({ description });

/** Label keys and values (length-bounded so CEL cost estimates stay finite). */
export const labels = (description: string) =>
  z.record(z.string().min(1).max(317), z.string().max(63)).meta({ description, maxProperties: 64 } as Record<string, unknown>);

/**
 * A regular expression in RE2 syntax — what Envoy's `safe_regex` and the proxy (re2js) run, in
 * time linear in the input. Checked by compiling it with re2js: look-around, back-references and
 * other backtracking-only constructs are refused here, before any proxy sees them. (CEL cannot ask
 * whether a string compiles, so the CRD cannot check this; see examples/invalid/rp-bad-regex*.)
 */
export const regexString = (description: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .superRefine((value, ctx) => {
      const error = re2SyntaxError(value);
      if (error !== undefined) ctx.addIssue({ code: 'custom', message: `must be a valid regular expression (RE2 syntax): ${error}` });
    })
    .meta({ description });

const labelSelectorRequirement = withRules(
  z
    .object({
      key: z.string().min(1).max(317).meta({ description: 'The label key the selector applies to.' }),
      operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']).meta({ description: 'How the key relates to the values.' }),
      values: z.array(z.string().max(63)).max(64).optional().meta({ description: 'Values for In and NotIn; must be empty for Exists and DoesNotExist.' }),
    })
    .strict(),
  [
    {
      cel: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
      path: ['values'],
      check: (r) =>
        (r.operator === 'In' || r.operator === 'NotIn' ? (r.values?.length ?? 0) > 0 : (r.values?.length ?? 0) === 0) ||
        'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
    },
  ],
);

/** Kubernetes' LabelSelector: matchLabels AND matchExpressions; empty selects everything. */
export const labelSelector = (description: string) =>
  z
    .object({
      matchLabels: labels('Labels that must all match.').optional(),
      matchExpressions: z.array(labelSelectorRequirement).max(32).optional().meta({ description: 'Requirements that must all hold.' }),
    })
    .strict()
    .meta({ description });

/** A status condition, as in metav1.Condition. */
export const condition = z
  .object({
    type: z.string().min(1).max(316),
    status: z.enum(['True', 'False', 'Unknown']),
    reason: z.string().max(1024).optional(),
    message: z.string().max(32768).optional(),
    observedGeneration: z.number().int().min(0).optional(),
    lastTransitionTime: z.string().optional().meta({ format: 'date-time' } as Record<string, unknown>),
  })
  .meta({ description: 'The state of one aspect of the object, as in metav1.Condition.' });

export type Condition = z.infer<typeof condition>;

/**
 * The status of a governance policy (RoutePolicy, AuthorizationPolicy): accepted or why not,
 * and how many of the sidecars that should `enforce` it ACKed its current generation.
 */
export const policyStatus = (enforce: string) =>
  z
    .object({
      observedGeneration: z.number().int().min(0).optional(),
      accepted: z.boolean().optional().meta({ description: 'Whether the control plane accepted the policy.' }),
      conditions: z.array(condition).max(8).optional(),
      sidecars: z
        .object({
          total: z.number().int().min(0).default(0).meta({ description: `Sidecars that should ${enforce} the policy.` }),
          acked: z.number().int().min(0).default(0).meta({ description: 'Sidecars that ACKed its current generation.' }),
          nacked: z.number().int().min(0).default(0).meta({ description: 'Sidecars that NACKed it.' }),
        })
        .optional(),
    })
    .meta({ description: 'What the control plane made of the policy.' });

/** Object metadata as far as the mesh validates it (the API server owns the rest). */
export const objectMeta = z
  .object({
    name: z
      .string()
      .min(1)
      .max(253)
      .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, { message: 'must be a DNS-1123 subdomain' }),
    namespace: dnsLabel('Namespace.').optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
    generation: z.number().int().optional(),
    resourceVersion: z.string().optional(),
    uid: z.string().optional(),
    creationTimestamp: z.string().optional(),
  })
  .loose();

export { celExactlyOne, countPresent };
