// The smuggling table against the `node:http` downstream server (the fallback of the lean one):
// the codec is chosen when listeners.ts loads, so the environment is set before importing it.
process.env['OCTO_PROXY_DOWNSTREAM_CODEC'] = 'node';
const { describeSmuggling } = await import('../test-support/smuggling.js');
describeSmuggling('node:http', []);
