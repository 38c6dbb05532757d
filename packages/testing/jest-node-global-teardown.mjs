const { default: teardown } = await import('./dist/node-global-teardown.js');
export default teardown;
