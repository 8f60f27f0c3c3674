/**
 * The plain upload, `POST /v1/operations` with an API key that may write, answered in the server's
 * request listener below express (as the status read is, read/fast-status.ts): express's matching,
 * its layers and its response helpers are a part of an upload's cost that the upload does not
 * need. It runs what express's route runs, with the same pieces — the tenant's connection held,
 * the security headers, the upload's span, the submission itself (submit.ts: checks, turn, body,
 * record, jobs), problem+json errors from the same catalog, the same duration metric. Anything else
 * goes on to express: another method or path (a query string, a trailing slash), a JWT or an
 * unknown key, a key without the write scope, a tenant at its connection cap.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context } from '@opentelemetry/api';
import { closesConnection } from '../http/drain.js';
import { fastPathKey, type FastPathDeps } from '../http/fast-path.js';
import { observeDuration } from '../http/duration.js';
import { dropIfHalfClosed } from '../http/half-close.js';
import { JSON_TYPE } from '../http/json.js';
import { uploadSpanContext } from './span.js';
import type { Submissions, Submitted } from './submit.js';

const PATH = '/v1/operations';
/** The route label of an answer and of an error's log line, as express's (http/route-label.ts). */
const ROUTE = '/v1/operations/';

export interface FastUploadDeps extends FastPathDeps {
  submissions: Submissions;
}

export class FastUploads {
  /** Uploads answered here (tests: which path answered). */
  served = 0;

  constructor(private readonly deps: FastUploadDeps) {}

  /** Runs a plain upload (true), or leaves the request to express untouched (false). */
  serve(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'POST' || req.url !== PATH) return false;
    const entry = fastPathKey(req, this.deps, 'operations:write');
    if (!entry) return false;
    const { connections } = this.deps;
    this.served++;
    // In express's order: Keep-Alive (unless a stop closes the connection, drain.ts), the security headers, the duration, the connection held, the span, no-store.
    if (!closesConnection(res)) res.setHeader('Keep-Alive', this.deps.keepAlive);
    for (const [name, value] of this.deps.headers) res.setHeader(name, value);
    observeDuration(this.deps.metrics, 'POST', res, () => ROUTE);
    if (dropIfHalfClosed(req, res)) return true;
    const traced = uploadSpanContext(req, res);
    res.setHeader('Cache-Control', 'no-store');
    connections?.holdUntilAnswered(req.socket, entry.tenant, res);
    const submit = (): Promise<Submitted | undefined> => this.deps.submissions.submit(req, res, entry.tenant);
    (traced ? context.with(traced, submit) : submit()).then(
      (answer) => {
        // The client went away: nothing to answer.
        if (!answer) return;
        const body = JSON.stringify(answer.body);
        const head = ['Location', answer.location];
        if (answer.replayed) head.push('Idempotent-Replayed', 'true');
        head.push('Content-Type', JSON_TYPE, 'Content-Length', String(Buffer.byteLength(body)));
        res.writeHead(202, head).end(body);
      },
      (err: unknown) => this.deps.errors.answer(err, { method: 'POST', route: { path: ROUTE } }, res, PATH),
    );
    return true;
  }
}
