/**
 * The chaos driver's HTTP client: every request it makes to the api goes through `call`, which
 * keeps what came back. A request either gets an answer (its status is counted, and a 503 without
 * Retry-After is counted apart) or gets none, and "none" is told apart: `refused` (nothing listens
 * on the port: the api is down between a stop and its restart, which the client learns at once),
 * `cut` (in flight when the driver itself SIGKILLed the api: no process can answer that) and
 * `noAnswer` (timed out, reset or closed while an api was there to answer: target 0).
 */

export type Failure = 'refused' | 'cut' | 'noAnswer';

export interface HttpFigures {
  statuses: Map<number, number>;
  failures: Record<Failure, number>;
  /** 503 answers without a Retry-After header. */
  unavailableWithoutRetryAfter: number;
  /** A few examples of requests that got no answer (method, path, error). */
  noAnswerExamples: string[];
}

/** From the SIGKILL sent to the api's exit (a connection accepted meanwhile is reset too). */
export interface KillWindow {
  from: number;
  to: number;
}

/** Which kind of failure a fetch error is, for a request started at `startedAt` and failed at `failedAt`. */
export const classifyFailure = (err: unknown, startedAt: number, failedAt: number, apiKills: readonly KillWindow[]): Failure => {
  const cause = (err as { cause?: { code?: unknown } } | undefined)?.cause;
  if (cause?.code === 'ECONNREFUSED') return 'refused';
  if (apiKills.some((k) => startedAt <= k.to && failedAt >= k.from)) return 'cut';
  return 'noAnswer';
};

const describeError = (err: unknown): string => {
  const e = err as { name?: string; message?: string; cause?: { code?: unknown; message?: unknown } } | undefined;
  const cause = e?.cause ? ` (${String(e.cause.code ?? e.cause.message ?? '')})` : '';
  return `${e?.name ?? 'Error'}: ${e?.message ?? String(err)}${cause}`;
};

export class HttpRecorder implements HttpFigures {
  readonly statuses = new Map<number, number>();
  readonly failures: Record<Failure, number> = { refused: 0, cut: 0, noAnswer: 0 };
  unavailableWithoutRetryAfter = 0;
  readonly noAnswerExamples: string[] = [];
  /** When the driver SIGKILLed the api (a request in flight then is `cut`, not `noAnswer`). */
  readonly apiKills: KillWindow[] = [];

  constructor(private readonly key: string) {}

  /** fetch with auth and a timeout; status 0 = no answer (refused, cut, timed out or reset). */
  async call(url: string, init: RequestInit & { timeoutMs: number }): Promise<{ status: number; body: Buffer; headers: Headers | undefined }> {
    const startedAt = Date.now();
    try {
      const res = await fetch(url, {
        ...init,
        headers: { authorization: `Bearer ${this.key}`, ...(init.headers as Record<string, string> | undefined) },
        signal: AbortSignal.timeout(init.timeoutMs),
      });
      const body = Buffer.from(await res.arrayBuffer());
      this.statuses.set(res.status, (this.statuses.get(res.status) ?? 0) + 1);
      if (res.status === 503 && !res.headers.get('retry-after')) this.unavailableWithoutRetryAfter += 1;
      return { status: res.status, body, headers: res.headers };
    } catch (err) {
      const kind = classifyFailure(err, startedAt, Date.now(), this.apiKills);
      this.failures[kind] += 1;
      if (kind === 'noAnswer' && this.noAnswerExamples.length < 5)
        this.noAnswerExamples.push(`${init.method ?? 'GET'} ${new URL(url).pathname} after ${Date.now() - startedAt} ms: ${describeError(err)}`);
      return { status: 0, body: Buffer.alloc(0), headers: undefined };
    }
  }
}
