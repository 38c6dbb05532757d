/**
 * Who is asking for a first certificate: a credential (bearer token) checked by a verifier.
 * Two verifiers exist: bootstrap tokens from the CA's credentials file (embedded mode, here) and
 * Kubernetes TokenReview (in packages/ca, the only place allowed to talk to the API server).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CaRefusal } from './policy.js';
import { checkIdentityPart } from './spiffe.js';

/** The namespace and service account a credential proves. */
export interface CredentialSubject {
  namespace: string;
  serviceAccount: string;
}

/**
 * Checks a bearer credential. Resolves to the subject it proves; rejects with CaRefusal 401 for
 * a credential that is not valid, or with another error when the check itself could not run
 * (e.g. the API server is unreachable: the CA answers 503 and the client retries).
 */
export interface CredentialVerifier {
  readonly kind: string;
  verify(token: string): Promise<CredentialSubject>;
}

const identityPart = (part: 'namespace' | 'serviceAccount') =>
  z.string().superRefine((v, ctx) => {
    const problem = checkIdentityPart(part, v);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** The credentials file: `{"tokens":[{"sha256":"<hex>","namespace":"…","serviceAccount":"…"}]}` — hashes only. */
export const credentialsFile = z
  .object({
    tokens: z.array(
      z
        .object({
          sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (the SHA-256 of the token)'),
          namespace: identityPart('namespace'),
          serviceAccount: identityPart('serviceAccount'),
        })
        .strict(),
    ),
  })
  .strict();
export type CredentialsFile = z.infer<typeof credentialsFile>;

/** The SHA-256 of a token, hex (what the credentials file holds). */
export const tokenHash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');

/** Bootstrap tokens: a token is valid when its SHA-256 is listed; compared in constant time. */
export class BootstrapTokens implements CredentialVerifier {
  readonly kind = 'bootstrap-token';
  private readonly entries: { hash: Buffer; subject: CredentialSubject }[];

  /** `file` is the parsed JSON of a credentials file; throws naming the bad field (`tokens[2].sha256`). */
  constructor(file: unknown) {
    const parsed = credentialsFile.safeParse(file);
    if (!parsed.success) {
      const i = parsed.error.issues[0]!;
      throw new Error(`credentials file: ${i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '')}: ${i.message}`);
    }
    this.entries = parsed.data.tokens.map((t) => ({ hash: Buffer.from(t.sha256, 'hex'), subject: { namespace: t.namespace, serviceAccount: t.serviceAccount } }));
  }

  get size(): number {
    return this.entries.length;
  }

  async verify(token: string): Promise<CredentialSubject> {
    const h = createHash('sha256').update(token, 'utf8').digest();
    let found: CredentialSubject | undefined;
    // Compare against every entry (no early exit), each compare constant-time.
    for (const e of this.entries) if (timingSafeEqual(e.hash, h) && !found) found = e.subject;
    if (!found) throw new CaRefusal(401, 'invalid_credential', 'Authorization: bearer token is not a known bootstrap token');
    return found;
  }
}
