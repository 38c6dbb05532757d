/**
 * ServiceAccount tokens checked by the API server (TokenReview, authentication.k8s.io/v1): the
 * token must be authenticated for our audience and belong to a ServiceAccount
 * (`system:serviceaccount:<ns>:<sa>`). Here and not in @octo-mesh/identity because only a
 * deployable may talk to the API server.
 */
import { AuthenticationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { CaRefusal, type CredentialSubject, type CredentialVerifier } from '@octo-mesh/identity';

const SA_USER = /^system:serviceaccount:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/;

/** The subject of a TokenReview's status, or the reason it is not one (pure, table-tested). */
export function subjectOfReview(status: { authenticated?: boolean; error?: string; audiences?: string[]; user?: { username?: string } } | undefined, audience: string): CredentialSubject | string {
  if (!status?.authenticated) return `token not authenticated by the API server${status?.error ? ` (${status.error})` : ''}`;
  // The API server answers with the audiences the token is valid for among those asked; an empty
  // list from an old server means it ignored the audience, which we do not accept.
  if (!status.audiences?.includes(audience)) return `token is not valid for audience ${JSON.stringify(audience)}`;
  const m = SA_USER.exec(status.user?.username ?? '');
  if (!m) return `token belongs to ${JSON.stringify(status.user?.username ?? '')}, not a ServiceAccount`;
  return { namespace: m[1]!, serviceAccount: m[3]! };
}

/** Rejects with CaRefusal 401 for a token the API server does not vouch for; other errors (API server down) pass through. */
export class TokenReviewVerifier implements CredentialVerifier {
  readonly kind = 'kubernetes-token';
  private readonly api: AuthenticationV1Api;

  constructor(
    kubeConfig: KubeConfig,
    private readonly audience = 'octo-ca',
  ) {
    this.api = kubeConfig.makeApiClient(AuthenticationV1Api);
  }

  async verify(token: string): Promise<CredentialSubject> {
    const review = await this.api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [this.audience] } } });
    const subject = subjectOfReview(review.status, this.audience);
    if (typeof subject === 'string') throw new CaRefusal(401, 'invalid_credential', `Authorization: ${subject}`);
    return subject;
  }
}
