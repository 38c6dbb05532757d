import { meshAdminTlsConfigFields, meshCaConfigFields, meshTlsConfigFields, refineMeshCa } from '@octo-mesh/clients';
import { z } from 'zod';

/** The meta server's configuration: flags (`--grpc-port`), env (`OCTO_META_GRPC_PORT`) or a file (`--config`). */
export const metaServerConfig = z
  .object({
    host: z.string().default('127.0.0.1'),
    grpcPort: z.coerce.number().int().min(0).max(65535).default(15011),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014),
    pilotTtlMs: z.coerce.number().int().min(100).max(600_000).default(3000).describe('A pilot without a heartbeat this long is dead.'),
    heartbeatIntervalMs: z.coerce.number().int().min(50).max(60_000).default(1000),
    maxMovesPerSecond: z.coerce.number().int().min(1).max(100_000).default(5).describe('Sidecars moved per second at most when a pilot joins.'),
    vnodes: z.coerce.number().int().min(1).max(100_000).default(2048),
    instanceTtlMs: z.coerce.number().int().min(100).max(600_000).default(3000),
    dispatcherAddress: z.string().min(1).optional().describe('host:port of the dispatcher that registry instances are published to.'),
    kubernetes: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true')
      .describe('Keep pilot and health-checker membership in coordination.k8s.io Leases (any replica answers) instead of in memory.'),
    kubeconfig: z.string().min(1).optional().describe('Kubeconfig file; default: in-cluster, then $KUBECONFIG, then ~/.kube/config.'),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'must be a Kubernetes namespace name (DNS label)')
      .optional()
      .describe('Namespace of the pilot and checker Leases; default: the pod namespace in-cluster, else the kubeconfig context namespace, else "default".'),
    joinRampMs: z.coerce.number().int().min(0).max(3_600_000).default(60_000).describe('Kubernetes mode: a joining pilot takes over its share of workloads linearly over this long.'),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    ...meshTlsConfigFields,
    ...meshCaConfigFields,
    ...meshAdminTlsConfigFields,
  })
  .strict()
  .superRefine(refineMeshCa)
  .refine((c) => c.heartbeatIntervalMs * 2 <= c.pilotTtlMs, { path: ['heartbeatIntervalMs'], message: 'must be at most half of pilotTtlMs, or a single late heartbeat kills a pilot' })
  .refine((c) => c.kubernetes || (c.kubeconfig === undefined && c.namespace === undefined), { path: ['kubernetes'], message: 'must be true when kubeconfig or namespace is set' });

export type MetaServerConfig = z.infer<typeof metaServerConfig>;
