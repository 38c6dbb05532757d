export * from './topology.js';
export * from './traffic.js';
export * from './supervisor.js';
export * from './embedded.js';
export * from './dashboard.js';
