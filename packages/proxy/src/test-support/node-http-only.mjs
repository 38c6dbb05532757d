// Jest setup file of the `node-http` project: both HTTP/1.1 sides of the proxy on `node:http`
// (the path the start-up self-test falls back to, data/self-test.ts), chosen when listeners.ts
// and upstream.ts load; jest gives each test file its own process.env.
process.env.OCTO_PROXY_DOWNSTREAM_CODEC = 'node';
process.env.OCTO_PROXY_UPSTREAM_CODEC = 'node';
