/**
 * The scenario format: a mesh to set up, node templates, and steps run in order. Validated with
 * zod; a bad scenario is rejected with the step's index, its kind and the field
 * (`steps[3] (expectPush).within: expected a duration such as 500ms or 2s`), so the author never
 * has to guess which of thirty steps is wrong.
 */
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { API_VERSION, parseDuration as parseApiDuration, routePolicy } from '@octo-mesh/api';
import { formatPath } from '@octo-mesh/runtime';

/** `250ms`, `2s`, `1m30s` (the API's duration syntax) or a number of milliseconds → milliseconds. */
export function parseDuration(v: string | number): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && v >= 0 ? v : undefined;
  return parseApiDuration(v.trim());
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration such as 500ms or 2s, got ${JSON.stringify(v)}` });
    return z.NEVER;
  }
  return ms;
});

/** The short names of the xDS types a scenario speaks of. */
export const XDS_TYPES = ['cds', 'eds', 'lds', 'rds', 'governance', 'upgrade'] as const;
export type XdsType = (typeof XDS_TYPES)[number];
const xdsType = z.enum(XDS_TYPES);

const serviceKey = z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, 'expected namespace/name');

/** Which of the scenario's sidecars a step is about; every field narrows, none = all. */
export const selector = z
  .object({
    /** Sidecars started from these templates. */
    template: z.union([z.string(), z.array(z.string())]).optional(),
    /** Sidecars whose template depends on this service (`namespace/name`). */
    dependsOn: serviceKey.optional(),
    /** Only the first N of those (in start order). */
    count: z.number().int().min(1).optional(),
  })
  .strict();
export type Selector = z.infer<typeof selector>;

export const template = z
  .object({
    workload: z.string().min(1),
    namespace: z.string().min(1).default('default'),
    version: z.string().default('v1'),
    /** Services it calls: `name` (its namespace), `namespace/name`, or `name.namespace`. */
    dependencies: z.array(z.string().min(1)).default([]),
    protocol: z.enum(['sotw', 'delta']).default('sotw'),
    zone: z.string().optional(),
    region: z.string().optional(),
  })
  .strict();
export type NodeTemplate = z.infer<typeof template>;

export const meshService = z
  .object({
    name: z.string().min(1),
    namespace: z.string().min(1).default('default'),
    port: z.number().int().min(1).max(65535).default(8080),
    protocol: z.enum(['http', 'http2', 'grpc', 'tcp']).default('http'),
    /** Endpoints made up for it (`10.x.y.z:15006`), half `version: v1`, half `v2`. */
    endpoints: z.number().int().min(0).max(10_000).default(2),
  })
  .strict();
export type MeshService = z.infer<typeof meshService>;

const component = z.string().regex(/^(dispatcher|meta-server|pilot(-[a-z0-9]+)?)$/, 'expected dispatcher, meta-server, pilot or pilot-<id>');

/** One schema per step kind; a step is an object with exactly one of these keys. */
export const STEP_SCHEMAS = {
  /** Start `count` sidecars of a template and wait until each has its whole configuration. */
  start: z.object({ template: z.string().min(1), count: z.number().int().min(1).default(1), within: duration.default(30_000) }).strict(),
  /** Stop sidecars (streams closed); they are gone for later steps. */
  stop: selector,
  /** The selected sidecars hold these types (and at least these resource names) within T. */
  expectResources: z
    .object({
      to: selector.default({}),
      types: z.array(xdsType).min(1).default(['cds', 'eds', 'lds', 'rds']),
      /** Names that must be present, per type; `!name` must be absent. */
      resources: z.partialRecord(xdsType, z.array(z.string().min(1))).default({}),
      within: duration.default(5000),
    })
    .strict(),
  /** Create or replace a RoutePolicy (through the dispatcher). */
  /** Checked against the RoutePolicy schema the CRD is generated from (apiVersion and kind implied). */
  applyPolicy: z
    .object({ metadata: z.object({ name: z.string(), namespace: z.string().default('default') }).loose(), spec: z.record(z.string(), z.unknown()) })
    .strict()
    .superRefine((p, ctx) => {
      const r = routePolicy.safeParse({ apiVersion: API_VERSION, kind: 'RoutePolicy', ...p });
      if (!r.success) for (const i of r.error.issues) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
    }),
  deletePolicy: z.object({ name: z.string().min(1), namespace: z.string().default('default') }).strict(),
  /** Create or replace a service and its endpoints (through the dispatcher). */
  applyService: meshService,
  deleteService: z.object({ service: serviceKey }).strict(),
  /** Replace a service's endpoints with `count` made-up ones (generation makes them new). */
  setEndpoints: z.object({ service: serviceKey, count: z.number().int().min(0).max(10_000), healthy: z.boolean().default(true) }).strict(),
  /**
   * Since the last change step, every selected sidecar got a push of these types within T, and
   * no other sidecar of the scenario got anything for `othersQuietFor` after the change.
   */
  expectPush: z
    .object({
      to: selector,
      types: z.array(xdsType).min(1).default(['eds']),
      within: duration.default(2000),
      othersQuietFor: duration.default(1000),
    })
    .strict(),
  /**
   * Answer the selected sidecars' next response of a type with a NACK (keeping their last good
   * configuration). Only a response not yet answered can be NACKed — a server ignores a second
   * answer to a nonce — so a change step usually follows.
   */
  nack: z.object({ to: selector, type: xdsType, message: z.string().default('rejected by mock-sidecar') }).strict(),
  /** Sync state the serving pilot reports for the selected sidecars (its /debug/syncz). */
  expectSyncState: z.object({ to: selector, state: z.enum(['SYNCED', 'NACKED', 'STALE']), type: xdsType.optional(), within: duration.default(5000) }).strict(),
  /** SIGKILL a control-plane process the runner started (pilot = the one serving most sidecars). */
  kill: z.object({ component, signal: z.enum(['SIGKILL', 'SIGTERM']).default('SIGKILL') }).strict(),
  /** Start a killed process again, same arguments and ports; `pilot` = the pilot killed last. */
  restart: z.object({ component, within: duration.default(30_000) }).strict(),
  /** Every sidecar the last `kill` cut off is on a live pilot with its whole configuration within T. */
  expectRehomed: z.object({ within: duration.default(10_000) }).strict(),
  /** The selected sidecars drop their streams at once and reconnect (no backoff); all synced within T. */
  reconnectStorm: z.object({ to: selector.default({}), within: duration.default(30_000) }).strict(),
  /** `perSecond` endpoint changes of a service per second for `duration`. */
  churn: z.object({ service: serviceKey, perSecond: z.number().min(0.1).max(10_000), duration, endpoints: z.number().int().min(1).max(1000).default(4) }).strict(),
  sleep: duration,
} as const;

export type StepKind = keyof typeof STEP_SCHEMAS;
export type StepOf<K extends StepKind> = z.output<(typeof STEP_SCHEMAS)[K]>;
export type Step = { [K in StepKind]: { kind: K; index: number; args: StepOf<K> } }[StepKind];

const scenarioShape = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    /** Pilots the runner starts when it runs the control plane itself. */
    pilots: z.number().int().min(1).max(8).default(2),
    services: z.array(meshService).default([]),
    templates: z.record(z.string().regex(/^[a-z0-9-]+$/, 'template names are lowercase words'), template),
    steps: z.array(z.record(z.string(), z.unknown())).min(1),
  })
  .strict();

export interface Scenario {
  name: string;
  description?: string;
  pilots: number;
  services: MeshService[];
  templates: Record<string, NodeTemplate>;
  steps: Step[];
}

/** A scenario that does not validate; `issues` are `path: message` lines. */
export class ScenarioError extends Error {
  constructor(
    readonly source: string,
    readonly issues: string[],
  ) {
    super(`${source}: invalid scenario:\n  ${issues.join('\n  ')}`);
    this.name = 'ScenarioError';
  }
}

const issuesOf = (e: z.ZodError, prefix: string) => e.issues.map((i) => `${formatPath(i.path, prefix) || '(top)'}: ${i.message}`);

/** Validates a parsed scenario; throws {@link ScenarioError} naming every bad step and field. */
export function validateScenario(raw: unknown, source = 'scenario'): Scenario {
  const top = scenarioShape.safeParse(raw);
  if (!top.success) throw new ScenarioError(source, issuesOf(top.error, ''));
  const issues: string[] = [];
  const steps: Step[] = [];
  top.data.steps.forEach((s, index) => {
    const keys = Object.keys(s);
    const kinds = Object.keys(STEP_SCHEMAS);
    if (keys.length !== 1 || !kinds.includes(keys[0]!)) {
      issues.push(`steps[${index}]: a step has exactly one of ${kinds.join(', ')}; got ${keys.join(', ') || 'nothing'}`);
      return;
    }
    const kind = keys[0] as StepKind;
    const parsed = STEP_SCHEMAS[kind].safeParse(s[kind]);
    if (!parsed.success) {
      issues.push(...issuesOf(parsed.error, `steps[${index}] (${kind})`));
      return;
    }
    steps.push({ kind, index, args: parsed.data } as Step);
  });
  // Cross-references: templates named by steps exist.
  const templates = top.data.templates;
  const checkTemplate = (index: number, kind: string, field: string, name: string | string[] | undefined) => {
    for (const t of name === undefined ? [] : Array.isArray(name) ? name : [name])
      if (!templates[t]) issues.push(`steps[${index}] (${kind}).${field}: no template named ${JSON.stringify(t)} (have ${Object.keys(templates).join(', ')})`);
  };
  for (const s of steps) {
    if (s.kind === 'start') checkTemplate(s.index, s.kind, 'template', s.args.template);
    const to = (s.args as { to?: Selector }).to ?? (s.kind === 'stop' ? s.args : undefined);
    if (to) checkTemplate(s.index, s.kind, s.kind === 'stop' ? 'template' : 'to.template', to.template);
  }
  if (issues.length) throw new ScenarioError(source, issues);
  return { ...top.data, steps };
}

/** Parses and validates the YAML text of a scenario. */
export function parseScenario(text: string, source = 'scenario'): Scenario {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ScenarioError(source, [`not YAML: ${(err as Error).message}`]);
  }
  return validateScenario(raw, source);
}

/** A scenario with every start count multiplied (stress runs of the CI files). */
export function scaleScenario(s: Scenario, factor: number): Scenario {
  if (factor === 1) return s;
  return { ...s, steps: s.steps.map((st) => (st.kind === 'start' ? { ...st, args: { ...st.args, count: Math.max(1, Math.round(st.args.count * factor)) } } : st)) };
}
