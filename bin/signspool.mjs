#!/usr/bin/env node
// The `signspool` command (package bin): runs the compiled CLI from dist/ (`npm run build`).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('signspool: dist/cli/main.js is missing; run `npm run build` in the signspool directory first\n');
  process.exit(1);
}
await import(entry.href);
