/**
 * Multipart and header fuzz (issue 14): seeded fast-check runs of POST /v1/operations with
 * generated, then mutated, multipart bodies and header mixes (type, boundary, length or chunked,
 * auth, idempotency keys), each sent over a raw socket that half-closes after the body. Every
 * request must end within a deadline (no hang) and never with a 5xx; at the end no file, record,
 * job or descriptor is left beyond those of the accepted operations (which are then canceled).
 * FUZZ_RUNS (default 1000, about 30 s here; FUZZ_RUNS=5000 for the long form) and FUZZ_SEED choose
 * the length and the seed; a failure prints the seed and the path that replays it (FUZZ_PATH).
 */
import fc from 'fast-check';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually } from './harness/client.js';
import { incomingFiles, openFilesUnder, rawConnect } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 1000);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261202);
const DEADLINE_MS = 5000;

interface Part {
  kind: 'file' | 'field' | 'raw';
  name: string;
  filename: string;
  type: string;
  content: Buffer;
}

const text = fc.string({
  unit: fc.constantFrom('a', 'Z', '0', ' ', '"', '\\', '/', '..', ';', '=', '\r', '\n', '\u202E', '\u200B', 'é', '😀', '%22', '\0'),
  maxLength: 24,
});
const part: fc.Arbitrary<Part> = fc.record({
  kind: fc.constantFrom('file', 'file', 'file', 'file', 'field', 'raw'),
  name: fc.oneof(
    { arbitrary: fc.constant('file'), weight: 6 },
    { arbitrary: fc.constantFrom('externalReference', 'signatureType', 'webhookUrl', 'file[]'), weight: 1 },
    { arbitrary: text, weight: 1 },
  ),
  filename: fc.oneof(fc.constantFrom('a.pdf', 'x.xml', '../../etc/passwd', ''), text),
  type: fc.constantFrom('application/pdf', 'text/plain', 'application/xml', '', 'bad type', 'a/b; charset=utf-8'),
  content: fc
    .oneof(
      { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }), weight: 3 },
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ minLength: 1000, maxLength: 3000 }),
      fc.constantFrom(new Uint8Array(0), Buffer.from('--fuzz\r\n'), Buffer.from('PAdES')),
    )
    .map((u) => Buffer.from(u)),
});

const request = fc.record({
  boundary: fc.constantFrom('fuzz', 'fuzz', 'a'.repeat(70), 'with space', '"quoted"'),
  declaredBoundary: fc.constantFrom('same', 'same', 'same', 'other', 'missing'),
  contentType: fc.constantFrom('multipart/form-data', 'multipart/form-data', 'multipart/mixed', 'application/json', 'text/plain', 'none'),
  parts: fc.array(part, { maxLength: 4 }),
  closing: fc.constantFrom('yes', 'yes', 'no', 'no-crlf'),
  framing: fc.constantFrom('length', 'length', 'chunked', 'short-length', 'long-length', 'both'),
  authz: fc.constantFrom('acme', 'acme', 'acme', 'globex', 'wrong', 'none', 'basic'),
  idempotencyKey: fc.option(fc.constantFrom('k1', 'k2', '', 'x'.repeat(300), 'é'), { nil: undefined }),
  mutations: fc.oneof(
    { arbitrary: fc.constant([]), weight: 2 },
    fc.array(fc.record({ at: fc.nat(), op: fc.constantFrom('flip', 'cut', 'dup', 'crlf') }), { maxLength: 3 }),
  ),
  extraHeaders: fc.oneof(
    { arbitrary: fc.constant([]), weight: 3 },
    fc.array(fc.constantFrom('expect: 100-continue', 'content-encoding: gzip', 'x-a: b', 'transfer-encoding: identity', 'content-length: 1'), { maxLength: 2 }),
  ),
});
type FuzzRequest = typeof request extends fc.Arbitrary<infer T> ? T : never;
/** Well-formed requests whose parts vary: about half the runs, so that uploads get accepted too. */
const wellFormed: fc.Arbitrary<FuzzRequest> = request.map((r) => ({
  ...r,
  boundary: 'fuzz',
  declaredBoundary: 'same',
  contentType: 'multipart/form-data',
  closing: 'yes',
  framing: r.framing === 'chunked' ? 'chunked' : 'length',
  authz: r.authz === 'globex' ? 'globex' : 'acme',
  mutations: [],
  extraHeaders: [],
}));
const anyRequest = fc.oneof(request, wellFormed);

const buildBody = (r: FuzzRequest): Buffer => {
  const chunks: Buffer[] = [];
  for (const p of r.parts) {
    if (p.kind === 'raw') {
      chunks.push(Buffer.from(`--${r.boundary}\r\n`), p.content, Buffer.from('\r\n'));
      continue;
    }
    const disposition = p.kind === 'file' ? `form-data; name="${p.name}"; filename="${p.filename}"` : `form-data; name="${p.name}"`;
    chunks.push(
      Buffer.from(`--${r.boundary}\r\ncontent-disposition: ${disposition}\r\n${p.type ? `content-type: ${p.type}\r\n` : ''}\r\n`, 'utf8'),
      p.content,
      Buffer.from('\r\n'),
    );
  }
  if (r.closing === 'yes') chunks.push(Buffer.from(`--${r.boundary}--\r\n`));
  if (r.closing === 'no-crlf') chunks.push(Buffer.from(`--${r.boundary}--`));
  let body = Buffer.concat(chunks);
  for (const m of r.mutations) {
    if (body.length === 0) break;
    const at = m.at % body.length;
    if (m.op === 'flip') body[at] = (body[at] ?? 0) ^ 0xff;
    else if (m.op === 'cut') body = body.subarray(0, at);
    else if (m.op === 'dup') body = Buffer.concat([body.subarray(0, at), body.subarray(at - Math.min(at, 40), at), body.subarray(at)]);
    else body = Buffer.concat([body.subarray(0, at), Buffer.from('\r\n'), body.subarray(at)]);
  }
  return body;
};

