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
import type { ControlRole, MeshTls } from '@octo-mesh/contracts/access.js';
import { OctoError, UnavailableError } from '@octo-mesh/runtime';
import type { z } from 'zod';
import { controlPlaneId, readMeshTlsMaterial, uriSan } from './mtls.js';

export interface AdminClientOptions {
  /** Per call, default 3 s. */
  timeoutMs?: number;
  /**
   * Read admin ports that serve mTLS (`adminMtls`): HTTPS with this certificate directory's
   * certificate, the server checked by its control-plane identity. Without it, plain HTTP.
   */
  tls?: MeshTls;
}

/** GET over HTTPS with the mesh certificate, the server checked by the SPIFFE ID of `server`. */
function getMtls(url: URL, tls: MeshTls, server: ControlRole, timeoutMs: number): Promise<{ status: number; text: string }> {
  const material = readMeshTlsMaterial(tls);
  const expected = controlPlaneId(tls, server);
  return new Promise((resolve, reject) => {
    const req = process
      .getBuiltinModule('node:https')
      .get(
        {
          host: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port,
          path: url.pathname + url.search,
          ...material,
          servername: 'octo-mesh', // not the IP dialled: Node refuses an IP as SNI (RFC 6066); identity is checked below
          agent: false,
          timeout: timeoutMs,
          // Mesh certificates name identities, not hosts: check the identity instead of the name dialled.
          checkServerIdentity: (_host, cert) => (uriSan(cert) === expected ? undefined : new Error(`the server's identity is ${uriSan(cert) ?? '(none)'}, expected ${expected}`)),
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        },
      )
      .on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
      .on('error', reject);
  });
}

/**
 * GETs `http(s)://<address><path>`: HTTPS with `opts.tls`, from a `server` of that role. Any
 * status is answered; a connection that fails is an UnavailableError naming the URL and cause.
 */
export async function adminGet(address: string, path: string, opts: AdminClientOptions = {}, server: ControlRole = 'pilot'): Promise<{ url: string; ok: boolean; status: number; text: string }> {
  const url = `${opts.tls ? 'https' : 'http'}://${address}${path}`;
  const timeoutMs = opts.timeoutMs ?? 3000;
  try {
    if (opts.tls) {
      const r = await getMtls(new URL(url), opts.tls, server, timeoutMs);
      return { url, ...r, ok: r.status >= 200 && r.status < 300 };
    }
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { url, ok: r.ok, status: r.status, text: await r.text() };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new UnavailableError(`${url}: ${cause?.code ?? cause?.message ?? (err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** {@link adminGet}, then the JSON answer parsed with `schema`. */
export async function getJson<S extends z.ZodType>(address: string, path: string, schema: S, opts: AdminClientOptions = {}, server: ControlRole = 'pilot'): Promise<z.infer<S>> {
  const { url, ok, status, text } = await adminGet(address, path, opts, server);
  if (!ok) throw new OctoError(`${url}: HTTP ${status} ${text.trim().slice(0, 300)}`);
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
    return getJson(this.address, '/debug/pilots', MetaPilots, this.opts, 'meta-server');
  }

  sidecars(): Promise<MetaSidecarView[]> {
    return getJson(this.address, '/debug/sidecars', MetaSidecars, this.opts, 'meta-server');
  }
}

/** The dispatcher's debug API. */
export class DispatcherAdminClient {
  constructor(
    readonly address: string,
    private readonly opts: AdminClientOptions = {},
  ) {}

  watchers(): Promise<DispatcherWatcherView[]> {
    return getJson(this.address, '/debug/watchers', DispatcherWatchers, this.opts, 'dispatcher');
  }
}
