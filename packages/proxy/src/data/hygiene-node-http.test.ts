// The same on the `node:http` downstream server (chosen when listeners.ts loads): it checks its
// connections' timeouts once a second.
process.env['OCTO_PROXY_DOWNSTREAM_CODEC'] = 'node';
const { describeHygiene } = await import('../test-support/hygiene.js');
describeHygiene('node:http', 1000);