const buildRequest = (r: FuzzRequest, keys: Stack['keys']): Buffer[] => {
  const body = buildBody(r);
  const headers = ['POST /v1/operations HTTP/1.1', 'host: fuzz'];
  if (r.authz === 'acme' || r.authz === 'globex') headers.push(`authorization: Bearer ${keys[r.authz]}`);
  if (r.authz === 'wrong') headers.push('authorization: Bearer ssk_nope');
  if (r.authz === 'basic') headers.push('authorization: Basic YTpi');
  if (r.contentType !== 'none') {
    const b = r.declaredBoundary === 'same' ? r.boundary : r.declaredBoundary === 'other' ? 'otherboundary' : undefined;
    headers.push(`content-type: ${r.contentType}${b === undefined ? '' : `; boundary=${b.startsWith('"') ? b : JSON.stringify(b)}`}`);
  }
  if (r.idempotencyKey !== undefined) headers.push(`idempotency-key: ${r.idempotencyKey}`);
  headers.push(...r.extraHeaders);
  const head = (lines: string[]): Buffer => Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  switch (r.framing) {
    case 'chunked':
      return [
        head([...headers, 'transfer-encoding: chunked']),
        ...(body.length ? [Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n')] : []),
        Buffer.from('0\r\n\r\n'),
      ];
    case 'short-length':
      return [head([...headers, `content-length: ${Math.floor(body.length / 2)}`]), body];
    case 'long-length':
      return [head([...headers, `content-length: ${body.length + 100}`]), body];
    case 'both':
      return [head([...headers, `content-length: ${body.length}`, 'transfer-encoding: chunked']), body];
    default:
      return [head([...headers, `content-length: ${body.length}`]), body];
  }
};

describe(`multipart fuzz (${RUNS} runs, seed ${SEED})`, () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { RATE_LIMIT_REQUESTS: '0', UPLOAD_IDLE_TIMEOUT: '500ms', UPLOAD_MAX_FILES: '3', UPLOAD_MAX_FIELDS: '3' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('no 5xx, no hang; nothing left beyond the accepted operations', { timeout: Math.max(120_000, RUNS * 100) }, async () => {
    const accepted = new Set<string>();
    const statuses = new Map<number | 'none', number>();
    await fc.assert(
      fc.asyncProperty(anyRequest, async (r) => {
        const conn = rawConnect(stack.apiUrl, buildRequest(r, stack.keys), { end: true });
        const timer = new Promise<'hang'>((resolve) => setTimeout(() => resolve('hang'), DEADLINE_MS).unref());
        const ended = await Promise.race([conn.ended.then(() => 'ended' as const), timer]);
        const res = await Promise.race([conn.response, timer]);
        conn.socket.destroy();
        if (ended === 'hang' || res === 'hang') {
          const gauges = (await (await fetch(stack.metricsUrl)).text()).split('\n').filter((l) => l.startsWith('signspool_uploads'));
          throw new Error(
            `the server neither answered nor closed within the deadline (answered: ${res === 'hang' ? 'no' : String(res?.status)}; ${gauges.join(', ')})`,
          );
        }
        statuses.set(res?.status ?? 'none', (statuses.get(res?.status ?? 'none') ?? 0) + 1);
        if (res && res.status >= 500) throw new Error(`answered ${res.status}: ${res.body.slice(0, 300)}`);
        if (res?.status === 202) accepted.add((JSON.parse(res.body) as { id: string }).id);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true, ...(process.env['FUZZ_PATH'] ? { path: process.env['FUZZ_PATH'] } : {}) },
    );
    // Accepted operations are canceled: their files and jobs go; their records stay (terminal).
    for (const id of accepted) {
      const c = await fetch(`${stack.apiUrl}/v1/operations/${id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
      if (c.status === 404) await fetch(`${stack.apiUrl}/v1/operations/${id}`, { method: 'DELETE', headers: auth(stack.keys.globex) });
    }
    await eventually('no descriptor into the spool', () => openFilesUnder(stack.config.spoolDir).length === 0);
    expect(await incomingFiles(stack.config.spoolDir)).toEqual([]);
    const redis = new Redis(stack.config.redisUrl ?? '');
    const records = await redis.keys(`${stack.config.queuePrefix}:op:op_*`);
    await redis.quit();
    expect(records.filter((k) => !k.endsWith(':webhooks')).length).toBe(accepted.size);
    const queue = new Queue('sign', { connection: { url: stack.config.redisUrl ?? '' }, prefix: stack.config.queuePrefix });
    const jobs = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
    await queue.close();
    expect(Object.values(jobs).reduce((a, b) => a + b, 0)).toBe(0);
    console.info(`fuzz: ${RUNS} requests, answers ${JSON.stringify(Object.fromEntries(statuses))}, accepted ${accepted.size}`);
  });
});
