export * from './errors.js';
export * from './backoff.js';
export * from './logger.js';
export * from './metrics.js';
export * from './admin-server.js';
export * from './shutdown.js';
export * from './config.js';
export * from './wait.js';
