/** Pieces shared by the benchmarks' load generators (bench/run.ts, bench/api-cost.ts). */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/**
 * More node flags for the api and worker processes the benchmarks start: BENCH_PROFILE_DIR=dir makes
 * them write V8 CPU profiles there; BENCH_NODE_ARGS adds any (e.g. `--perf-basic-prof-only-functions`
 * for `perf record`).
 */
export const benchNodeArgs = (): string[] => [
  ...(process.env['BENCH_PROFILE_DIR'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_PROFILE_DIR']}`] : []),
  ...(process.env['BENCH_NODE_ARGS']?.split(' ').filter(Boolean) ?? []),
];

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
