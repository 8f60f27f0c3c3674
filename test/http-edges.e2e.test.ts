/**
 * The HTTP face's edges (issue 14, defect 6): security headers, no-store on operation JSON,
 * invisible format characters in externalReference refused, parser errors (431, malformed
 * framing) answered as problem+json, a client that half-closes after its request still answered,
 * empty files refused. Each refusal keeps nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth, eventually, submit } from './harness/client.js';
import { incomingFiles, openFilesUnder, rawConnect, uploadHead } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';

const BOUNDARY = 'edgesboundary';
const body = (parts: { name: string; content: string }[], fields: Record<string, string> = {}): string =>
  [
    ...Object.entries(fields).map(([k, v]) => `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`),
    ...parts.map(
      (p) => `--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="${p.name}"\r\ncontent-type: text/plain\r\n\r\n${p.content}\r\n`,
    ),
    `--${BOUNDARY}--\r\n`,
  ].join('');

describe('HTTP edges', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  const nothingKept = async (): Promise<void> => {
    await eventually('no descriptor into the spool', () => openFilesUnder(stack.config.spoolDir).length === 0);
    expect(await incomingFiles(stack.config.spoolDir)).toEqual([]);
  };

  it('sends security headers, and no-store on operation JSON (answers and errors)', async () => {
    const accepted = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'h.txt', content: 'headers' }]);
    expect(accepted.status).toBe(202);
    const read = await fetch(`${stack.apiUrl}${accepted.location ?? ''}`, { headers: auth(stack.keys.acme) });
    const unauthorized = await fetch(`${stack.apiUrl}${accepted.location ?? ''}`);
    for (const h of [accepted.headers, read.headers, unauthorized.headers]) {
      expect(h.get('x-content-type-options')).toBe('nosniff');
      expect(h.get('x-frame-options')).toBe('DENY');
      expect(h.get('content-security-policy')).toBe("default-src 'none';frame-ancestors 'none'");
      expect(h.get('cache-control')).toBe('no-store');
    }
    await fetch(`${stack.apiUrl}${accepted.location ?? ''}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
  });

  it('refuses bidi and zero-width characters in externalReference (400), keeping nothing', async () => {
    for (const ref of ['invoice\u202Egpj.exe', 'ref\u200B42', '\uFEFFbom', 'a\u2066b']) {
      const res = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'r.txt', content: 'ref' }], { externalReference: ref });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'VALIDATION_FAILED' });
      expect(String(res.body['detail'])).toMatch(/externalReference/);
    }
    const fine = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'r.txt', content: 'ref' }], { externalReference: 'Facture n° 42 — été' });
    expect(fine.status).toBe(202);
    await fetch(`${stack.apiUrl}${fine.location ?? ''}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
  });

  it('refuses an empty file with 400 EMPTY_FILE, alone or beside others, keeping nothing', async () => {
    const alone = await submit(stack.apiUrl, stack.keys.acme, [{ name: 'empty.pdf', content: '' }]);
    expect(alone.status).toBe(400);
    expect(alone.body).toMatchObject({ code: 'EMPTY_FILE', part: 1 });
    const mixed = await submit(stack.apiUrl, stack.keys.acme, [
      { name: 'full.txt', content: 'some bytes' },
      { name: 'empty.txt', content: '' },
    ]);
    expect(mixed.status).toBe(400);
    expect(mixed.body).toMatchObject({ code: 'EMPTY_FILE', part: 2 });
    await nothingKept();
  });

  it('answers headers over the limit with 431 problem+json', async () => {
    const conn = rawConnect(stack.apiUrl, [`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`]);
    const res = await conn.response;
    conn.socket.destroy();
    expect(res?.status).toBe(431);
    expect(res?.headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(res?.body ?? '{}')).toMatchObject({ code: 'HEADERS_TOO_LARGE', status: 431 });
  });

  it('answers malformed framing with 400 problem+json: Content-Length with chunked, a bad chunk size mid-upload', async () => {
    const both = rawConnect(stack.apiUrl, [`POST /v1/operations HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n`]);
    const r1 = await both.response;
    both.socket.destroy();
    expect(r1?.status).toBe(400);
    expect(JSON.parse(r1?.body ?? '{}')).toMatchObject({ code: 'MALFORMED_REQUEST' });

    const b = body([{ name: 'c.txt', content: 'x'.repeat(5000) }]);
    const chunk = b.slice(0, 3000);
    const badChunk = rawConnect(stack.apiUrl, [
      uploadHead(stack.keys.acme, BOUNDARY, undefined),
      `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
      'zz\r\nnot a chunk\r\n',
    ]);
    const r2 = await badChunk.response;
    badChunk.socket.destroy();
    expect(r2?.status).toBe(400);
    expect(JSON.parse(r2?.body ?? '{}')).toMatchObject({ code: 'MALFORMED_REQUEST' });
    await nothingKept();
  });

  it('answers a client that half-closes its socket right after a complete POST', async () => {
    const b = body([{ name: 'half.txt', content: 'half-closed' }]);
    const conn = rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, BOUNDARY, Buffer.byteLength(b)), b], { end: true });
    const res = await conn.response;
    conn.socket.destroy();
    expect(res?.status).toBe(202);
    const op = JSON.parse(res?.body ?? '{}') as { id: string };
    await fetch(`${stack.apiUrl}/v1/operations/${op.id}`, { method: 'DELETE', headers: auth(stack.keys.acme) });
  });
});

describe('HTTP timeouts from the config', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false, env: { HTTP_KEEPALIVE_TIMEOUT: '300ms' } });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('closes an idle keep-alive connection after HTTP_KEEPALIVE_TIMEOUT (300 ms here; 5 s by default)', async () => {
    const conn = rawConnect(stack.apiUrl, ['GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: keep-alive\r\n\r\n']);
    try {
      expect((await conn.response)?.status).toBe(200);
      let timer: NodeJS.Timeout | undefined;
      const closedByServer = await Promise.race([
        conn.ended.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 3000))),
      ]);
      clearTimeout(timer);
      expect(closedByServer).toBe(true);
    } finally {
      conn.socket.destroy();
    }
  });
});
