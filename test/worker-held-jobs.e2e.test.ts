/**
 * The worker's bound on held jobs (`maxHeld`: the largest batch × (UPSTREAM_CONCURRENCY + 1)) with
 * jobs fetched along with completions (worker/batch/sign-job-consumer.ts): a backlog larger than
 * the bound is signed to the end, the jobs a completion brought in taking the completed ones' places.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { submit, waitForTerminal } from './harness/client.js';
import { useFakeSignstash } from './harness/fake-upstream.js';
import { useApiThenWorker } from './harness/queued-first.js';

describe('worker at its held-jobs bound', () => {
  const fake = useFakeSignstash();
  // One document per batch, one batch in flight: at most 2 jobs held.
  const env = (): Record<string, string> =>
    fake().clientEnv({ DEFAULT_SIGNATURE_TYPE: 'CAdES', BATCH_MAX_DOCS: '1', BATCH_LINGER: '10ms', UPSTREAM_CONCURRENCY: '1', RATE_LIMIT_REQUESTS: '0' });
  const queued = useApiThenWorker(env);

  it('signs a backlog of 12 documents with 2 held at a time', async () => {
    const stack = queued.api();
    const accepted = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        submit(stack.apiUrl, stack.keys.acme, [{ name: `doc-${i}.pdf`, content: randomBytes(500 + i), type: 'application/pdf' }]),
      ),
    );
    expect(accepted.map((a) => a.status)).toEqual(accepted.map(() => 202));
    await queued.startWorker();
    // The pull loop pauses up to 60 s at the bound: a worker that does not hand on what completions fetched stalls past this.
    const done = await Promise.all(accepted.map((a) => waitForTerminal(stack.apiUrl, stack.keys.acme, a.body.id, 30_000)));
    expect(done.map((d) => d.status)).toEqual(accepted.map(() => 'succeeded'));
  });
});
