import { z } from 'zod';
import { API_VERSION, condition, dnsLabel, duration, labelSelector, objectMeta } from './common.js';
import { withRules, withTransitionRules } from './rules.js';

/** Semantic version 2.0.0 (no leading "v"). */
export const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$/;

const pkg = z
  .object({
    url: z
      .string()
      .min(1)
      .max(2048)
      .regex(/^(https?|file):\/\/\S+$/, { message: 'must be an http(s):// or file:// URL' })
      .meta({ description: 'Where agents download the proxy package from.' }),
    sha256: z
      .string()
      .max(64)
      .regex(/^[a-f0-9]{64}$/, { message: 'must be 64 lower-case hex digits' })
      .meta({ description: 'sha256 of the package; agents refuse a package that does not match.' }),
    signature: z.string().max(4096).optional().meta({ description: 'Detached signature of the package, base64.' }),
  })
  .strict();

const canary = withRules(
  z
    .object({
      instances: z.number().int().min(1).max(10_000).optional().meta({ description: 'Upgrade this many instances first.' }),
      percent: z.number().int().min(1).max(50).optional().meta({ description: 'Upgrade this share of instances first.' }),
    })
    .strict()
    .meta({ description: 'The first, gated batch.' }),
  [
    {
      cel: 'has(self.instances) != has(self.percent)',
      message: 'exactly one of instances, percent must be set for a canary',
      check: (c) => (c.instances === undefined) !== (c.percent === undefined) || 'exactly one of instances, percent must be set for a canary',
    },
  ],
);

const strategy = withRules(
  z
    .object({
      canary: canary.optional(),
      steps: z
        .array(z.number().int().min(1).max(100))
        .min(1)
        .max(20)
        .optional()
        .meta({ description: 'Cumulative percent of instances after each batch, strictly increasing and ending at 100, e.g. [1, 10, 50, 100].' }),
      maxUnavailable: z.number().int().min(1).max(10_000).optional().meta({ description: 'Instead of steps: upgrade at most this many instances at a time.' }),
      pauseBetweenBatches: duration('Wait after a batch is healthy before the next starts.').default('30s'),
      healthGate: z
        .object({
          minReadySeconds: z.number().int().min(0).max(3600).default(10).meta({ description: 'An upgraded instance counts as ready after being ready this long.' }),
          maxFailurePercent: z.number().int().min(0).max(100).default(0).meta({ description: 'A batch fails when more than this share of its instances fail.' }),
          progressDeadline: duration('A batch that is not healthy within this time fails.').default('10m'),
        })
        .strict()
        .default({ minReadySeconds: 10, maxFailurePercent: 0, progressDeadline: '10m' }),
      autoRollback: z.boolean().default(true).meta({ description: 'Roll every upgraded instance back when a batch fails.' }),
    })
    .strict()
    .meta({ description: 'How the rollout advances.' }),
  [
    {
      cel: 'has(self.steps) != has(self.maxUnavailable)',
      message: 'exactly one of steps, maxUnavailable must be set',
      check: (s) => (s.steps === undefined) !== (s.maxUnavailable === undefined) || 'exactly one of steps, maxUnavailable must be set',
    },
    {
      cel: '!has(self.steps) || (self.steps[size(self.steps) - 1] == 100 && self.steps.isSorted() && self.steps.all(x, self.steps.exists_one(y, y == x)))',
      message: 'steps must be strictly increasing and end at 100',
      path: ['steps'],
      check: (s) => !s.steps || (s.steps.at(-1) === 100 && s.steps.every((x, i) => i === 0 || x > s.steps![i - 1]!)) || 'steps must be strictly increasing and end at 100',
    },
  ],
);

