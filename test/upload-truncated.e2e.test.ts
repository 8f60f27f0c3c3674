/**
 * Truncated multipart bodies (issue 14, defect 2): a body whose file part never ends (no closing
 * boundary) is refused, and leaves no open descriptor into the spool and no file in incoming/.
 * The api runs in this process, so its descriptors are read from /proc/self/fd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './harness/client.js';
import { incomingFiles, openFilesUnder, rawConnect, uploadHead } from './harness/raw-http.js';
import { startStack, type Stack } from './harness/stack.js';

describe('truncated multipart bodies', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ worker: false });
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('100 bodies whose file part never ends: every one refused, no descriptor and no file left', async () => {
    const boundary = 'truncatedpart';
    const requests = Array.from({ length: 100 }, (_, i) => {
      const body = `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="t${i}.bin"\r\ncontent-type: application/octet-stream\r\n\r\n${'x'.repeat(100 + i * 37)}`;
      return rawConnect(stack.apiUrl, [uploadHead(stack.keys.acme, boundary, Buffer.byteLength(body), { connection: 'close' }), body]);
    });
    // Bounded: a request nobody answers is a failure, not a hang.
    const deadline = new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 20_000).unref());
    const answers = await Promise.all(requests.map((r) => Promise.race([r.response, deadline])));
    for (const r of requests) r.socket.destroy();
    expect(answers.filter((a) => a === undefined).length).toBe(0);
    for (const a of answers) {
      expect(a?.status).toBe(400);
      expect(JSON.parse(a?.body ?? '{}')).toMatchObject({ code: 'UPLOAD_ABORTED' });
    }
    await Promise.all(requests.map((r) => r.closed));
    // Cleanup runs after the answer: wait (with a deadline) for it, then require nothing at all.
    await eventually(
      'no spool descriptor and no incoming file',
      async () => openFilesUnder(stack.config.spoolDir).length === 0 && (await incomingFiles(stack.config.spoolDir)).length === 0,
      5000,
    ).catch(() => undefined);
    expect(openFilesUnder(stack.config.spoolDir)).toEqual([]);
    expect(await incomingFiles(stack.config.spoolDir)).toEqual([]);
  });
});
