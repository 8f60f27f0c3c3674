/**
 * The upload's fast path (api/upload/fast-upload.ts): a plain `POST /v1/operations` with an API
 * key that may write runs below express, anything else through express. The same uploads are
 * sent both ways (a trailing `?` leaves one to express: same route, same answer) and must get the
 * same bytes but the Date and the new ids and times, count the same metrics, and be run by the
 * path expected (uploads.served): accepted uploads, an idempotent replay, refusals of the body,
 * the checks before it and the limits, and the requests left to express.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { keys as redisKeys } from '@signspool/shared/redis/keys';
import { auth } from './harness/client.js';
import { rawRequest } from './harness/raw-http.js';
import { metricCounts, metricDelta, startStack, type Stack } from './harness/stack.js';

/** The answer without what differs between two uploads: the Date, the new ids, the times. */
const normalized = (raw: string): string =>
  raw
    .replace(/\r\nDate: [^\r]*/i, '')
    .replace(/op_[0-9a-f]{32}/g, 'OP')
    .replace(/doc_[0-9a-f]{32}/g, 'DOC')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, 'TIME');

const BOUNDARY = 'fastpath';
const CT = `multipart/form-data; boundary=${BOUNDARY}`;
interface Part {
  name: string;
  content: string | Buffer;
  filename?: string;
  type?: string;
}
const form = (parts: Part[]): Buffer =>
  Buffer.concat([
    ...parts.map((p) =>
      Buffer.concat([
        Buffer.from(
          `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`,
        ),
        Buffer.from(p.content),
        Buffer.from('\r\n'),
      ]),
    ),
    Buffer.from(`--${BOUNDARY}--\r\n`),
  ]);
const pdf = (name = 'a.pdf', content = '%PDF-1.4 fast upload'): Part => ({ name: 'file', filename: name, content, type: 'application/pdf' });

describe('upload: fast path and express answer alike', () => {
  let stack: Stack;
  let redis: Redis;
  const keys = { acme: generateApiKey(), reader: generateApiKey() };

  beforeAll(async () => {
    stack = await startStack({
      worker: false,
      env: {
        API_KEYS: [`acme:${hashApiKey(keys.acme)}`, `acme/reader:${hashApiKey(keys.reader)}:operations:read`].join(','),
        UPLOAD_MAX_FILE_BYTES: '64KiB',
        UPLOAD_MAX_FILES: '3',
      },
    });
    redis = new Redis(stack.config.redisUrl ?? '');
  });
  afterAll(async () => {
    await redis?.quit();
    await stack?.stop();
  });

  /** The upload as the fast path gets it, then with a trailing `?` (express). */
  const bothWays = async (headers: Record<string, string>, body: Buffer) => {
    const one = async (path: string) => {
      // Each answer tells the tenant's requests window (RateLimit): both start from an empty one.
      await redis.del(redisKeys.rateLimit(stack.config.queuePrefix, 'requests', 'acme'));
      const served = stack.api?.uploads?.served ?? NaN;
      const m0 = await metricCounts(stack);
      const raw = await rawRequest(stack.apiUrl, 'POST', path, headers, body);
      return { raw, metrics: metricDelta(m0, await metricCounts(stack)), served: (stack.api?.uploads?.served ?? NaN) - served };
    };
    const fast = await one('/v1/operations');
    const slow = await one('/v1/operations?');
    expect(slow.served).toBe(0);
    expect(normalized(fast.raw)).toBe(normalized(slow.raw));
    expect(fast.metrics).toEqual(slow.metrics);
    return { ...fast, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(fast.raw)?.[1]) };
  };
  const upload = { ...auth(''), 'content-type': CT };
  const as = (key: string, more: Record<string, string> = {}): Record<string, string> => ({ ...upload, ...auth(key), ...more });

  it('202 for an upload of one document, then of three with fields, from the fast path', async () => {
    const one = await bothWays(as(keys.acme), form([pdf()]));
    expect(one).toMatchObject({ status: 202, served: 1 });
    expect(one.raw).toMatch(/\r\nLocation: \/v1\/operations\/op_[0-9a-f]{32}\r\n/);
    expect(one.raw).toMatch(/\r\nCache-Control: no-store\r\n/);
    expect(one.raw).toMatch(/\r\nX-Frame-Options: DENY\r\n/);
    expect(one.metrics).toMatchObject({
      'signspool_http_request_duration_seconds_count{method="POST",route="/v1/operations/",status="202"}': 1,
    });
    const three = await bothWays(
      as(keys.acme),
      form([{ name: 'externalReference', content: 'invoice-7' }, pdf('a.pdf'), pdf('b.pdf', '%PDF-1.7 second'), pdf('../c.pdf', '%PDF-1.4 third')]),
    );
    expect(three).toMatchObject({ status: 202, served: 1 });
    expect(three.raw).toMatch(/"externalReference":"invoice-7"/);
  });

  it('an idempotent replay: the same operation, marked replayed, both ways', async () => {
    const body = form([pdf()]);
    const first = await rawRequest(stack.apiUrl, 'POST', '/v1/operations', as(keys.acme, { 'idempotency-key': 'fast-path-1' }), body);
    expect(first).toMatch(/^HTTP\/1\.1 202/);
    const replay = await bothWays(as(keys.acme, { 'idempotency-key': 'fast-path-1' }), body);
    expect(replay).toMatchObject({ status: 202, served: 1 });
    expect(replay.raw).toMatch(/\r\nIdempotent-Replayed: true\r\n/);
    expect(replay.raw).toContain(/op_[0-9a-f]{32}/.exec(first)?.[0] ?? 'the first operation');
  });

  it('refusals of the body and before it, as express answers them', async () => {
    const cases: [Record<string, string>, Buffer, number][] = [
      [as(keys.acme), form([{ name: 'colour', content: 'blue' }, pdf()]), 400],
      [as(keys.acme), form([{ name: 'externalReference', content: 'no file' }]), 400],
      [as(keys.acme), form([pdf('big.pdf', 'x'.repeat(70 * 1024))]), 413],
      [as(keys.acme), form([pdf('1.pdf'), pdf('2.pdf'), pdf('3.pdf'), pdf('4.pdf')]), 413],
      [as(keys.acme), form([{ name: 'document', filename: 'a.pdf', content: '%PDF-1.4' }]), 400],
      [as(keys.acme), form([pdf('empty.pdf', '')]), 400],
      [as(keys.acme), form([{ name: 'signatureType', content: 'PAdES' }, pdf('not.pdf', 'not a pdf')]), 422],
      [as(keys.acme), form([pdf()]).subarray(0, 80), 400],
      [as(keys.acme, { 'content-type': 'application/json' }), Buffer.from('{}'), 415],
      [as(keys.acme, { 'content-type': 'multipart/form-data' }), form([pdf()]), 415],
    ];
    for (const [headers, body, status] of cases) {
      const r = await bothWays(headers, body);
      expect({ status: r.status, served: r.served }).toEqual({ status, served: 1 });
      expect(r.raw).toMatch(/\r\nContent-Type: application\/problem\+json; charset=utf-8\r\n/);
    }
  });

  it('401 without a key or with an unknown one, 403 without the write scope: left to express', async () => {
    const cases: [Record<string, string>, number][] = [
      [{ 'content-type': CT }, 401],
      [as('ssk_not-a-key'), 401],
      [as(keys.reader), 403],
    ];
    for (const [headers, status] of cases) expect(await bothWays(headers, form([pdf()]))).toMatchObject({ status, served: 0 });
  });
});
