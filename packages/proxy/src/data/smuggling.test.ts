import { describeSmuggling } from '../test-support/smuggling.js';

// The smuggling table against the lean HTTP/1.1 server (h1-server.ts); the llhttp project runs it
// again with every message through llhttp (no fast path).
describeSmuggling('lean', [400]);
