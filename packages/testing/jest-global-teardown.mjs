// See jest-global-setup.mjs: runs the compiled teardown from dist.
const { default: teardown } = await import('./dist/global-teardown.js');
export default teardown;
