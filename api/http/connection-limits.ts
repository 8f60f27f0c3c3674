/**
 * Connection limits of the api's HTTP server, so that no tenant, no group of tenants and no
 * stranger can take the descriptors the others need:
 *   - a connection is *anonymous* until a request on it is authenticated (its head still arriving,
 *     the credential being checked, a route without credential such as /healthz) and again once
 *     that request is answered (idle keep-alive). At most HTTP_MAX_ANONYMOUS_CONNECTIONS: past it
 *     the oldest anonymous connection is closed. A header trickle is the oldest; a client that
 *     sends its head at once is authenticated within milliseconds.
 *   - a request authenticated as a tenant holds its connection for that tenant until it is
 *     answered; at most HTTP_TENANT_MAX_CONNECTIONS per tenant: past it the request is answered
 *     429 TOO_MANY_CONNECTIONS and the connection closed.
 *   - at most HTTP_MAX_CONNECTIONS in all: past it the largest holder (all anonymous connections
 *     counting as one holder) loses its oldest connection, so a newcomer always gets in.
 * Unset, the caps follow the process's descriptor limit (`connectionCaps`): the api never runs out
 * of descriptors for its spool files, Redis and the newcomer's connection.
 */
import { readFileSync } from 'node:fs';
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { RequestHandler } from 'express';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';

export interface ConnectionCaps {
  total: number;
  anonymous: number;
  /** 0: no cap per tenant. */
  perTenant: number;
}

/** The soft RLIMIT_NOFILE of this process (Node raises it to the hard limit at start), or undefined where /proc is not. */
export const descriptorLimit = (): number | undefined => {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] === undefined || m[1] === 'unlimited' ? undefined : Number(m[1]);
  } catch {
    return undefined;
  }
};

/**
 * The configured caps, the unset ones derived from the descriptor limit: connections in all three
 * quarters of it less 64 (the rest: spool files, Redis, the listening sockets, the worker in role
 * `all`), at most 10,000; anonymous and per tenant a quarter of the total, at most 1,000.
 */
export const connectionCaps = (configured: Config['connections'], descriptors: number | undefined): ConnectionCaps => {
  const total = configured.total ?? Math.max(32, Math.min(10_000, Math.floor((descriptors ?? 16_384) * 0.75) - 64));
  const quarter = Math.max(8, Math.min(1000, Math.floor(total / 4)));
  return { total, anonymous: configured.anonymous ?? quarter, perTenant: configured.perTenant ?? quarter };
};

/**
 * Closes the connection once a refusal sent before its body was read is answered. The server keeps
 * half-open connections (half-close.ts), so the FIN after the answer alone would leave the
 * descriptor to a client that never closes; destroyed a moment later, after the answer had time to
 * reach the client (an immediate close with unread bytes would reset it first).
 */
export const closeAfterAnswer = (res: ServerResponse, graceMs = 2000): void => {
  res.setHeader('Connection', 'close');
  const socket = res.req.socket;
  res.once('finish', () => setTimeout(() => socket.destroy(), graceMs).unref());
};

/** The holder of anonymous connections (tenant ids never contain a space). */
const ANONYMOUS = ' anonymous';

export class ConnectionLimits {
  /** Connections per holder, oldest first (a Set iterates in insertion order). */
  private readonly holders = new Map<string, Set<Socket>>();
  private readonly holderOf = new Map<Socket, string>();
  private lastLog = 0;

  constructor(
    readonly caps: ConnectionCaps,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
  ) {
    // The gauges read the counts when scraped: a request moves its connection twice, a scrape comes seldom.
    metrics.connectionSources.push(this);
  }

  /** Counts every connection of `server` from its accept. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.accepted(socket));
  }

  /** Open connections, and the anonymous ones among them (metrics, tests). */
  get counts(): { total: number; anonymous: number } {
    return { total: this.holderOf.size, anonymous: this.anonymousCount() };
  }

  private anonymousCount(): number {
    return this.holders.get(ANONYMOUS)?.size ?? 0;
  }

  /** Connections held for `tenant` now. */
  tenantCount(tenant: string): number {
    return this.holders.get(tenant)?.size ?? 0;
  }

