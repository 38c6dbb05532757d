/**
 * Retry conditions the mesh understands, with Envoy's names (`x-envoy-retry-on` and
 * `x-envoy-retry-grpc-on`; the gRPC ones match `grpc-status`). One list for the RoutePolicy
 * schema and the proxy's RetryPolicy translation, so the two cannot drift. A module of its own,
 * so the proxy imports it without loading the schemas.
 */
export const RETRY_ON = [
  '5xx',
  'gateway-error',
  'reset',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;

export type RetryOn = (typeof RETRY_ON)[number];
