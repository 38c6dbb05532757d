export * from './ring.js';
export * from './pilots.js';
export * from './registry.js';
export * from './server.js';
export * from './config.js';
export * from './lease-assign.js';
export * from './checker-lease.js';
