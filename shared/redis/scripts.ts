/**
 * Loads the Lua scripts in shared/lua/ (one command per file, with its KEYS/ARGV header) and
 * defines them on an ioredis client. A line `-- @include "name"` pulls in lua/includes/<name>.lua
 * once; the include "states" is generated from operation-states.ts, so the state machine's facts
 * are written only there.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { DOCUMENT_TRANSITIONS, RETRY_TRANSITIONS, TERMINAL_OPERATION_STATUSES } from '../operations/states.js';

// Beside this module in the sources; dist/lua in the build (this code then sits in dist/<dir>/).
const LUA_DIR =
  [new URL('./lua/', import.meta.url), new URL('../lua/', import.meta.url)].find((u) => existsSync(new URL('transition.lua', u))) ??
  new URL('./lua/', import.meta.url);
const INCLUDE = /^--\s*@include\s+"([a-z0-9-]+)"\s*$/gm;

const luaSet = (names: readonly string[]): string => `{ ${names.map((n) => `['${n}'] = true`).join(', ')} }`;

const luaMoves = (moves: Readonly<Record<string, readonly string[]>>): string =>
  `{ ${Object.entries(moves)
    .map(([from, to]) => `['${from}'] = ${luaSet(to)}`)
    .join(', ')} }`;

/** The generated include: ALLOWED[from][to] (workers, cancel), RETRY_ALLOWED[from][to] and TERMINAL[status]. */
export const statesLua = (): string =>
  [
    '-- generated from shared/operations/states.ts',
    `local ALLOWED = ${luaMoves(DOCUMENT_TRANSITIONS)}`,
    `local RETRY_ALLOWED = ${luaMoves(RETRY_TRANSITIONS)}`,
    `local TERMINAL = ${luaSet(TERMINAL_OPERATION_STATUSES)}`,
  ].join('\n');

const includeSource = (name: string): string => (name === 'states' ? statesLua() : readFileSync(new URL(`includes/${name}.lua`, LUA_DIR), 'utf8'));

/** The source of lua/<name>.lua with its includes resolved (each at most once). */
export const loadLua = (name: string): string => {
  const seen = new Set<string>();
  const resolve = (src: string): string =>
    src.replace(INCLUDE, (_line, inc: string) => {
      if (seen.has(inc)) return '';
      seen.add(inc);
      return resolve(includeSource(inc));
    });
  return resolve(readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8'));
};

export interface ScriptSpec {
  /** File name under lua/, without .lua. */
  file: string;
  /** Omitted: the command takes its key count as its first argument (a variable number of keys). */
  numberOfKeys?: number;
}

/** Defines each script as a command named after its key (once per client). */
export const defineScripts = <T extends string>(redis: Redis, specs: Record<T, ScriptSpec>): void => {
  for (const [command, spec] of Object.entries(specs) as [T, ScriptSpec][]) {
    if (typeof (redis as unknown as Record<string, unknown>)[command] === 'function') continue;
    redis.defineCommand(command, { ...(spec.numberOfKeys === undefined ? {} : { numberOfKeys: spec.numberOfKeys }), lua: loadLua(spec.file) });
  }
};
