import { hostname } from 'node:os';
import { meshAdminTlsConfigFields, meshCaConfigFields, meshTlsConfigFields, refineMeshCa } from '@octo-mesh/clients';
import { z } from 'zod';

const bool = z.union([z.boolean(), z.enum(['true', 'false']).transform((s) => s === 'true')]);
const ms = (def: number, min: number, max: number, description: string) => z.coerce.number().int().min(min).max(max).default(def).describe(description);

/** The operator's configuration: flags (`--admin-port`), env (`OCTO_OPERATOR_ADMIN_PORT`) or a file (`--config`). */
export const operatorConfig = z
  .object({
    host: z.string().default('127.0.0.1').describe('Address the admin HTTP endpoint binds.'),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014).describe('/healthz, /readyz, /metrics, /debug/rollouts.'),
    kubeconfig: z.string().min(1).optional().describe('Kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config.'),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace name (DNS label)')
      .optional()
      .describe('Namespace of the leader Lease; default: the kubeconfig context namespace, else "default".'),
    watchNamespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace name (DNS label)')
      .optional()
      .describe('Reconcile only this namespace (a Role suffices); default all namespaces (ClusterRole).'),
    leaseName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain').default('octo-operator'),
    identity: z.string().min(1).max(253).default(`${hostname()}_${process.pid}`).describe('This replica in the Lease.'),
    leaseDurationMs: ms(15_000, 1000, 600_000, 'A leader that does not renew this long loses the Lease.'),
    renewDeadlineMs: ms(10_000, 500, 600_000, 'The leader gives up leading when it cannot renew this long.'),
    retryPeriodMs: ms(2_000, 100, 60_000, 'Between attempts to acquire or renew.'),
    dispatcherAddress: z
      .string()
      .regex(/^[^\s:/]+:\d{1,5}$/, 'must be host:port')
      .optional()
      .describe('Embedded mode: read and write ProxyVersions and RoutePolicies through this dispatcher (gRPC) instead of Kubernetes; one replica, no Lease, events as log lines.'),
    metaServerUrl: z.url().default('http://127.0.0.1:15014').describe('The meta server admin endpoint that lists the live pilots.'),
    pollIntervalMs: ms(1000, 50, 60_000, 'An active rollout is re-planned from a fresh fleet poll this often.'),
    fleetTimeoutMs: ms(2000, 50, 60_000, 'A pilot that does not answer within this holds the rollouts.'),
    statusMinIntervalMs: ms(1000, 0, 60_000, 'At most one status write per object per this long.'),
    routePolicyResyncMs: ms(5000, 100, 600_000, 'RoutePolicy status is refreshed from the pilots this often.'),
    repositoryDir: z
      .string()
      .min(1)
      .optional()
      .describe('Serve the proxy package repository (PUT/GET /packages/<sha256>) from this directory; no repository without it.'),
    repositoryPort: z.coerce.number().int().min(0).max(65535).default(15018).describe('Port of the package repository (HTTP, on host).'),
    repositoryMaxBytes: z.coerce.number().int().min(1).default(64 * 1024 * 1024).describe('Uploads larger than this are refused (413).'),
    repositoryOnly: bool
      .default(false)
      .describe('Serve only the package repository and the admin endpoints: no store, no Lease, no reconciling (the chart runs the repository this way).'),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    ...meshTlsConfigFields,
    ...meshCaConfigFields,
    ...meshAdminTlsConfigFields,
  })
  .strict()
  .superRefine(refineMeshCa)
  .refine((c) => !c.repositoryOnly || c.repositoryDir !== undefined, { path: ['repositoryDir'], message: 'is required with repositoryOnly (where the packages are stored)' })
  .refine((c) => c.repositoryDir === undefined || c.repositoryPort === 0 || c.repositoryPort !== c.adminPort, { path: ['repositoryPort'], message: 'must differ from adminPort' })
  .refine((c) => c.renewDeadlineMs < c.leaseDurationMs, { path: ['renewDeadlineMs'], message: 'must be shorter than leaseDurationMs, or two replicas can lead at once' })
  .refine((c) => c.retryPeriodMs < c.renewDeadlineMs, { path: ['retryPeriodMs'], message: 'must be shorter than renewDeadlineMs' });

export type OperatorConfig = z.infer<typeof operatorConfig>;
