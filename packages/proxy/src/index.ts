export * from './model.js';
export { Proxy, PROXY_VERSION, loadStaticResources, type ProxyOptions, type StaticResources } from './proxy.js';
export { ProxyConfigSchema, type ProxyConfig } from './config.js';
export { translateResource, translateListener, translateRouteConfiguration, translateCluster, translateClusterLoadAssignment, fromEnvoyJson } from './translate/index.js';
export { ConfigStore } from './xds/config-store.js';
export { AdsClient, type AdsClientOptions } from './xds/ads-client.js';
export { REASON_HEADER, type AccessLogEntry } from './data/http-proxy.js';
export type { SocketSpec } from './data/listeners.js';
