import { meshAdminTlsConfigFields, meshCaConfigFields, meshTlsConfigFields, refineMeshCa } from '@octo-mesh/clients';
import { z } from 'zod';

/** The health checker's configuration: flags (`--dispatcher-address`), env (`OCTO_HEALTH_DISPATCHER_ADDRESS`) or a file (`--config`). */
export const healthCheckerConfig = z
  .object({
    checkerId: z.string().min(1).max(253).optional().describe('This replica\'s id (membership, logs, who wrote a verdict); default: the host name and pid.'),
    dispatcherAddress: z.string().regex(/^[^:\s]+:\d{1,5}$/, 'must be host:port').describe('host:port of the dispatcher: policies and endpoints are read from it, verdicts written to it.'),
    metaServerAddress: z
      .string()
      .regex(/^[^:\s]+:\d{1,5}$/, 'must be host:port')
      .optional()
      .describe('host:port of the meta server: replicas share the services by consistent hashing over the live ones; without it this replica checks every service.'),
    adminHost: z.string().default('127.0.0.1'),
    adminPort: z.coerce.number().int().min(0).max(65535).default(15014),
    advertiseHost: z.string().min(1).optional().describe('Host registered with the meta server for the admin address; default adminHost.'),
    maxUnhealthyPercent: z.coerce
      .number()
      .min(0)
      .max(100)
      .default(50)
      .describe('Panic rule for services whose RoutePolicy sets no loadBalancer.panicThreshold: at most this share of a service\'s endpoints is published unhealthy.'),
    maxConcurrentProbes: z.coerce.number().int().min(1).max(10_000).default(256).describe('Checks in flight at once, over all services.'),
    vnodes: z.coerce.number().int().min(1).max(100_000).default(256).describe('Virtual nodes per checker on the ring.'),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    shutdownGraceSeconds: z.coerce.number().min(0).max(300).default(5),
    ...meshTlsConfigFields,
    ...meshCaConfigFields,
    ...meshAdminTlsConfigFields,
  })
  .strict()
  .superRefine(refineMeshCa);

export type HealthCheckerConfig = z.infer<typeof healthCheckerConfig>;