  /** Middleware after authentication: the request holds its connection for its tenant until answered. */
  forTenant(): RequestHandler {
    return (req, res, next) => {
      if (!this.holdUntilAnswered(req.socket, req.tenant ?? '', res)) {
        this.metrics.connectionsClosed.inc({ reason: 'tenant_cap' });
        closeAfterAnswer(res);
        next(
          new SignspoolError('TOO_MANY_CONNECTIONS', {
            detail: `this tenant has ${this.caps.perTenant} requests open on this api process, as many as it may; retry when some are answered`,
            retryAfterMs: 1000,
            extensions: { limit: this.caps.perTenant },
          }),
        );
        return;
      }
      next();
    };
  }

  /** Whether a request of `tenant` on `socket` may hold it (false: the tenant holds its cap already). Changes nothing. */
  mayHold(socket: Socket, tenant: string): boolean {
    const current = this.holderOf.get(socket);
    return current === undefined || current === tenant || this.caps.perTenant === 0 || this.tenantCount(tenant) < this.caps.perTenant;
  }

  /** The request on `socket` holds it for `tenant` until `res` closes; false (nothing changed) when the tenant holds its cap already. */
  holdUntilAnswered(socket: Socket, tenant: string, res: ServerResponse): boolean {
    if (!this.hold(socket, tenant)) return false;
    res.once('close', () => this.release(socket, tenant));
    return true;
  }

  private accepted(socket: Socket): void {
    this.add(socket, ANONYMOUS);
    socket.once('close', () => this.remove(socket));
    if (this.anonymousCount() > this.caps.anonymous) this.evict(ANONYMOUS, 'anonymous_cap');
    if (this.holderOf.size > this.caps.total) this.evict(this.largestHolder(), 'total_cap');
  }

  /** Moves the connection to `tenant`; false when the tenant holds its cap already. */
  private hold(socket: Socket, tenant: string): boolean {
    if (!this.mayHold(socket, tenant)) return false;
    const current = this.holderOf.get(socket);
    // Closed (or evicted) meanwhile: the request fails on its own.
    if (current === undefined || current === tenant) return true;
    this.move(socket, current, tenant);
    return true;
  }

  /** The request is answered: its connection is anonymous again (idle keep-alive). */
  private release(socket: Socket, tenant: string): void {
    if (this.holderOf.get(socket) !== tenant) return;
    this.move(socket, tenant, ANONYMOUS);
    if (this.anonymousCount() > this.caps.anonymous) this.evict(ANONYMOUS, 'anonymous_cap');
  }

  private add(socket: Socket, holder: string): void {
    let set = this.holders.get(holder);
    if (!set) {
      set = new Set();
      this.holders.set(holder, set);
    }
    set.add(socket);
    this.holderOf.set(socket, holder);
  }

  private remove(socket: Socket): void {
    const holder = this.holderOf.get(socket);
    if (holder === undefined) return;
    this.holderOf.delete(socket);
    const set = this.holders.get(holder);
    set?.delete(socket);
    if (set?.size === 0) this.holders.delete(holder);
  }

  private move(socket: Socket, from: string, to: string): void {
    const set = this.holders.get(from);
    set?.delete(socket);
    if (set?.size === 0) this.holders.delete(from);
    this.add(socket, to);
  }

  /** The holder with the most connections (anonymous ones count as one holder). */
  private largestHolder(): string {
    let largest = ANONYMOUS;
    let size = -1;
    for (const [holder, set] of this.holders) {
      if (set.size > size) {
        largest = holder;
        size = set.size;
      }
    }
    return largest;
  }

  /** Closes the oldest connection of `holder` (forgotten now: its 'close' comes later). */
  private evict(holder: string, reason: 'anonymous_cap' | 'total_cap'): void {
    const oldest = this.holders.get(holder)?.values().next().value;
    if (!oldest) return;
    this.remove(oldest);
    oldest.destroy();
    this.metrics.connectionsClosed.inc({ reason });
    const now = Date.now();
    if (now - this.lastLog > 10_000) {
      this.lastLog = now;
      this.logger.warn({ reason, ...this.counts, caps: this.caps }, 'connection limit reached: oldest connection of the largest holder closed');
    }
  }
}
