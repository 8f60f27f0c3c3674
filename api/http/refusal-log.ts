/**
 * How an API error is logged. An expected refusal — a catalogued 4xx, or a 503/507 saying a
 * dependency or the spool cannot take the request now — is one line without a stack: 4xx at info,
 * 5xx at warn, and a 5xx refusal repeated under load (a Redis outage, a full spool) once per code
 * and window, with the number of refusals the line stands for. Only an unexpected error (INTERNAL:
 * something the code did not plan for) is logged at error with its stack.
 */
import type { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';

/** At most one warn line per refusal code in this window. */
const WINDOW_MS = 10_000;

export class RefusalLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = WINDOW_MS,
  ) {}

  /** Logs `apiErr` (what the client is answered), mapped from `err` (what was thrown). */
  log(apiErr: SignspoolError, err: unknown, req: { method: string; route?: { path: unknown } | undefined }): void {
    const where = { code: apiErr.code, status: apiErr.status, method: req.method, route: req.route?.path as string | undefined };
    if (apiErr.code === 'INTERNAL') {
      this.logger.error({ err, ...where }, 'request failed');
      return;
    }
    if (apiErr.status < 500) {
      // No detail: a 4xx detail may quote what the client sent.
      this.logger.info(where, 'request refused');
      return;
    }
    const now = Date.now();
    const seen = this.last.get(apiErr.code);
    if (seen && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    this.last.set(apiErr.code, { at: now, suppressed: 0 });
    this.logger.warn({ ...where, detail: apiErr.detail, ...(seen?.suppressed ? { alsoRefused: seen.suppressed } : {}) }, 'request refused');
  }
}
