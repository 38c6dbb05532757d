export * from './cli.js';
export * from './format.js';
export * from './state.js';
