/**
 * The plain status read, `GET /v1/operations/<id>` with an API key, answered in the server's
 * request listener below express: express's matching, layers and response helpers cost more than
 * the read itself. It answers what the express route answers — the same headers, the tenant's
 * connection held, the reads window, the record, problem+json errors from the same catalog, the
 * same duration metric, the long poll (`Prefer: wait`, read/long-poll.ts) — with the pieces that
 * route uses. Anything else goes on to express, which answers it as before: another method or path,
 * a query string, conditional requests, a body, a JWT or an unknown key, a key without the read
 * scope, a tenant at its connection cap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { observeDuration } from '../http/duration.js';
import { dropIfHalfClosed } from '../http/half-close.js';
import { closesConnection } from '../http/drain.js';
import { fastPathKey, type FastPathDeps } from '../http/fast-path.js';
import { JSON_TYPE } from '../http/json.js';
import type { HeaderTarget } from '../rate-limits.js';
import { applyPreference, type LongPolls, type Wait } from './long-poll.js';
import { OPERATION_ID, type StatusReadDeps } from './status.js';
import { renderStatus, StatusAnswers, type StatusAnswer } from './status-answers.js';

const PATH = new RegExp(`^/v1/operations/(${OPERATION_ID.source.slice(1, -1)})$`);
/** The route label of an answer and of an error's log line, as express's (http/route-label.ts). */
const ROUTE = '/v1/operations/:id';

export interface FastStatusDeps extends StatusReadDeps, FastPathDeps {
  /** `Prefer: wait` and the tenant's long-poll slots, shared with express's route. */
  longPolls: LongPolls;
}

export class FastStatusReads {
  /** Status reads answered here (tests: which path answered). */
  served = 0;
  /** The answers of reads at once, kept while their records do not change. */
  readonly answers = new StatusAnswers();

  /** Keep-Alive, the security headers and Cache-Control, in express's order: a flat list for writeHead. */
  private readonly head: readonly string[];

  constructor(private readonly deps: FastStatusDeps) {
    this.head = ['Keep-Alive', deps.keepAlive, ...deps.headers.flat(), 'Cache-Control', 'no-store'];
  }

  /** Answers a plain status read (true), or leaves the request to express untouched (false). */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET') return false;
    const url = req.url ?? '';
    const id = PATH.exec(url)?.[1];
    const h = req.headers;
    if (id === undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined) return false;
    if (h['content-length'] !== undefined || h['transfer-encoding'] !== undefined) return false;
    const entry = fastPathKey(req, this.deps, 'operations:read');
    if (!entry) return false;
    const { connections } = this.deps;
    this.served++;
    // In express's order: the duration, a half-closed reader dropped, the connection held; the headers go with the answer.
    observeDuration(this.deps.metrics, 'GET', res, () => ROUTE);
    if (dropIfHalfClosed(req, res)) return true;
    connections?.holdUntilAnswered(req.socket, entry.tenant, res);
    // Node joins a repeated Prefer into one string (never a list).
    const wait = this.deps.longPolls.begin(entry.tenant, typeof h.prefer === 'string' ? h.prefer : undefined);
    // Preference-Applied and the reads window's RateLimit fields, after Cache-Control as express sets them.
    const limitHeaders: string[] = [];
    const collect: HeaderTarget = { setHeader: (name, value) => limitHeaders.push(name, value) };
    this.answer(res, entry.tenant, id, wait, collect, limitHeaders).catch((err: unknown) => {
      const head = this.headOf(res, limitHeaders);
      for (let i = 0; i + 1 < head.length; i += 2) res.setHeader(head[i] ?? '', head[i + 1] ?? '');
      this.deps.errors.answer(err, { method: 'GET', route: { path: ROUTE } }, res, url);
    });
    return true;
  }

  private async answer(res: ServerResponse, tenant: string, id: string, wait: Wait, collect: HeaderTarget, limitHeaders: readonly string[]): Promise<void> {
    try {
      let answer: StatusAnswer;
      if (wait.seconds === 0) {
        applyPreference(wait, collect);
        answer = await this.answers.read(this.deps, tenant, id, collect);
      } else {
        const op = await this.deps.longPolls.read(this.deps, tenant, id, wait, res, collect);
        // The client went away while waiting: nothing to answer.
        if (!op) return;
        answer = await renderStatus(this.deps, op);
      }
      const head = this.headOf(res, limitHeaders);
      if (answer.retryAfter !== undefined) head.push('Retry-After', answer.retryAfter);
      head.push('Content-Type', JSON_TYPE, 'Content-Length', answer.length);
      // One writeHead: no header set one by one before it (each set is checked and stored on its own).
      res.writeHead(200, head).end(answer.body);
    } finally {
      // As express's route: the long-poll slot is held until the answer is written.
      wait.release();
    }
  }

  /** The answer's first headers: Keep-Alive unless a stop marked it to close its connection (drain.ts), then the fixed ones and `extra`. */
  private headOf(res: ServerResponse, extra: readonly string[]): string[] {
    const head = closesConnection(res) ? this.head.slice(2) : [...this.head];
    head.push(...extra);
    return head;
  }
}
