// Lint: typescript-eslint's recommended rules, plus Nx module boundaries by tag:
//   type:pure      libraries with no I/O frameworks (api, runtime): may not import
//                  @kubernetes/client-node or @grpc/grpc-js, and depend only on other pure libs
//   type:transport generated protobuf/gRPC code (proto)
//   type:client    what several deployables share that speaks to a service: typed clients and the
//                  gRPC server helper (clients); never @kubernetes/client-node
//   type:app       deployables (proxy, pilot, dispatcher, ...): depend on libraries only, never on
//                  another deployable. Tests may also start a real peer deployable in-process and
//                  use the test harnesses (see the override for test files below).
//   type:test      test harnesses
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

/** The module-boundary rule with the given tag constraints (the settings both blocks share). */
const boundaries = (depConstraints) => [
  'error',
  {
    enforceBuildableLibDependency: false,
    allowCircularSelfDependency: false,
    // Nx forbids static imports of a library that is also imported dynamically somewhere
    // (an Angular lazy-loading concern); Node code here may do both on purpose.
    checkDynamicDependenciesExceptions: ['@octo-mesh/**'],
    depConstraints,
  },
];

export default [
  { ignores: ['tmp/**', '.octo/**', '**/dist/**', '**/node_modules/**', 'packages/proto/src/gen/**', '.nx/**', 'coverage/**', '**/*.d.ts'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': boundaries([
        {
          sourceTag: 'type:pure',
          onlyDependOnLibsWithTags: ['type:pure'],
          bannedExternalImports: ['@kubernetes/client-node', '@grpc/grpc-js', '@grpc/*'],
        },
        { sourceTag: 'type:transport', onlyDependOnLibsWithTags: ['type:pure', 'type:transport'] },
        {
          sourceTag: 'type:client',
          onlyDependOnLibsWithTags: ['type:pure', 'type:transport', 'type:client'],
          bannedExternalImports: ['@kubernetes/client-node'],
        },
        { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:pure', 'type:transport', 'type:client'] },
        { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['*'] },
      ]),
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.test.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  {
    // Tests stand up real peers: a deployable's test may run another deployable's server in
    // process (e.g. the meta server's tests against a real dispatcher) and use the harnesses.
    files: ['**/*.test.ts', '**/test-support/**'],
    rules: {
      '@nx/enforce-module-boundaries': boundaries([
        { sourceTag: 'type:pure', onlyDependOnLibsWithTags: ['type:pure', 'type:test'] },
        { sourceTag: 'type:transport', onlyDependOnLibsWithTags: ['type:pure', 'type:transport', 'type:test'] },
        { sourceTag: 'type:client', onlyDependOnLibsWithTags: ['*'] },
        { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['*'] },
        { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['*'] },
      ]),
    },
  },
];
