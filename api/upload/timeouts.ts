/**
 * Upload timeouts: an upload being read (it holds an admission slot) must keep sending. It fails
 * with 408 UPLOAD_TIMEOUT when no byte arrived for UPLOAD_IDLE_TIMEOUT, or when it sent less than
 * UPLOAD_MIN_RATE bytes/s over a window of UPLOAD_MIN_RATE_WINDOW. Progress is read from the
 * socket's byte counter by one timer for all uploads (no per-chunk work). Uploads waiting for a
 * slot are not watched: they wait because the api does not read them.
 */
import type { Socket } from 'node:net';
import { SignspoolError } from '@signspool/shared/errors';

export interface UploadTimeoutSettings {
  idleMs: number;
  /** Bytes per second; 0 disables the rate check. */
  minBytesPerSecond: number;
  windowMs: number;
}

interface Watched {
  socket: Socket;
  lastBytes: number;
  lastProgressAt: number;
  windowBytes: number;
  windowAt: number;
  expire: (err: SignspoolError) => void;
}

export class UploadWatchdog {
  private readonly watched = new Set<Watched>();
  private timer: NodeJS.Timeout | undefined;
  private readonly tickMs: number;

  constructor(
    private readonly settings: UploadTimeoutSettings,
    /** Told each expiry (metrics). */
    private readonly onExpire: (reason: 'idle' | 'slow') => void = () => undefined,
  ) {
    this.tickMs = Math.max(10, Math.min(1000, Math.floor(Math.min(settings.idleMs, settings.windowMs) / 4)));
  }

  /**
   * Watches `socket` until the returned stop function is called; `expire` is called once, with
   * the 408 error, if the upload stalls or crawls.
   */
  watch(socket: Socket, expire: (err: SignspoolError) => void): () => void {
    const now = Date.now();
    const w: Watched = { socket, lastBytes: socket.bytesRead, lastProgressAt: now, windowBytes: socket.bytesRead, windowAt: now, expire };
    this.watched.add(w);
    this.timer ??= setInterval(() => this.tick(), this.tickMs).unref();
    return () => this.unwatch(w);
  }

  /** Uploads being watched (tests). */
  get size(): number {
    return this.watched.size;
  }

  stop(): void {
    this.watched.clear();
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private unwatch(w: Watched): void {
    this.watched.delete(w);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    const now = Date.now();
    const { idleMs, minBytesPerSecond, windowMs } = this.settings;
    for (const w of this.watched) {
      const bytes = w.socket.bytesRead;
      if (bytes !== w.lastBytes) {
        w.lastBytes = bytes;
        w.lastProgressAt = now;
      }
      let reason: 'idle' | 'slow' | undefined;
      if (now - w.lastProgressAt >= idleMs) reason = 'idle';
      else if (minBytesPerSecond > 0 && now - w.windowAt >= windowMs) {
        if (bytes - w.windowBytes < (minBytesPerSecond * (now - w.windowAt)) / 1000) reason = 'slow';
        w.windowBytes = bytes;
        w.windowAt = now;
      }
      if (!reason) continue;
      this.unwatch(w);
      this.onExpire(reason);
      w.expire(
        new SignspoolError('UPLOAD_TIMEOUT', {
          detail:
            reason === 'idle'
              ? `no data arrived for ${Math.round(idleMs / 1000)} s; nothing was kept`
              : `the upload sent less than ${minBytesPerSecond} bytes/s over ${Math.round(windowMs / 1000)} s; nothing was kept`,
          extensions: { reason },
        }),
      );
    }
  }
}
