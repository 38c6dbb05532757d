// Lint: typescript-eslint's recommended rules, plus Nx module boundaries by tag:
//   type:pure      libraries with no I/O frameworks (api, runtime): may not import
//                  @kubernetes/client-node or @grpc/grpc-js, and depend only on other pure libs
//   type:transport generated protobuf/gRPC code (proto)
//   type:app       deployables (proxy, pilot, dispatcher, ...)
//   type:test      test harnesses
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

export default [
  { ignores: ['tmp/**', '.octo/**', '**/dist/**', '**/node_modules/**', 'packages/proto/src/gen/**', '.nx/**', 'coverage/**', '**/*.d.ts'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allowCircularSelfDependency: false,
          // Nx forbids static imports of a library that is also imported dynamically somewhere
          // (an Angular lazy-loading concern); Node code here may do both on purpose.
          checkDynamicDependenciesExceptions: ['@octo-mesh/**'],
          depConstraints: [
            {
              sourceTag: 'type:pure',
              onlyDependOnLibsWithTags: ['type:pure'],
              bannedExternalImports: ['@kubernetes/client-node', '@grpc/grpc-js', '@grpc/*'],
            },
            { sourceTag: 'type:transport', onlyDependOnLibsWithTags: ['type:pure', 'type:transport'] },
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:pure', 'type:transport', 'type:app'] },
            { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['*'] },
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.test.ts'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
];
