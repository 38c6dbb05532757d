/**
 * OCTO extension generator: the ServiceGovernance resource of a service — which RoutePolicy (and
 * generation) its xDS came from, and the active health check the control plane runs centrally.
 */
import { parseDuration, type RoutePolicy } from '@octo-mesh/api';
import { ServiceGovernance } from '@octo-mesh/proto/gen/octo/mesh/v1/xds.js';
import { policyKey, serviceHost, type Service } from '../model.js';
import { fieldError } from './common.js';

export function generateGovernance(service: Service, policy: RoutePolicy | undefined, clusters: readonly string[]): ServiceGovernance {
  const hc = policy?.spec.healthCheck;
  const ms = (text: string, path: string) => parseDuration(text) ?? fieldError(path, `invalid duration ${JSON.stringify(text)}`);
  return ServiceGovernance.fromPartial({
    service: serviceHost(service),
    routePolicy: policy ? policyKey(policy) : '',
    generation: policy?.metadata.generation ?? 0,
    clusters: [...clusters],
    ...(hc
      ? {
          healthCheck: {
            httpPath: hc.http?.path ?? '',
            tcp: !!hc.tcp,
            ...(hc.grpc ? { grpc: { service: hc.grpc.service ?? '', authority: hc.grpc.authority ?? '' } } : {}),
            expectedStatuses: hc.http?.expectedStatuses ?? [],
            intervalMs: ms(hc.interval, 'spec.healthCheck.interval'),
            timeoutMs: ms(hc.timeout, 'spec.healthCheck.timeout'),
            healthyThreshold: hc.healthyThreshold,
            unhealthyThreshold: hc.unhealthyThreshold,
          },
        }
      : {}),
  });
}
