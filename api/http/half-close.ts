/**
 * Half-closed connections. A client may send its request and then close its side (FIN): an
 * upload that did so used to be aborted by Node before its answer. The server now keeps such
 * connections (`httpAllowHalfOpen`) so that a request with a body is still answered. A request
 * without a body (GET, HEAD, DELETE) whose client closes its side is taken as gone, as Node did
 * before: HTTP clients close that way when they give up (an aborted fetch), and a long poll
 * (`Prefer: wait`) must let go of them at once.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';

export const allowHalfOpen = (server: Server): void => {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
};

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/** Ends a bodyless request whose client closed its side before the answer; true when it is ended already. */
export const dropIfHalfClosed = (req: IncomingMessage, res: ServerResponse): boolean => {
  if (!BODYLESS.has(req.method ?? '')) return false;
  const socket = req.socket;
  const gone = (): void => {
    if (!res.writableEnded) socket.destroy();
  };
  if (socket.readableEnded) {
    gone();
    return true;
  }
  socket.once('end', gone);
  res.once('close', () => socket.off('end', gone));
  return false;
};

/** Middleware: `dropIfHalfClosed`. */
export const dropHalfClosedReaders: RequestHandler = (req, res, next) => {
  if (!dropIfHalfClosed(req, res)) next();
};
