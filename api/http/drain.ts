/**
 * The api's graceful stop of its HTTP server. Once `drain()` starts, the server stops listening
 * (after accepting the connections the kernel had queued) and from then on every answer carries
 * `Connection: close` (the answers under way whose headers are not sent yet included), so clients
 * stop reusing their kept-alive connections; a request that reaches a kept-alive connection
 * meanwhile is still served. An idle connection is closed only once it has been left unused for the
 * drain window (by default until the api would close it anyway, twice the keep-alive timeout the
 * clients were told: they have closed it themselves by then), and every connection by the deadline.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import net, { type Socket } from 'node:net';

/** True once a stop marked the answer to close its connection (it announces no keep-alive then). */
export const closesConnection = (res: ServerResponse): boolean => res.hasHeader('Connection');

/** The answer closes its connection once sent (no effect on an answer whose headers are sent). */
const closeWhenAnswered = (res: ServerResponse): void => {
  if (res.headersSent) return;
  res.setHeader('Connection', 'close');
  // No keep-alive to announce (set on every answer before the application's handler, app.ts).
  res.removeHeader('Keep-Alive');
};

/**
 * At most this long (and within the drain window) the listener stays open after the stop started,
 * waiting for a turn of the event loop that accepts no connection. Clients that keep connecting (a
 * burst of retries) are served on kept-alive connections meanwhile, and stop opening new ones.
 */
const MAX_LISTEN_MS = 2000;
/** A turn of the event loop this short leaves little time between its poll phase and the listener's close. */
const QUIET_TURN_MS = 2;

/** A connection's answers under way: one at a time as a rule, more when its client pipelines requests. */
interface Answering {
  current: ServerResponse | undefined;
  pipelined: ServerResponse[] | undefined;
}

export class HttpDrain {
  private draining = false;
  /** From the listener's close: every answer closes its connection. */
  private closing = false;
  private listenerClosedNow: () => void = () => undefined;
  /** Resolves once the server no longer listens (a new connection is refused from then on). */
  readonly listenerClosed = new Promise<void>((resolve) => (this.listenerClosedNow = resolve));
  /**
   * Answers under way, per connection (until their response closes), to mark them when the
   * listener closes. Not one set of responses that every request adds to and deletes from: with
   * that set the young-generation GC kept the answers alive past their end, until a full GC (the
   * set's table, rebuilt as its entries churn, lives in the old generation while they are young).
   */
  private readonly answering = new Map<Socket, Answering>();
  /** Connections accepted so far: the listener closes after a turn of the event loop that accepted none. */
  private accepted = 0;

  constructor(private readonly server: Server) {
    server.on('connection', () => (this.accepted += 1));
    // The first listener: the application may send its headers synchronously.
    server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
      if (this.closing) {
        closeWhenAnswered(res);
        return;
      }
      this.answer(req.socket, res);
    });
  }

  /** Holds `res` among its connection's answers under way until it closes. */
  private answer(socket: Socket, res: ServerResponse): void {
    let held = this.answering.get(socket);
    if (!held) {
      held = { current: undefined, pipelined: undefined };
      this.answering.set(socket, held);
      socket.once('close', () => this.answering.delete(socket));
    }
    const on = held;
    if (on.current === undefined) on.current = res;
    else (on.pipelined ??= []).push(res);
    res.once('close', () => {
      if (on.current === res) on.current = on.pipelined?.shift();
      else if (on.pipelined) on.pipelined = on.pipelined.filter((r) => r !== res);
      if (on.pipelined?.length === 0) on.pipelined = undefined;
    });
  }

  /** True from the start of the drain (readiness answers 503 then). */
  get stopping(): boolean {
    return this.draining;
  }

  /**
   * Stops listening (`listenerClosed`), lets what arrives on open connections be answered (each
   * closing its connection from then on), closes the connections still idle after `windowMs`, and
   * every one at `deadlineMs` (both from now). `windowMs` by default: when the server closes an
   * idle connection anyway (its keepAliveTimeout), at most half the deadline. Resolves once no
   * connection is left: `'deadline'` when some had to be closed at the deadline (their requests
   * unanswered), else `'drained'`. Call once.
   */
  async drain(opts: { windowMs: number | undefined; deadlineMs: number }): Promise<'drained' | 'deadline'> {
    const { server } = this;
    this.draining = true;
    const windowMs = opts.windowMs ?? Math.min(server.keepAliveTimeout || Infinity, opts.deadlineMs / 2);
    // An answer already sent as keep-alive leaves its connection idle afterwards: closed after the window too.
    const keepAlive = server.keepAliveTimeout;
    server.keepAliveTimeout = Math.max(1, keepAlive > 0 ? Math.min(keepAlive, windowMs) : windowMs);
    const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
    this.stopListening(Math.min(windowMs, MAX_LISTEN_MS));
    // Until then answers keep their connection: a client that reconnected instead could meet the
    // listener's close. From then on it is refused.
    void this.listenerClosed.then(() => {
      this.closing = true;
      for (const { current, pipelined } of this.answering.values()) {
        if (current) closeWhenAnswered(current);
        for (const res of pipelined ?? []) closeWhenAnswered(res);
      }
      this.answering.clear();
    });
    let outcome: 'drained' | 'deadline' = 'drained';
    // http's close closes the idle connections (and stops its timeout checks), right after a poll
    // phase: a request that had reached the kernel by then has been read, its connection is not idle.
    const window = setTimeout(() => setImmediate(() => server.close()), windowMs);
    const deadline = setTimeout(() => {
      outcome = 'deadline';
      server.closeAllConnections();
    }, opts.deadlineMs);
    try {
      await closed;
    } finally {
      clearTimeout(window);
      clearTimeout(deadline);
    }
    return outcome;
  }

  /**
   * Stops listening after a short turn of the event loop that accepted no connection (or after
   * `boundMs`). Closing a listener resets the connections the kernel has queued for it and not yet
   * handed over (many when the process was busy or short of CPU, each with its request sent): those
   * are accepted first, and answered. The close runs in a check phase, right after the poll phase
   * that found none queued; only a connection that arrived since that poll is still reset, so the
   * turn must also have been short (QUIET_TURN_MS: little time since the poll). net's close stops
   * listening only (http's would also close the idle connections at once).
   */
  private stopListening(boundMs: number): void {
    const until = Date.now() + boundMs;
    let seen = -1;
    let last = performance.now();
    const turn = (): void => {
      const now = performance.now();
      const quiet = seen === this.accepted && now - last < QUIET_TURN_MS;
      if (quiet || Date.now() >= until) {
        net.Server.prototype.close.call(this.server);
        this.listenerClosedNow();
        return;
      }
      seen = this.accepted;
      last = now;
      setImmediate(turn);
    };
    setImmediate(turn);
  }
}
