export * from './status.js';
export * from './config.js';
export * from './target.js';
export * from './sockets.js';
export * from './child.js';
export * from './agent.js';
export * from './admin.js';
