// Lint runs in the test command (npm test → npm run check).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.cache/**', '.tap/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
      // Prettier wraps code at 140; this catches what it cannot wrap (strings, comments).
      'max-len': ['error', { code: 140 }],
    },
  },
  {
    // Tests dig into untyped Kubernetes objects; `any` there beats a cast on every line.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
