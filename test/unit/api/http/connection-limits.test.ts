/** ConnectionLimits and its gauge: the counts follow each request's hold and release, and are read when scraped, not set per request. */
import { EventEmitter } from 'node:events';
import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { ConnectionLimits } from '@signspool/api/http/connection-limits';
import { createLogger } from '@signspool/shared/logger';
import { createMetrics } from '@signspool/shared/metrics';

/** The gauge's exposition lines (a scrape). */
const scrape = async (metrics: ReturnType<typeof createMetrics>): Promise<string[]> =>
  (await metrics.registry.getSingleMetricAsString('signspool_http_connections')).split('\n').filter((l) => !l.startsWith('#'));

describe('ConnectionLimits gauge', () => {
  it('reads the counts when scraped, and sets nothing per request', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const limits = new ConnectionLimits({ total: 100, anonymous: 100, perTenant: 10 }, metrics, createLogger({ level: 'silent' }));
    const server = new EventEmitter();
    limits.attach(server as unknown as Server);
    const sockets = [new EventEmitter(), new EventEmitter()] as unknown as Socket[];
    for (const s of sockets) server.emit('connection', s);
    const set = vi.spyOn(metrics.connections, 'set');
    // 100 requests held and answered on the first connection, one in progress on the second.
    for (let i = 0; i < 100; i++) {
      const res = new EventEmitter() as unknown as ServerResponse;
      expect(limits.holdUntilAnswered(sockets[0] as Socket, 'acme', res)).toBe(true);
      res.emit('close');
    }
    expect(limits.holdUntilAnswered(sockets[1] as Socket, 'acme', new EventEmitter() as unknown as ServerResponse)).toBe(true);
    expect(set).not.toHaveBeenCalled();
    expect(await scrape(metrics)).toEqual(['signspool_http_connections{holder="anonymous"} 1', 'signspool_http_connections{holder="tenant"} 1']);
    (sockets[1] as unknown as EventEmitter).emit('close');
    expect(await scrape(metrics)).toEqual(['signspool_http_connections{holder="anonymous"} 1', 'signspool_http_connections{holder="tenant"} 0']);
  });
});