export const proxyVersionSpec = withTransitionRules(
  z
    .object({
      version: z
        .string()
        .max(64)
        .regex(SEMVER, { message: 'must be a semantic version such as 1.4.2 (no leading v)' })
        .meta({ description: 'The proxy release, semver.' }),
      package: pkg.meta({ description: 'The proxy package agents hot-load.' }),
      image: z.string().min(1).max(512).optional().meta({ description: 'Sidecar container image for newly injected pods.' }),
      scope: z
        .object({
          namespaceSelector: labelSelector('Namespaces whose sidecars are upgraded; empty means all.').optional(),
          workloadSelector: labelSelector('Workloads (by pod labels) whose sidecars are upgraded; empty means all.').optional(),
          services: z.array(dnsLabel('Service name.')).max(256).optional().meta({ description: 'Only sidecars of these services.' }),
        })
        .strict()
        .default({})
        .meta({ description: 'Which sidecars the release is for; all given selectors must match.' }),
      strategy,
      paused: z.boolean().default(false).meta({ description: 'Stop advancing after the current batch until set to false.' }),
    })
    .strict(),
  [
    { rule: 'self.version == oldSelf.version', message: 'version is immutable; create a new ProxyVersion for another release', fieldPath: '.version' },
    // `package` is a CEL reserved word: CEL sees the field as __package__.
    { rule: 'self.__package__ == oldSelf.__package__', message: 'package is immutable; create a new ProxyVersion for another package', fieldPath: '.package' },
  ],
);

/**
 * Superseded: a newer release covering the same sidecars started before this one finished; this
 * one holds its batch and the newer release takes the instances over as it reaches them.
 */
export const PROXY_VERSION_PHASES = ['Pending', 'Progressing', 'Paused', 'Succeeded', 'RollingBack', 'RolledBack', 'Failed', 'Superseded'] as const;

const isoTime = (description: string) => z.string().max(64).meta({ description, format: 'date-time' } as Record<string, unknown>);

export const proxyVersionStatus = z
  .object({
    observedGeneration: z.number().int().min(0).optional(),
    phase: z.enum(PROXY_VERSION_PHASES).optional(),
    currentBatch: z.number().int().min(0).optional().meta({ description: 'Index of the batch in progress (0 is the canary, if any).' }),
    batches: z.number().int().min(0).optional().meta({ description: 'Number of batches the rollout has (canary included).' }),
    total: z.number().int().min(0).optional().meta({ description: 'Instances in scope when the rollout started; the batch shares (canary instances, maxUnavailable) are planned on it.' }),
    targeted: z.number().int().min(0).optional().meta({ description: 'Instances whose target is this release.' }),
    updated: z.number().int().min(0).optional().meta({ description: 'Targeted instances that run this release.' }),
    ready: z.number().int().min(0).optional().meta({ description: 'Updated instances that are ready.' }),
    failed: z.number().int().min(0).optional().meta({ description: 'Targeted instances whose agent reports this release bad.' }),
    batchStartedAt: isoTime('When the current batch started (its progress deadline counts from here).').optional(),
    batchHealthyAt: isoTime('When the current batch passed its health gate (the pause between batches counts from here).').optional(),
    batchBaseline: z.number().int().min(0).optional().meta({ description: 'Instances targeted when the current batch started: until more are, the fleet has not yet seen the batch.' }),
    rollbackTo: z.string().max(64).optional().meta({ description: 'The last Succeeded release in scope: where instances return if this rollout fails.' }),
    abortHandled: z.string().max(64).optional().meta({ description: 'The rollout-abort request (annotation mesh.octo.io/rollout-abort) last acted on.' }),
    undoHandled: z.string().max(64).optional().meta({ description: 'The rollout-undo request (annotation mesh.octo.io/rollout-undo) last acted on.' }),
    supersededBy: z.string().max(253).optional().meta({ description: 'The newer ProxyVersion (namespace/name) that took over this rollout.' }),
    failures: z
      .array(
        z
          .object({ instanceId: z.string().max(253), reason: z.string().max(256), message: z.string().max(1024).optional() })
          .meta({ description: 'An instance whose agent reported this release bad.' }),
      )
      .max(20)
      .optional()
      .meta({ description: 'Up to 20 failing instances with their agents\' reasons.' }),
    conditions: z.array(condition).max(8).optional(),
    message: z.string().max(4096).optional(),
  })
  .meta({ description: 'Progress of the rollout. All rollout state lives here, so the operator can restart or fail over at any moment.' });

export const proxyVersion = z
  .object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal('ProxyVersion'),
    metadata: objectMeta,
    spec: proxyVersionSpec,
    status: proxyVersionStatus.optional(),
  })
  .meta({ description: 'A proxy release rolled out in place to the sidecars in scope, without restarting application pods.' });

export type ProxyVersion = z.infer<typeof proxyVersion>;
export type ProxyVersionSpec = z.infer<typeof proxyVersionSpec>;
export type ProxyVersionStatus = z.infer<typeof proxyVersionStatus>;
export type ProxyVersionPhase = (typeof PROXY_VERSION_PHASES)[number];
