// Jest runs in native ESM mode (node --experimental-vm-modules, see the root "test" script):
// the workspace is ESM ("type": "module") because @kubernetes/client-node 2.x is ESM-only.
// TypeScript is transformed per file by swc (no type-checking here; `npm run typecheck` does that).
// Workspace packages resolve to their TypeScript sources, so tests never need a prior build.
const swc = [
  '@swc/jest',
  {
    jsc: { parser: { syntax: 'typescript' }, target: 'es2023', keepClassNames: true },
    module: { type: 'es6' },
    sourceMaps: 'inline',
  },
];

const common = {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  transform: { '^.+\\.ts$': swc },
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json'],
  moduleNameMapper: {
    '^@octo-mesh/([a-z-]+)$': '<rootDir>/packages/$1/src/index.ts',
    '^@octo-mesh/([a-z-]+)/(.+)\\.js$': '<rootDir>/packages/$1/src/$2.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  modulePathIgnorePatterns: ['<rootDir>/packages/.*/dist/'],
};

/** @type {import('jest').Config} */
export default {
  projects: [
    {
      ...common,
      displayName: 'unit',
      testMatch: ['<rootDir>/packages/*/src/**/*.test.ts', '<rootDir>/scripts/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '\\.k8s\\.test\\.ts$'],
    },
    {
      // The proxy's HTTP/1.1 tests once more with every message through llhttp
      // (OCTO_PROXY_FAST_PARSE=0, set per test file): the fast path takes nearly every message in
      // the unit run, so this keeps llhttp's side of each exchange covered as well.
      ...common,
      displayName: 'llhttp',
      testMatch: ['<rootDir>/packages/proxy/src/data/{h1-client,h1-server,http,streams,policies,smuggling}.test.ts'],
      setupFiles: ['<rootDir>/packages/proxy/src/test-support/llhttp-only.mjs'],
    },
    {
      // The proxy's data-path suites once more on the `node:http` server and client, the fallback
      // the HTTP/1.1 self-test switches to (packages/proxy/src/data/self-test.ts).
      ...common,
      displayName: 'node-http',
      testMatch: ['<rootDir>/packages/proxy/src/data/{http,streams,policies,governance}.test.ts'],
      setupFiles: ['<rootDir>/packages/proxy/src/test-support/node-http-only.mjs'],
      // node:http costs more CPU per request than the lean codec: the 10,000-request split in
      // http.test.ts (~4.5 s alone on the 2-core VM) sets its own timeout — jest reads
      // `testTimeout` from the root config only, not per project.
    },
    {
      // Against a real kube-apiserver + etcd (built from Go modules), one cluster per run; its
      // globalSetup runs only when a test of this project is selected.
      ...common,
      displayName: 'k8s',
      testMatch: ['<rootDir>/e2e/k8s/**/*.test.ts', '<rootDir>/packages/*/src/**/*.k8s.test.ts'],
      globalSetup: '<rootDir>/packages/testing/jest-global-setup.mjs',
      globalTeardown: '<rootDir>/packages/testing/jest-global-teardown.mjs',
    },
    {
      // The mesh on a real single-node Kubernetes cluster (kubelet, containerd, pods): one cluster
      // per machine, started by its globalSetup only when a test of this project is selected
      // (packages/testing NodeCluster, needs root and the Debian packages .ci/run installs). Keep
      // it to one test file: the cluster's state is shared, its steps run in order.
      ...common,
      displayName: 'cluster',
      testMatch: ['<rootDir>/e2e/cluster-e2e/**/*.test.ts'],
      globalSetup: '<rootDir>/packages/testing/jest-node-global-setup.mjs',
      globalTeardown: '<rootDir>/packages/testing/jest-node-global-teardown.mjs',
    },
    {
      // The embedded mesh end to end: real child processes on loopback.
      ...common,
      displayName: 'e2e',
      testMatch: ['<rootDir>/e2e/embedded/**/*.test.ts'],
    },
  ],
};
