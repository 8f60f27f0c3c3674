/**
 * Errors Node's HTTP parser meets before a request reaches express (headers too large, malformed
 * framing, a header timeout): answered, where the socket can still carry an answer, with a small
 * problem+json from the catalog instead of Node's bare status line, then the connection closed.
 */
import type { Duplex } from 'node:stream';
import { SignspoolError, type ErrorCode } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';

const codeOf = (err: NodeJS.ErrnoException): ErrorCode | undefined => {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return 'HEADERS_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 'UPLOAD_TIMEOUT';
    default:
      return 'MALFORMED_REQUEST';
  }
};

const REASONS: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/** The raw HTTP/1.1 answer for a parser error (exported for tests). */
export const clientErrorResponse = (code: ErrorCode): string => {
  const err = new SignspoolError(code, code === 'UPLOAD_TIMEOUT' ? { detail: 'the request head did not arrive in time' } : {});
  const body = JSON.stringify(err.toProblem());
  return `HTTP/1.1 ${err.status} ${REASONS[err.status] ?? 'Error'}\r\ncontent-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\nconnection: close\r\n\r\n${body}`;
};

/** The server's 'clientError' listener. */
export const onClientError =
  (logger: Logger) =>
  (err: NodeJS.ErrnoException, socket: Duplex): void => {
    const code = codeOf(err);
    // Only on a socket that has sent nothing yet: an answer in progress must not be interleaved.
    const sent = (socket as Duplex & { bytesWritten?: number }).bytesWritten ?? 0;
    if (code === undefined || !socket.writable || sent > 0) {
      socket.destroy();
      return;
    }
    logger.debug({ code: err.code }, 'malformed request refused by the HTTP parser');
    socket.end(clientErrorResponse(code), () => socket.destroy());
  };
