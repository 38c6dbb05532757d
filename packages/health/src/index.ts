export * from './verdict.js';
export * from './shard.js';
export * from './probe.js';
export * from './config.js';
export * from './checker.js';
export * from './grpc-probe.js';
