/**
 * Room reserved in the spool for the uploads this api admits. An upload reserves what it may
 * write — its declared Content-Length, or for a chunked one the worst case, UPLOAD_MAX_TOTAL_BYTES —
 * atomically with the check that admits it, so a burst cannot overshoot between two free-space
 * readings. The reading is cached (a statfs per upload is measurable at hundreds per second): a
 * reservation released when its upload ends keeps counting until a reading taken after that moment
 * shows the written files, so the cache never makes room appear that is not there.
 */
import type { Spool } from '@signspool/shared/spool/spool';

export class SpaceReservations {
  /** Bytes reserved by uploads being admitted or read. */
  private held = 0;
  /** Released reservations not yet visible in a reading: [released at, bytes]. */
  private settling: [number, number][] = [];

  constructor(
    private readonly spool: Pick<Spool, 'freeReading'>,
    /** Oldest free-space reading used (ms). */
    private readonly maxAgeMs: number,
  ) {}

  /** Bytes reserved now (tests, metrics). */
  get reserved(): number {
    return this.held + this.settling.reduce((n, [, b]) => n + b, 0);
  }

  /**
   * Reserves `bytes` when the spool keeps at least `floor` free after it (and after every other
   * reservation); returns the release (idempotent), or undefined when there is no room.
   */
  async reserve(bytes: number, floor: number): Promise<(() => void) | undefined> {
    const reading = await this.spool.freeReading(this.maxAgeMs);
    // From here to the reservation nothing awaits: the check and the reservation are one step.
    this.settling = this.settling.filter(([at]) => at >= reading.at);
    if (reading.bytes - this.reserved - bytes < floor) return undefined;
    this.held += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held -= bytes;
      this.settling.push([Date.now(), bytes]);
    };
  }
}
