/**
 * The start's port check holds no listener, not even for an instant: a client retrying an api that
 * restarts on that port is refused meanwhile, never accepted and then reset (issue 26). (A port in
 * use is refused: test/start.e2e.test.ts.)
 */
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { assertPortFree } from '../../../bin/preflight.js';
import { freePort } from '../../../bin/redis-server.js';

describe('assertPortFree', () => {
  afterEach(() => vi.restoreAllMocks());

  it('passes a free port without listening on it', async () => {
    const port = await freePort();
    const listen = vi.spyOn(net.Server.prototype, 'listen');
    await assertPortFree('127.0.0.1', port, 'PORT');
    await assertPortFree('0.0.0.0', port, 'PORT');
    expect(listen).not.toHaveBeenCalled();
  });
});
