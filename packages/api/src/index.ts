export * from './duration.js';
export * from './schema/common.js';
export * from './schema/rules.js';
export * from './schema/routepolicy.js';
export * from './schema/proxyversion.js';
export * from './kinds.js';
export * from './crd.js';
export * from './manifest.js';
