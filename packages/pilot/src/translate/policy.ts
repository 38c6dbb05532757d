/**
 * Which RoutePolicy governs a service. Policies are re-validated here (a YAML-directory source
 * has no API server in front of it), and when several target one service the oldest wins, so a
 * newly applied conflicting policy can never take traffic away from a working one.
 */
import { routePolicy, type RoutePolicy } from '@octo-mesh/api';
import { keyOf, policyKey, type ServiceData } from '../model.js';

/** What translation made of one RoutePolicy. */
export interface PolicyVerdict {
  /** `namespace/name`. */
  policy: string;
  generation: number;
  accepted: boolean;
  /** Why it was rejected (names the field), or absent. */
  reason?: string;
}

export interface PolicySelection {
  /** The policy to translate, already validated and defaulted by the schema. */
  policy?: RoutePolicy;
  /** One verdict per *rejected* policy; the selected one gets its verdict after translation. */
  rejected: PolicyVerdict[];
}

export const generationOf = (p: RoutePolicy): number => p.metadata.generation ?? 0;

function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${String(seg)}` : String(seg);
  return out;
}

export function selectPolicy(data: ServiceData): PolicySelection {
  const rejected: PolicyVerdict[] = [];
  const valid: RoutePolicy[] = [];
  const ports = new Set(data.service.spec.ports.map((p) => p.port));
  for (const raw of data.policies) {
    const key = policyKey(raw);
    const generation = generationOf(raw);
    const parsed = routePolicy.safeParse(raw);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      rejected.push({ policy: key, generation, accepted: false, reason: `${issuePath(i.path)}: ${i.message}` });
      continue;
    }
    const p = parsed.data;
    if (p.spec.targetRef.port !== undefined && !ports.has(p.spec.targetRef.port)) {
      rejected.push({
        policy: key,
        generation,
        accepted: false,
        reason: `spec.targetRef.port: service ${keyOf(data.service)} has no port ${p.spec.targetRef.port} (ports: ${[...ports].join(', ') || 'none'})`,
      });
      continue;
    }
    valid.push(p);
  }
  valid.sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || policyKey(a).localeCompare(policyKey(b)));
  const [winner, ...losers] = valid;
  for (const p of losers)
    rejected.push({
      policy: policyKey(p),
      generation: generationOf(p),
      accepted: false,
      reason: `spec.targetRef: conflicts with RoutePolicy ${policyKey(winner!)}, which already governs service ${keyOf(data.service)}`,
    });
  return winner ? { policy: winner, rejected } : { rejected };
}
