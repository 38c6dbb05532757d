export * from './grpc-server.js';
export * from './dispatcher.js';
export * from './dispatcher-mesh-source.js';
export * from './meta.js';
export * from './admin.js';
export * from './mtls.js';
