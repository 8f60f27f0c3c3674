/** Small helpers for the worker's outgoing HTTP calls (upstream signer, webhooks). */
import type { Dispatcher } from 'undici';

/** Retry-After in milliseconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export const parseRetryAfter = (value: string | string[] | undefined, now = Date.now()): number | undefined => {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v.trim()) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
};

/** Reads at most `limit` bytes of a (small, e.g. error) body as text, consuming the rest. */
export const readSmallBody = async (body: Dispatcher.ResponseData['body'], limit = 64 * 1024): Promise<string> => {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    if (size < limit) parts.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return Buffer.concat(parts).subarray(0, limit).toString('utf8');
};
