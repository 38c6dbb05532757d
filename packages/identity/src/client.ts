/**
 * The CA's HTTPS API from a workload's side: ask for a certificate (bearer credential or client
 * certificate), fetch the trust bundle. The CA's server certificate is verified against the
 * trust bundle the caller already has (given out of band at first, then the CA's own answers).
 */
import { request } from 'node:https';

export interface CaEndpoint {
  /** e.g. `https://127.0.0.1:15016` */
  url: string;
  /** PEM roots that the CA's serving certificate must chain to. */
  trustBundle: string[];
  /** TLS server name to check; default the URL's host. */
  serverName?: string;
  timeoutMs?: number;
}

/** The CA's `200` answer, as the README states it. */
export interface CertificateResponse {
  spiffeId: string;
  certificateChain: string[];
  trustBundle: string[];
  expiresAt: string;
}

/** A non-2xx answer or a failed exchange; `status` is 0 when no answer came. */
export class CaRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'CaRequestError';
  }
}

function call(ep: CaEndpoint, method: string, path: string, body: unknown, auth: { token?: string; certPem?: string; keyPem?: string }): Promise<unknown> {
  const url = new URL(path, ep.url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method,
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port || 443,
        path: url.pathname,
        ca: ep.trustBundle,
        ...(ep.serverName ? { servername: ep.serverName } : {}),
        ...(auth.certPem ? { cert: auth.certPem, key: auth.keyPem } : {}),
        agent: false,
        timeout: ep.timeoutMs ?? 10_000,
        headers: {
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          ...(auth.token ? { authorization: `Bearer ${auth.token}` } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => reject(new CaRequestError(0, `${method} ${url.href}: ${err.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          if (res.statusCode !== 200) {
            const reason = (parsed as { error?: string } | undefined)?.error ?? text.slice(0, 200);
            return reject(new CaRequestError(res.statusCode ?? 0, `${method} ${url.href}: ${res.statusCode} ${reason}`));
          }
          if (parsed === undefined) return reject(new CaRequestError(200, `${method} ${url.href}: answer is not JSON`));
          resolve(parsed);
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${ep.timeoutMs ?? 10_000} ms`)));
    req.on('error', (err) => reject(new CaRequestError(0, `${method} ${url.href}: ${err.message}`)));
    req.end(payload);
  });
}

/**
 * `POST /v1/certificates`. Give `token` (first issuance) or `clientCert` (renewal). Resolves with
 * the answer, checked for shape; rejects with CaRequestError (status 400/401/403/5xx, or 0).
 */
export async function requestCertificate(ep: CaEndpoint, req: { csrPem: string; ttlSeconds?: number; token?: string; clientCert?: { certPem: string; keyPem: string } }): Promise<CertificateResponse> {
  const r = (await call(ep, 'POST', '/v1/certificates', { csr: req.csrPem, ...(req.ttlSeconds ? { ttlSeconds: req.ttlSeconds } : {}) }, {
    ...(req.token ? { token: req.token } : {}),
    ...(req.clientCert ? { certPem: req.clientCert.certPem, keyPem: req.clientCert.keyPem } : {}),
  })) as Partial<CertificateResponse>;
  if (typeof r.spiffeId !== 'string' || !Array.isArray(r.certificateChain) || !Array.isArray(r.trustBundle) || typeof r.expiresAt !== 'string') {
    throw new CaRequestError(200, `POST ${ep.url}/v1/certificates: answer lacks spiffeId, certificateChain, trustBundle or expiresAt`);
  }
  return r as CertificateResponse;
}

/** `GET /v1/trust-bundle`. */
export async function fetchTrustBundle(ep: CaEndpoint): Promise<string[]> {
  const r = (await call(ep, 'GET', '/v1/trust-bundle', undefined, {})) as { trustBundle?: unknown };
  if (!Array.isArray(r.trustBundle)) throw new CaRequestError(200, `GET ${ep.url}/v1/trust-bundle: answer lacks trustBundle`);
  return r.trustBundle as string[];
}
