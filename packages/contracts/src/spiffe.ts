/**
 * SPIFFE IDs of the mesh: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. Pure.
 * Trust domains are lower-case DNS-like names (the SPIFFE ID spec allows `[a-z0-9._-]`);
 * namespaces and service accounts are DNS-1123 labels / subdomains as Kubernetes names them.
 */

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

/** A SPIFFE ID that is not one of the mesh's; `part` names what is wrong. */
export class SpiffeIdError extends Error {
  constructor(
    readonly part: 'scheme' | 'trustDomain' | 'path' | 'namespace' | 'serviceAccount',
    message: string,
  ) {
    super(`${part}: ${message}`);
    this.name = 'SpiffeIdError';
  }
}

const TRUST_DOMAIN = /^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/;
// Namespaces are DNS-1123 labels; service account names DNS-1123 subdomains.
const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Checks one part; returns an error message or undefined. */
export function checkIdentityPart(part: 'trustDomain' | 'namespace' | 'serviceAccount', value: string): string | undefined {
  const re = part === 'trustDomain' ? TRUST_DOMAIN : part === 'namespace' ? LABEL : SUBDOMAIN;
  if (re.test(value)) return undefined;
  const rule =
    part === 'trustDomain'
      ? 'lower-case letters, digits, ".", "-", "_", starting and ending with a letter or digit'
      : part === 'namespace'
        ? 'a DNS-1123 label (lower-case letters, digits, "-", at most 63, starting and ending with a letter or digit)'
        : 'a DNS-1123 subdomain (lower-case labels separated by ".", at most 253)';
  return `${JSON.stringify(value)} is not valid: must be ${rule}`;
}

/** The SPIFFE ID of an identity; throws SpiffeIdError for an invalid part. */
export function spiffeId(id: WorkloadIdentity): string {
  for (const part of ['trustDomain', 'namespace', 'serviceAccount'] as const) {
    const problem = checkIdentityPart(part, id[part]);
    if (problem) throw new SpiffeIdError(part, problem);
  }
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Parses a mesh SPIFFE ID, rejecting anything else with SpiffeIdError naming the part. */
export function parseSpiffeId(uri: string): WorkloadIdentity {
  if (!uri.startsWith('spiffe://')) throw new SpiffeIdError('scheme', `${JSON.stringify(uri)} does not start with "spiffe://"`);
  const rest = uri.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const tdProblem = checkIdentityPart('trustDomain', trustDomain);
  if (tdProblem) throw new SpiffeIdError('trustDomain', tdProblem);
  const segs = slash < 0 ? [] : rest.slice(slash + 1).split('/');
  if (segs.length !== 4 || segs[0] !== 'ns' || segs[2] !== 'sa') {
    throw new SpiffeIdError('path', `${JSON.stringify(slash < 0 ? '' : rest.slice(slash))} is not "/ns/<namespace>/sa/<service-account>"`);
  }
  const [, namespace, , serviceAccount] = segs as [string, string, string, string];
  const nsProblem = checkIdentityPart('namespace', namespace);
  if (nsProblem) throw new SpiffeIdError('namespace', nsProblem);
  const saProblem = checkIdentityPart('serviceAccount', serviceAccount);
  if (saProblem) throw new SpiffeIdError('serviceAccount', saProblem);
  return { trustDomain, namespace, serviceAccount };
}
