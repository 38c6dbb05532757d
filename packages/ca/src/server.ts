/**
 * The mesh CA's HTTPS API (README of @octo-mesh/identity, "The CA's API") and its admin port.
 * The TLS server asks for a client certificate but does not require one (`requestCert`, not
 * `rejectUnauthorized`): a first issuance comes with a bearer token and no certificate, a renewal
 * with the certificate the workload holds, whose chain is checked here against the trust bundle.
 */
import { access, constants, readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  BootstrapTokens,
  CaRefusal,
  CertificateAuthority,
  checkNamespace,
  newKeyPair,
  spkiOf,
  type CredentialSubject,
  type CredentialVerifier,
} from '@octo-mesh/identity';
import { ConfigError, Counter, Gauge, Histogram, createLogger, zodIssues, createMetricsRegistry, recordError, startAdminServer, type AdminServer, type Logger, type Registry } from '@octo-mesh/runtime';
import { caConfig, type CaConfig, type CaConfigInput } from './config.js';
import { loadRoots } from './roots.js';

export interface RunningCa {
  /** `https://<host>:<port>` of the API (127.0.0.1 when listening on every address). */
  url: string;
  port: number;
  adminPort: number;
  /** The trust bundle now (PEM roots): what clients of the API must trust. */
  trustBundle(): string[];
  authority: CertificateAuthority;
  stop(): Promise<void>;
}

export interface CaDeps {
  logger?: Logger;
  registry?: Registry;
  /** Required in `kubernetes` mode (main.ts builds a TokenReviewVerifier); a file path loads BootstrapTokens. */
  verifier?: CredentialVerifier;
}

class CaMetrics {
  readonly requests: Counter<'result' | 'reason'>;
  readonly latency: Histogram<'result'>;
  readonly rootExpiry: Gauge<'root' | 'signing'>;
  readonly servingExpiry: Gauge;
  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({ name: 'octo_ca_certificate_requests_total', help: 'Certificate requests by result (issued, refused, failed) and reason (the credential kind when issued, why otherwise).', labelNames: ['result', 'reason'], registers });
    this.latency = new Histogram({ name: 'octo_ca_issuance_duration_seconds', help: 'Time from request received to answer sent, by result.', labelNames: ['result'], buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers });
    this.rootExpiry = new Gauge({ name: 'octo_ca_root_expiry_timestamp_seconds', help: 'Unix time at which each root expires; signing="true" for the one that signs.', labelNames: ['root', 'signing'], registers });
    this.servingExpiry = new Gauge({ name: 'octo_ca_serving_certificate_expiry_timestamp_seconds', help: 'Unix time at which the CA\'s own serving certificate expires.', registers });
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, 'body_too_large', `body: larger than ${limit} bytes`));
        // Discard the rest so that the answer can still be sent on this connection.
        req.removeAllListeners('data');
        req.resume();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Starts the CA (API and admin servers). `config` is validated by `caConfig`; an invalid one throws naming the field. */
