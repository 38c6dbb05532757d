export * from './errors.js';
export * from './tar.js';
export * from './manifest.js';
export * from './signing.js';
export * from './archive.js';
export * from './store.js';
export * from './download.js';
export * from './repository.js';
