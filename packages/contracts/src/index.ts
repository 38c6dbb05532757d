export * from './service.js';
export * from './mesh-source.js';
export * from './versions.js';
export * from './debug.js';
export * from './lego.js';
export * from './embedded-state.js';
export * from './ring.js';
export * from './endpoint-health.js';
