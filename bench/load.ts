/** The benchmarks' load generators and the pieces they share (bench/sections, bench/api-cost.ts). */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'undici';
import { readScriptSettings } from './settings.js';

/**
 * More node flags for the api and worker processes the benchmarks start: BENCH_PROFILE_DIR=dir makes
 * them write V8 CPU profiles there; BENCH_NODE_ARGS adds any (e.g. `--perf-basic-prof-only-functions`
 * for `perf record`).
 */
export const benchNodeArgs = (): string[] => {
  const { profileDir, nodeArgs } = readScriptSettings(process.env);
  return [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), ...nodeArgs];
};

/** CPU seconds (user + system) a process has used so far. */
export const cpuSeconds = async (pid: number | undefined): Promise<number> => {
  if (!pid) return 0;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
};

/**
 * A single-document multipart submission (a 200 KB document and a signature type), built once per
 * document content: the load generator shares the cores with what it measures, so it does not
 * copy the document per request.
 */
export interface Submission {
  body: Buffer;
  contentType: string;
}
export const submissionOf = (doc: Buffer): Submission => {
  // The boundary style of signspool's CLI (cli/multipart.ts); curl and browsers send similar lengths.
  const boundary = `----signspool${randomBytes(12).toString('hex')}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="document.pdf"\r\ncontent-type: application/pdf\r\n\r\n`),
    doc,
    Buffer.from(`\r\n--${boundary}\r\ncontent-disposition: form-data; name="signatureType"\r\n\r\nCAdES\r\n--${boundary}--\r\n`),
  ]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
};

const TERMINAL = ['succeeded', 'failed', 'partially_failed', 'canceled'];

/**
 * The load generator's connections: uploads and long-polls on separate pools, as separate client
 * systems would have. On one shared pool the long-polls took every connection, and uploads waited
 * in the client for one to free (their "response time" then measured the pool).
 */
export interface Clients {
  upload: Agent;
  poll: Agent;
}
export const newClients = (uploadConnections: number): Clients => ({
  upload: new Agent({ connections: uploadConnections }),
  poll: new Agent({ connections: 8192 }),
});
export const closeClients = async (c: Clients): Promise<void> => {
  await Promise.all([c.upload.close(), c.poll.close()]);
};

/** One single-document operation; resolves with its id and the POST's response time. */
export const submitOne = async (apiUrl: string, key: string, agent: Agent, { body, contentType }: Submission): Promise<{ id: string; ms: number }> => {
  const t0 = performance.now();
  const r = await request(`${apiUrl}/v1/operations`, {
    method: 'POST',
    dispatcher: agent,
    headers: { authorization: `Bearer ${key}`, 'content-type': contentType },
    body,
  });
  const res = (await r.body.json()) as { id: string };
  const ms = performance.now() - t0;
  if (r.statusCode !== 202) throw new Error(`submit answered ${r.statusCode}`);
  return { id: res.id, ms };
};

/** Long-polls an operation to its end; resolves with accepted → signed in ms. */
export const waitSigned = async (apiUrl: string, key: string, agent: Agent, id: string): Promise<number> => {
  for (;;) {
    const r = await request(`${apiUrl}/v1/operations/${id}`, { dispatcher: agent, headers: { authorization: `Bearer ${key}`, prefer: 'wait=60' } });
    const body = (await r.body.json()) as { status: string; createdAt: string; completedAt: string | null };
    if (TERMINAL.includes(body.status)) {
      if (body.status !== 'succeeded') throw new Error(`operation ${id} ${body.status}`);
      return Date.parse(body.completedAt ?? '') - Date.parse(body.createdAt);
    }
  }
};

/** `docs` single-document operations from 64 clients in a closed loop, each long-polled to its end. */
export const closedLoop = async (apiUrl: string, key: string, clients: Clients, submission: Submission, docs: number) => {
  const postTimes: number[] = [];
  const e2e: number[] = [];
  let next = 0;
  const waiters: Promise<void>[] = [];
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < docs) {
        next++;
        const { id, ms } = await submitOne(apiUrl, key, clients.upload, submission);
        postTimes.push(ms);
        waiters.push(waitSigned(apiUrl, key, clients.poll, id).then((t) => void e2e.push(t)));
      }
    }),
  );
  await Promise.all(waiters);
  return { postTimes, e2e };
};
