#!/usr/bin/env node
// The `signspool` command (package bin): loads the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
