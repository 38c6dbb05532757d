/**
 * Generated protobuf types the mesh speaks, re-exported under short names, plus the type URLs
 * of the resources on an ADS stream. `./codecs.js` is the same without the gRPC services (and
 * without `@grpc/grpc-js`).
 *
 * Everything under `./gen` is produced by `npm run gen:proto` and never edited by hand. Deep
 * imports (`@octo-mesh/proto/gen/envoy/...js`) reach any other generated type.
 */
export * from './codecs.js';
export {
  AggregatedDiscoveryServiceClient,
  AggregatedDiscoveryServiceService,
  type AggregatedDiscoveryServiceServer,
} from './gen/envoy/service/discovery/v3/ads.js';
export {
  SidecarStatusReport,
  SidecarStatusAck,
  SidecarStatusServiceService,
  SidecarStatusServiceClient,
  type SidecarStatusServiceServer,
} from './gen/octo/mesh/v1/sidecar_status.js';
export {
  DispatcherClient,
  DispatcherService,
  type DispatcherServer,
  Subscription as DispatcherSubscription,
  WatchRequest as DispatcherWatchRequest,
  WatchEvent as DispatcherWatchEvent,
  WatchEvent_Type as DispatcherWatchEventType,
  Resource as DispatcherResource,
  ListResponse as DispatcherListResponse,
} from './gen/octo/mesh/v1/dispatcher.js';
export {
  MetaServerClient,
  MetaServerService,
  type MetaServerServer,
  ServiceRegistryClient,
  ServiceRegistryService,
  type ServiceRegistryServer,
  RegisterPilotRequest,
  PilotHeartbeatRequest,
  PilotLease,
  ConnectedSidecar,
  LocateRequest,
  LocateResponse,
  RegisterInstanceRequest,
  InstanceLease,
} from './gen/octo/mesh/v1/meta.js';
