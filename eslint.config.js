// @ts-check
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/node_modules/**', 'data/**', 'coverage/**', 'bench/results/**', 'docs/**', 'dist/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['test/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // api and worker never import each other (docs/design.md): the contract lives in shared/.
    files: ['api/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['@signspool/worker/*', '../worker/*'] }] },
  },
  {
    files: ['worker/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['@signspool/api/*', '../api/*'] }] },
  },
  {
    files: ['shared/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: ['@signspool/api/*', '@signspool/worker/*', 'express', 'multer'] }] },
  },
);
