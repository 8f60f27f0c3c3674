/**
 * Half-closed connections. A client may send its request and then close its side (FIN): an
 * upload that did so used to be aborted by Node before its answer. The server now keeps such
 * connections (`httpAllowHalfOpen`) so that a request with a body is still answered. A request
 * without a body (GET, HEAD, DELETE) whose client closes its side is taken as gone, as Node did
 * before: HTTP clients close that way when they give up (an aborted fetch), and a long poll
 * (`Prefer: wait`) must let go of them at once.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';

/** The bodyless request last read on a connection, whose answer its client's FIN ends (`dropIfHalfClosed`). */
const READER = Symbol('signspool.halfClosedReader');
type Watched = Socket & { [READER]?: ServerResponse };

/** The connection's FIN: the bodyless request in progress on it (if any) is taken as gone. */
function onEnd(this: Watched): void {
  const res = this[READER];
  if (res && !res.writableEnded) this.destroy();
}

/** Keeps half-open connections, and watches each for a FIN with one listener (not one per request). */
export const allowHalfOpen = (server: Server): void => {
  (server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.on('connection', (socket: Socket) => socket.once('end', onEnd));
};

const BODYLESS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/**
 * Ends a bodyless request whose client closed its side before the answer; true when it is ended
 * already. Otherwise it is the one a later FIN ends (answers on a connection end in order: the last
 * one not ended means one in progress).
 */
export const dropIfHalfClosed = (req: IncomingMessage, res: ServerResponse): boolean => {
  if (!BODYLESS.has(req.method ?? '')) return false;
  const socket = req.socket as Watched;
  if (socket.readableEnded) {
    if (!res.writableEnded) socket.destroy();
    return true;
  }
  socket[READER] = res;
  return false;
};

/** Middleware: `dropIfHalfClosed`. */
export const dropHalfClosedReaders: RequestHandler = (req, res, next) => {
  if (!dropIfHalfClosed(req, res)) next();
};