export async function startCa(input: CaConfigInput | CaConfig, deps: CaDeps = {}): Promise<RunningCa> {
  const parsed = caConfig.safeParse(input);
  if (!parsed.success) throw new ConfigError('invalid configuration', zodIssues(parsed.error));
  const config = parsed.data;
  const logger = deps.logger ?? createLogger('ca', config.logLevel);
  const registry = deps.registry ?? createMetricsRegistry('ca');
  const metrics = new CaMetrics(registry);
  const loaded = await loadRoots(config, logger);
  const authority = new CertificateAuthority({
    trustDomain: config.trustDomain,
    roots: loaded.roots,
    signing: loaded.signing,
    defaultTtlSeconds: config.defaultTtlSeconds,
    maxTtlSeconds: config.maxTtlSeconds,
  });
  for (const r of authority.rootsInfo()) metrics.rootExpiry.set({ root: r.name, signing: String(r.signing) }, Math.floor(r.notAfter.getTime() / 1000));
  let verifier = deps.verifier;
  if (!verifier) {
    if (config.credentials === 'kubernetes') throw new Error('credentials: kubernetes mode needs a TokenReview verifier (startCa deps.verifier)');
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(config.credentials, 'utf8'));
    } catch (err) {
      throw new Error(`credentials: cannot read ${config.credentials} as JSON (${(err as Error).message})`);
    }
    verifier = new BootstrapTokens(raw);
  }
  const v = verifier;

  // The CA's own serving certificate, sa/octo-ca in its namespace, re-issued at half its life.
  const serving = () => {
    const { privateKey } = newKeyPair();
    const issued = authority.sign(spkiOf(privateKey), { namespace: config.namespace, serviceAccount: 'octo-ca' }, config.servingTtlSeconds, new Date(), {
      dnsNames: config.servingDnsNames,
      ipAddresses: config.servingIpAddresses,
    });
    metrics.servingExpiry.set(Math.floor(issued.expiresAt.getTime() / 1000));
    return { cert: issued.certificateChain.join(''), key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, expiresAt: issued.expiresAt };
  };
  let current = serving();

  const answer = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };

  const authenticate = async (req: IncomingMessage, now: Date): Promise<{ subject: CredentialSubject; via: string }> => {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
      if (!m) throw new CaRefusal(401, 'invalid_credential', 'Authorization: expected "Bearer <token>"');
      let subject: CredentialSubject;
      try {
        subject = await v.verify(m[1]!);
      } catch (err) {
        if (err instanceof CaRefusal) throw err;
        throw new HttpError(503, 'verifier_unavailable', `credential check (${v.kind}) failed: ${(err as Error).message}`);
      }
      return { subject, via: v.kind };
    }
    const peer = (req.socket as TLSSocket).getPeerCertificate?.(false);
    const id = authority.authenticatePeer(peer && 'raw' in peer ? peer.raw : undefined, now);
    return { subject: { namespace: id.namespace, serviceAccount: id.serviceAccount }, via: 'renewal' };
  };

  const issueRequest = async (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const now = new Date();
    let result = 'issued';
    let reason = '';
    let status = 200;
    let fields: Record<string, unknown> = {};
    try {
      const { subject, via } = await authenticate(req, now);
      fields = { namespace: subject.namespace, serviceAccount: subject.serviceAccount, via };
      checkNamespace(subject.namespace, config.allowedNamespaces);
      const raw = await readBody(req, config.maxBodyBytes);
      let body: { csr?: unknown; ttlSeconds?: unknown };
      try {
        body = JSON.parse(raw.toString('utf8')) as typeof body;
      } catch {
        throw new CaRefusal(400, 'bad_request', 'body: not JSON');
      }
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new CaRefusal(400, 'bad_request', 'body: must be a JSON object {"csr", "ttlSeconds"}');
      if (body.csr === undefined) throw new CaRefusal(400, 'bad_csr', 'csr: missing');
      const issued = authority.issue(body.csr, subject, body.ttlSeconds, now);
      reason = via;
      answer(res, 200, { spiffeId: issued.spiffeId, certificateChain: issued.certificateChain, trustBundle: issued.trustBundle, expiresAt: issued.expiresAt.toISOString() });
      logger.info('certificate issued', { ...fields, spiffeId: issued.spiffeId, serialNumber: issued.serialNumber, expiresAt: issued.expiresAt.toISOString() });
    } catch (err) {
      if (err instanceof CaRefusal || err instanceof HttpError) {
        status = err.status;
        reason = err.reason;
        result = err.status >= 500 ? 'failed' : 'refused';
      } else {
        status = 500;
        reason = 'internal';
        result = 'failed';
      }
      recordError(logger, 'ca certificate request', err, { ...fields, status, reason, remote: req.socket.remoteAddress }, status >= 500 ? 'error' : 'warn');
      answer(res, status, { error: status === 500 ? 'internal error' : (err as Error).message, reason });
    } finally {
      metrics.requests.inc({ result, reason });
      metrics.latency.observe({ result }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/v1/certificates') {
      if (req.method !== 'POST') return answer(res, 405, { error: `${req.method} not allowed; POST` });
      return void issueRequest(req, res);
    }
    if (path === '/v1/trust-bundle') {
      if (req.method !== 'GET') return answer(res, 405, { error: `${req.method} not allowed; GET` });
      return answer(res, 200, { trustBundle: authority.trustBundle(new Date()) });
    }
    answer(res, 404, { error: `no route ${path}` });
  };

  const server: Server = createServer({ cert: current.cert, key: current.key, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, handle);
  server.on('tlsClientError', (err, socket) => recordError(logger, 'ca tls handshake', err, { remote: socket.remoteAddress }, 'debug'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let renewTimer: NodeJS.Timeout | undefined;
  const scheduleServingRenewal = () => {
    const delay = Math.max(1000, (current.expiresAt.getTime() - Date.now()) / 2);
    renewTimer = setTimeout(() => {
      try {
        current = serving();
        server.setSecureContext({ cert: current.cert, key: current.key });
        logger.info('serving certificate renewed', { expiresAt: current.expiresAt.toISOString() });
      } catch (err) {
        recordError(logger, 'ca serving certificate renewal', err, {}, 'error');
      }
      scheduleServingRenewal();
    }, delay);
    renewTimer.unref();
  };
  scheduleServingRenewal();

  let admin: AdminServer;
  try {
    admin = await startAdminServer({
      host: config.adminHost,
      port: config.adminPort,
      registry,
      readiness: {
        'signing root': () => authority.canSign(new Date()),
        'signing key': () =>
          access(loaded.signingKeyPath, constants.R_OK).then(
            () => true,
            (err: NodeJS.ErrnoException) => `cannot read ${loaded.signingKeyPath} (${err.code ?? err.message})`,
          ),
      },
      routes: {
        '/debug/roots': () => authority.rootsInfo().map((r) => ({ name: r.name, notAfter: r.notAfter.toISOString(), signing: r.signing })),
      },
    });
  } catch (err) {
    server.close();
    throw err;
  }
  const host = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  logger.info('listening', { port, adminPort: admin.port, trustDomain: config.trustDomain, signing: authority.signingRootName, roots: authority.rootsInfo().length, credentials: v.kind });
  return {
    url: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    adminPort: admin.port,
    trustBundle: () => authority.trustBundle(new Date()),
    authority,
    stop: async () => {
      clearTimeout(renewTimer);
      await Promise.all([
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        }),
        admin.close(),
      ]);
    },
  };
}
