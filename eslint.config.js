// ESLint flat config: neostandard (standard style, TypeScript-aware) plus the type-aware
// typescript-eslint rules that catch real bugs rather than style: promises nobody awaits or
// handles, promises passed where a void callback is expected, and `await` on non-promises.
import neostandard, { resolveIgnoresFromGitignore } from 'neostandard'
import tseslint from 'typescript-eslint'

// .gitignore already names what is generated or installed (node_modules/, .tap/, coverage/, ...);
// the client that test/e2e/generated-client.test.ts generates goes to a temporary directory.
const ignores = resolveIgnoresFromGitignore()

export default [
  ...neostandard({ ts: true, ignores }),
  {
    name: 'streamer/type-aware',
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        // The .ts files are type-checked with the repo's tsconfig.json; the few plain JavaScript
        // files (config files, the package's bin, helper scripts, the browser example) are outside it and get the
        // service's default project. Its patterns take no `**`, hence one per folder.
        projectService: {
          allowDefaultProject: ['*.js', '*.mjs', 'bin/*.js', 'scripts/*.js', 'scripts/*.mjs', 'examples/browser/*.js'],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: {
      '@typescript-eslint': tseslint.plugin,
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        // tap's t.test() returns a promise that only ever resolves (a failing subtest is reported
        // as a failure, never as a rejection) and tap itself waits for every subtest it queued.
        allowForKnownSafeCalls: [{ from: 'package', package: '@tapjs/test', name: 'test' }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `void promise` is how no-floating-promises marks a promise deliberately left alone; the
      // operator stays forbidden inside expressions, where it only obscures `undefined`.
      'no-void': ['error', { allowAsStatement: true }],
    },
  },
  {
    // The browser example is a plain script for a page: the browser's globals that neostandard's
    // list lacks.
    name: 'streamer/browser-example',
    files: ['examples/browser/*.js'],
    languageOptions: { globals: { EventSource: 'readonly', location: 'readonly' } },
  },
  {
    name: 'streamer/ts-overrides',
    files: ['**/*.ts'],
    rules: {
      // A TypeBox schema and its static type share a name on purpose
      // (`export const X = Type.Object(...)`, `export type X = Static<typeof X>`); real
      // redeclarations are compile errors in tsc (ts2451), which is why typescript-eslint
      // advises against this rule in TypeScript code.
      '@typescript-eslint/no-redeclare': 'off',
    },
  },
]
