/**
 * Keep-alive without the close race. A client keeps an idle connection as long as the server's
 * `Keep-Alive: timeout=N` says (undici less 1 s), then drops it. A server that closes at exactly
 * N meets the requests a client sends near its deadline — or later, when the client's event loop
 * lags behind — and they get no answer ("other side closed", ECONNRESET), which a client cannot
 * safely retry for a POST. Node 20 already waits a second past N; on a loaded machine clients lag
 * more than that (the chaos suite's did). So the api tells clients N (HTTP_KEEPALIVE_TIMEOUT) and
 * closes an idle connection only after 2N (+ Node's second): the client lets go first.
 */
import type { Server } from 'node:http';

/** The `Keep-Alive` value that tells clients `advertisedMs`: every answer carries it (Node does not add its own once one is set). */
export const keepAliveHeader = (advertisedMs: number): string => `timeout=${Math.max(1, Math.floor(advertisedMs / 1000))}`;

/** Closes idle connections after twice `advertisedMs`; the request listener sets keepAliveHeader first on every answer (app.ts). */
export const keepAlive = (server: Server, advertisedMs: number): void => {
  server.keepAliveTimeout = 2 * advertisedMs;
};
