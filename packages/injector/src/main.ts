#!/usr/bin/env node
/**
 * octo-injector: the sidecar injection webhook. HTTPS on --webhook-port (POST /inject), with a
 * certificate it issues and rotates itself (tls-keeper.ts); /healthz, /readyz, /metrics on
 * --admin-port. Ready once it serves a certificate the webhook's caBundle trusts.
 */
import { createServer } from 'node:https';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { ConfigError, Counter, GracefulShutdown, createLogger, createMetricsRegistry, loadConfig, recordError, startAdminServer } from '@octo-mesh/runtime';
import { MESH_TLS_FILES } from '@octo-mesh/identity';
import { injectorConfig, type InjectorConfig } from './config.js';
import type { InjectionSettings } from './patch.js';
import { TlsKeeper } from './tls-keeper.js';
import { reviewAdmission } from './webhook.js';

const MAX_BODY = 3 * 1024 * 1024; // the API server's own limit on a request object

async function main(): Promise<void> {
  let config: InjectorConfig;
  try {
    config = loadConfig(injectorConfig, { envPrefix: 'OCTO_INJECTOR_' });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`octo-injector: ${err.message}\n`);
    process.exit(2);
  }
  const logger = createLogger('injector', config.logLevel);
  const registry = createMetricsRegistry('injector');
  const reviews = new Counter({ name: 'octo_injector_reviews_total', help: 'Admission reviews answered, by verdict.', labelNames: ['verdict'], registers: [registry] });
  const shutdown = new GracefulShutdown({ logger }).install();
  const kc = new KubeConfig();
  try {
    if (config.kubeconfig) kc.loadFromFile(config.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    process.stderr.write(`octo-injector: invalid configuration\n  kubeconfig: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const settings: InjectionSettings = {
    image: config.sidecarImage,
    imagePullPolicy: config.sidecarImagePullPolicy,
    metaServerAddress: config.metaServerAddress,
    cluster: config.cluster,
    resources: { requests: { cpu: config.sidecarCpuRequest, memory: config.sidecarMemoryRequest }, limits: { memory: config.sidecarMemoryLimit } },
    runAsUser: config.sidecarUid,
    ...(config.caUrl ? { ca: { url: config.caUrl, trustBundle: undefined, configMap: `${config.namespace}/${config.caTrustBundleConfigMap!}`, trustDomain: config.trustDomain, controlNamespace: config.namespace, rolePrefix: config.rolePrefix } } : {}),
  };
  const core = kc.makeApiClient(CoreV1Api);
  let trustBundleError: string | undefined;
  /** Reads the CA's roots (each certificate round): new pods get the current ones. */
  const readTrustBundle = async () => {
    if (!settings.ca) return;
    try {
      const cm = await core.readNamespacedConfigMap({ name: config.caTrustBundleConfigMap!, namespace: config.namespace });
      const pem = cm.data?.[MESH_TLS_FILES.roots];
      if (!pem?.includes('BEGIN CERTIFICATE')) throw new Error(`data["${MESH_TLS_FILES.roots}"] holds no PEM certificate`);
      if (pem !== settings.ca.trustBundle) logger.info('mesh CA roots read', { configMap: settings.ca.configMap });
      settings.ca.trustBundle = pem;
      trustBundleError = undefined;
    } catch (err) {
      trustBundleError = `ConfigMap ${settings.ca.configMap}: ${(err as Error).message}`;
      recordError(logger, 'injector trust bundle read', err, { configMap: settings.ca.configMap });
    }
  };

  const server = createServer({}, (req, res) => {
    if (req.method !== 'POST' || !req.url?.startsWith('/inject')) {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const { review, verdict } = reviewAdmission(body, settings);
      reviews.inc({ verdict: verdict.action });
      const pod = (body as { request?: { namespace?: string; object?: { metadata?: { name?: string; generateName?: string } } } })?.request;
      logger.info('admission review', { verdict: verdict.action, ...('reason' in verdict ? { reason: verdict.reason } : {}), ...('message' in verdict ? { message: verdict.message } : {}), namespace: pod?.namespace, name: pod?.object?.metadata?.name ?? pod?.object?.metadata?.generateName });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(review));
    });
  });

  const keeper = new TlsKeeper({
    kubeConfig: kc,
    namespace: config.namespace,
    secretName: config.secretName,
    webhookConfigName: config.webhookConfigName,
    dnsNames: [`${config.serviceName}.${config.namespace}.svc`, `${config.serviceName}.${config.namespace}.svc.cluster.local`, `${config.serviceName}.${config.namespace}`],
    servingHours: config.certValidityHours,
    logger,
    onCertificate: (cert, key) => server.setSecureContext({ cert, key }),
  });
  let listening = false;
  const round = async () => {
    await readTrustBundle();
    try {
      const did = await keeper.reconcile();
      if (!listening) {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(config.webhookPort, config.host, () => resolve());
        });
        listening = true;
        logger.info('listening', { webhookPort: (server.address() as { port: number }).port, adminPort: admin.port, host: config.host });
      }
      logger.debug('certificate round', { did });
    } catch (err) {
      keeper.lastError = (err as Error).message;
      logger.warn('certificate round failed; retrying', { error: keeper.lastError });
    }
  };
  const admin = await startAdminServer({
    host: config.host,
    port: config.adminPort,
    registry,
    readiness: {
      certificate: () => (keeper.ready && listening) || (keeper.lastError ?? 'no certificate yet'),
      ...(settings.ca ? { 'mesh CA roots': () => !!settings.ca!.trustBundle || (trustBundleError ?? 'not read yet') } : {}),
    },
  });
  shutdown.add('admin server', () => admin.close());
  await round();
  // Retry fast until the first certificate is served, then every certCheckIntervalMs.
  let timer: NodeJS.Timeout;
  const schedule = () => {
    timer = setTimeout(() => void round().then(schedule), keeper.ready && (!settings.ca || settings.ca.trustBundle) ? config.certCheckIntervalMs : 1000);
  };
  schedule();
  shutdown.add('certificate rounds', () => clearTimeout(timer));
  shutdown.add('webhook server', () => new Promise<void>((resolve) => (listening ? server.close(() => resolve()) : resolve())));
}

main().catch((err: unknown) => {
  process.stderr.write(`octo-injector: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
