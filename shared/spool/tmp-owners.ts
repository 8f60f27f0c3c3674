/**
 * Who owns a file under tmp/. Every Spool names its partial writes and spares
 * `<label>-<owner>-<uuid>` and, while its process lives, keeps `tmp/owner-<owner>` touched every
 * OWNER_HEARTBEAT_MS. A file whose owner stopped touching its heartbeat (a killed or crashed
 * process) is garbage as soon as the janitor sees it, not an hour later: a killed worker's partial
 * result of 20 MB no longer holds the spool's space. A file without an owner tag (written before
 * tags existed) keeps the janitor's age rules.
 */
import { randomBytes } from 'node:crypto';
import { rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';

export const OWNER_HEARTBEAT_MS = 2_000;
/** An owner whose heartbeat is this old is gone (ten missed beats: a live event loop never stalls that long). */
export const OWNER_STALE_MS = 20_000;

const OWNER_FILE = /^owner-([0-9a-f]{16})$/;
const OWNED_FILE = /^[a-z]+-([0-9a-f]{16})-/;

export const newOwnerId = (): string => randomBytes(8).toString('hex');

/** The owner a tmp/ file name carries, or undefined (an untagged file, or a heartbeat file). */
export const ownerOf = (name: string): string | undefined => OWNED_FILE.exec(name)?.[1];

/** The owner whose heartbeat `name` is, or undefined. */
export const heartbeatOf = (name: string): string | undefined => OWNER_FILE.exec(name)?.[1];

/** A process's heartbeat under tmp/: start() creates it and touches it until stop(). */
export class OwnerHeartbeat {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  readonly path: string;

  constructor(
    tmpRoot: string,
    readonly owner: string,
  ) {
    this.path = path.join(tmpRoot, `owner-${owner}`);
  }

  async start(): Promise<void> {
    if (this.timer || this.stopped) return;
    await writeFile(this.path, '');
    this.timer = setInterval(() => {
      const now = new Date();
      // A heartbeat removed by hand comes back; a failed touch is retried at the next beat.
      utimes(this.path, now, now).catch(() => writeFile(this.path, '').catch(() => undefined));
    }, OWNER_HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Idempotent: stops touching and removes the heartbeat (what this owner left is garbage from now on). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await rm(this.path, { force: true });
  }
}
