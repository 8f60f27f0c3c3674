/** Spool room reserved by admitted uploads (api/upload/space.ts): a burst cannot overshoot, and a cached reading never frees room early. */
import { describe, expect, it } from 'vitest';
import { SpaceReservations } from '@signspool/api/upload/space';

const MiB = 1024 * 1024;

/** A spool whose free-space reading is set by the test (as if cached). */
const spoolWith = (reading: { at: number; bytes: number }) => ({ freeReading: () => Promise.resolve(reading) });

describe('SpaceReservations', () => {
  it('admits concurrent uploads only while all of them fit above the floor', async () => {
    const space = new SpaceReservations(spoolWith({ at: Date.now(), bytes: 10 * MiB }), 250);
    const answers = await Promise.all(Array.from({ length: 5 }, () => space.reserve(3 * MiB, 1 * MiB)));
    expect(answers.map((r) => r !== undefined)).toEqual([true, true, true, false, false]);
    expect(space.reserved).toBe(9 * MiB);
  });

  it('keeps a released reservation until a reading taken after the release shows its file', async () => {
    const reading = { at: Date.now(), bytes: 10 * MiB };
    const space = new SpaceReservations(spoolWith(reading), 250);
    const release = await space.reserve(6 * MiB, 1 * MiB);
    release?.();
    release?.();
    // The cached reading predates the upload's file: the room is still taken.
    expect(await space.reserve(6 * MiB, 1 * MiB)).toBeUndefined();
    // A new reading shows the file (4 MiB left): the settled reservation is dropped, the reading decides.
    reading.at = Date.now() + 1;
    reading.bytes = 4 * MiB;
    expect(space.reserved).toBe(6 * MiB);
    expect(await space.reserve(2 * MiB, 1 * MiB)).toBeDefined();
    expect(space.reserved).toBe(2 * MiB);
  });
});
