/**
 * Where things are in the spool: ids are restricted to a safe alphabet (no id can escape the
 * spool), an operation's files sit in one of 64 shard directories chosen by a hash of its id, and
 * a file is named `<opId>.<docId>` (upload) or `<opId>.<docId>.<batchId>` (signed result).
 */
import { randomUUID } from 'node:crypto';

const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export const SHARDS = 64;

/** The shard directory name of an operation: FNV-1a of its id, modulo SHARDS, in hex. */
export const shardOf = (opId: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < opId.length; i++) h = Math.imul(h ^ opId.charCodeAt(i), 0x01000193);
  return ((h >>> 0) % SHARDS).toString(16).padStart(2, '0');
};

export const fileNameOf = (opId: string, docId: string): string => `${assertSafeId(opId)}.${assertSafeId(docId)}`;

/** The operation id of a spool file name (`<opId>.<docId>` or `<opId>.<docId>.<tag>`), or undefined for anything else. */
export const opIdOfFile = (name: string): string | undefined => {
  const [opId, docId, ...rest] = name.split('.');
  const tagOk = rest.length === 0 || (rest.length === 1 && ID_PATTERN.test(rest[0] ?? ''));
  return opId && docId && tagOk && ID_PATTERN.test(opId) && ID_PATTERN.test(docId) ? opId : undefined;
};

/** Ids end up in paths: only a strict alphabet is allowed, so no id can escape the spool. */
export const assertSafeId = (id: string): string => {
  if (!ID_PATTERN.test(id)) throw new Error(`unsafe spool id: ${JSON.stringify(id).slice(0, 80)}`);
  return id;
};

export const newId = (prefix: string): string => `${prefix}_${randomUUID().replaceAll('-', '')}`;
