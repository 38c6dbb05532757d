import { z } from 'zod';

/** A list from a file (array) or from a flag/env (`a,b` or a JSON array). */
const list = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    const s = v.trim();
    if (s.startsWith('[')) {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        return v; // left to the schema, which names the field
      }
    }
    return s === '' ? [] : s.split(',').map((x) => x.trim());
  }, z.array(item));

const rootEntry = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be a short lower-case name ([a-z0-9._-])'),
    cert: z.string().min(1).describe('PEM certificate file of the root.'),
    key: z.string().min(1).optional().describe('PEM private key file (PKCS#8 or SEC1); required for the signing root.'),
  })
  .strict();

/**
 * The mesh CA's configuration: defaults < file (`--config`) < env (`OCTO_CA_*`) < flags.
 * `roots` (a list of `{name, cert, key}` file paths) in a file or as a JSON flag; without roots,
 * `stateDir` holds a root generated on first start (embedded mode).
 */
export const caConfig = z
  .object({
    trustDomain: z.string().regex(/^[a-z0-9]([a-z0-9._-]{0,253}[a-z0-9])?$/, 'must be a lower-case DNS-like name').default('cluster.local'),
    host: z.string().default('0.0.0.0').describe('Address the HTTPS API listens on.'),
    port: z.coerce.number().int().min(0).max(65535).default(15016),
    adminHost: z.string().default('127.0.0.1').describe('Address of /healthz, /readyz, /metrics: loopback unless told otherwise (in Kubernetes the pod IP, for probes).'),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014),
    roots: list(rootEntry).default([]).describe('Roots the CA holds; their unexpired certificates are the trust bundle.'),
    signing: z.string().min(1).optional().describe('Name of the root that signs; required with more than one root.'),
    stateDir: z.string().min(1).optional().describe('Where a root is generated on first start (and kept) when `roots` is empty.'),
    generatedRootLifetimeSeconds: z.coerce.number().int().min(60).default(10 * 365 * 86_400),
    maxTtlSeconds: z.coerce.number().int().min(1).default(86_400),
    defaultTtlSeconds: z.coerce.number().int().min(1).default(86_400),
    credentials: z
      .string()
      .min(1)
      .describe('`kubernetes` (ServiceAccount tokens checked by TokenReview) or the path of a bootstrap credentials file.'),
    tokenAudience: z.string().min(1).default('octo-ca').describe('Audience a ServiceAccount token must carry (kubernetes mode).'),
    kubeconfig: z.string().min(1).optional().describe('kubeconfig file (kubernetes mode); default: in-cluster, then ~/.kube/config.'),
    rootSecret: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a Secret name').optional().describe('Kubernetes mode: the Secret (in `namespace`) holding the root — created with a new root when absent — copied into stateDir at start.'),
    trustBundleConfigMap: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a ConfigMap name').optional().describe('Kubernetes mode: the ConfigMap (in `namespace`) the CA keeps its trust bundle in (key root-cert.pem) for pods to mount.'),
    allowedNamespaces: list(z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a namespace name')).default([]).describe('Namespaces that may have certificates; empty: all.'),
    namespace: z.string().default('octo-system').describe('The CA\'s own namespace (its serving certificate is sa/octo-ca there).'),
    servingDnsNames: list(z.string().min(1)).default(['localhost', 'octo-ca', 'octo-ca.octo-system.svc', 'octo-ca.octo-system.svc.cluster.local']),
    servingIpAddresses: list(z.ipv4().or(z.ipv6())).default(['127.0.0.1']),
    servingTtlSeconds: z.coerce.number().int().min(10).default(86_400).describe('Lifetime of the CA\'s own serving certificate; renewed at half of it without restart.'),
    maxBodyBytes: z.coerce.number().int().min(1024).default(64 * 1024),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    shutdownGraceSeconds: z.coerce.number().min(0).max(300).default(5),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.defaultTtlSeconds > c.maxTtlSeconds) ctx.addIssue({ code: 'custom', path: ['defaultTtlSeconds'], message: `${c.defaultTtlSeconds} exceeds maxTtlSeconds ${c.maxTtlSeconds}` });
    for (const field of ['rootSecret', 'trustBundleConfigMap'] as const) if (c[field] && c.credentials !== 'kubernetes') ctx.addIssue({ code: 'custom', path: [field], message: 'needs credentials: kubernetes' });
    if (c.rootSecret && c.roots.length) ctx.addIssue({ code: 'custom', path: ['rootSecret'], message: 'give roots or rootSecret, not both' });
    if (c.rootSecret && !c.stateDir) ctx.addIssue({ code: 'custom', path: ['stateDir'], message: 'required with rootSecret (where the root is copied for loading)' });
    if (c.roots.length === 0 && !c.stateDir) ctx.addIssue({ code: 'custom', path: ['roots'], message: 'no roots: list roots, or give stateDir to generate one' });
    if (c.roots.length > 1 && !c.signing) ctx.addIssue({ code: 'custom', path: ['signing'], message: `required with ${c.roots.length} roots (one of ${c.roots.map((r) => r.name).join(', ')})` });
    if (c.signing && c.roots.length && !c.roots.some((r) => r.name === c.signing)) ctx.addIssue({ code: 'custom', path: ['signing'], message: `no root named ${JSON.stringify(c.signing)}` });
    const names = new Set<string>();
    c.roots.forEach((r, i) => {
      if (names.has(r.name)) ctx.addIssue({ code: 'custom', path: ['roots', i, 'name'], message: `${JSON.stringify(r.name)} appears twice` });
      names.add(r.name);
    });
  });

export type CaConfig = z.infer<typeof caConfig>;
/** What `startCa` takes: the parsed configuration with defaults filled (parse an object with `caConfig.parse`). */
export type CaConfigInput = z.input<typeof caConfig>;
