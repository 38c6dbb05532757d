// The HTTP/2 and upstream bounds with both HTTP/1.1 sides on `node:http` (the self-test's
// fallback): the codec is chosen when listeners.ts and upstream.ts load, so the environment is set
// before importing them.
process.env['OCTO_PROXY_DOWNSTREAM_CODEC'] = 'node';
process.env['OCTO_PROXY_UPSTREAM_CODEC'] = 'node';
const { describeH2Hygiene } = await import('../test-support/h2-hygiene.js');
describeH2Hygiene('node:http');
