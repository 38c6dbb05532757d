import { meshAdminTlsConfigFields, meshCaConfigFields, meshTlsConfigFields, refineMeshCa } from '@octo-mesh/clients';
import { z } from 'zod';

/** The dispatcher's configuration: flags (`--grpc-port`), env (`OCTO_DISPATCHER_GRPC_PORT`) or a file (`--config`). */
export const dispatcherConfig = z
  .object({
    host: z.string().default('127.0.0.1').describe('Address the gRPC and admin servers bind to.'),
    grpcPort: z.coerce.number().int().min(0).max(65535).default(15012),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014),
    dataDir: z.string().min(1).optional().describe('Persist the in-memory store here (embedded mode).'),
    watchDir: z.string().min(1).optional().describe('A directory of YAML manifests to apply and follow.'),
    kubernetes: z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true')
      .describe('Read RoutePolicies, ProxyVersions, Services, EndpointSlices and Pods from the API server.'),
    kubeconfig: z.string().min(1).optional().describe('Kubeconfig file; default: in-cluster, then $KUBECONFIG.'),
    coalesceMs: z.coerce.number().int().min(0).max(5000).default(10),
    registryGraceMs: z.coerce
      .number()
      .int()
      .min(0)
      .max(600_000)
      .optional()
      .describe(
        'Without --data-dir the store starts empty: watchers (pilots) are answered only this long after the start, once the meta server (republishing every 5 s) has published its registry again. Default: 6000 with --kubernetes, else 0.',
      ),
    historySize: z.coerce.number().int().min(10).max(10_000_000).default(10_000),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    ...meshTlsConfigFields,
    ...meshCaConfigFields,
    ...meshAdminTlsConfigFields,
  })
  .strict()
  .superRefine(refineMeshCa);

export type DispatcherConfig = z.infer<typeof dispatcherConfig>;
