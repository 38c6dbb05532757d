/**
 * Typed clients of the control plane's HTTP debug APIs. Every answer is parsed with the schema
 * in @octo-mesh/contracts that the server's handler is typed with, so a server that changes a
 * shape breaks here with a message naming the field, never with a silent `undefined` in a table.
 * Calls are not retried: a debug client answers a person or a poller that has its own cadence.
 */
import {
  DispatcherWatchers,
  MetaPilots,
  MetaSidecars,
  NodeSyncView,
  PilotAuthorizationPolicyz,
  PilotRollouts,
  PilotRoutePolicyz,
  PilotSyncz,
  type DispatcherWatcherView,
  type MetaPilotView,
  type MetaSidecarView,
  type PilotAuthorizationPolicyView,
  type PilotPolicyView,
} from '@octo-mesh/contracts';
import { OctoError, UnavailableError } from '@octo-mesh/runtime';
import type { z } from 'zod';

export interface AdminClientOptions {
  /** Per call, default 3 s. */
  timeoutMs?: number;
}

/** GETs `http://<address><path>` and parses the JSON answer with `schema`. */
export async function getJson<S extends z.ZodType>(address: string, path: string, schema: S, opts: AdminClientOptions = {}): Promise<z.infer<S>> {
  const url = `http://${address}${path}`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 3000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new UnavailableError(`${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) throw new OctoError(`${url}: HTTP ${res.status} ${text.trim().slice(0, 300)}`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new OctoError(`${url}: answer is not JSON: ${text.slice(0, 120)}`);
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new OctoError(`${url}: unexpected answer at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** A pilot's debug API (its HTTP port, 15014 by default). */
export class PilotAdminClient {
  constructor(
    readonly address: string,
    private readonly opts: AdminClientOptions = {},
  ) {}

  /** Sync state of every connected node, per type. */
  syncz(): Promise<NodeSyncView[]> {
    return getJson(this.address, '/debug/syncz', PilotSyncz, this.opts);
  }

  /** Sync state of one node; NotFound (HTTP 404) when it is not connected to this pilot. */
  nodeSync(nodeId: string): Promise<NodeSyncView> {
    return getJson(this.address, `/debug/syncz?node=${encodeURIComponent(nodeId)}`, NodeSyncView, this.opts);
  }

  /** Verdict and sidecar counts of every RoutePolicy this pilot translated. */
  routePolicies(): Promise<PilotPolicyView[]> {
    return getJson(this.address, '/debug/routepolicyz', PilotRoutePolicyz, this.opts);
  }

  /** Verdict and sidecar counts of every AuthorizationPolicy of a service this pilot's sidecars serve. */
  authorizationPolicies(): Promise<PilotAuthorizationPolicyView[]> {
    return getJson(this.address, '/debug/authorizationpolicyz', PilotAuthorizationPolicyz, this.opts);
  }

  /** Per-rollout counts over the sidecars connected to this pilot. */
  rollouts(): Promise<PilotRollouts> {
    return getJson(this.address, '/debug/rollouts', PilotRollouts, this.opts);
  }
}

/** The meta server's debug API. */
export class MetaAdminClient {
  constructor(
    readonly address: string,
    private readonly opts: AdminClientOptions = {},
  ) {}

  pilots(): Promise<MetaPilotView[]> {
    return getJson(this.address, '/debug/pilots', MetaPilots, this.opts);
  }

  sidecars(): Promise<MetaSidecarView[]> {
    return getJson(this.address, '/debug/sidecars', MetaSidecars, this.opts);
  }
}

/** The dispatcher's debug API. */
export class DispatcherAdminClient {
  constructor(
    readonly address: string,
    private readonly opts: AdminClientOptions = {},
  ) {}

  watchers(): Promise<DispatcherWatcherView[]> {
    return getJson(this.address, '/debug/watchers', DispatcherWatchers, this.opts);
  }
}
