/**
 * Pulls sign jobs from BullMQ by hand (a Worker without processor: getNextJob, then
 * moveToCompleted / moveToFailed / moveToWait), keeps the locks of every held job extended, and
 * runs BullMQ's stalled-job checker so jobs of a dead worker come back.
 */
import { randomUUID } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@signspool/shared/logger';
import { QUEUES } from '@signspool/shared/queue';

export interface JobSourceOptions {
  connection: Redis;
  prefix: string;
  lockDurationMs: number;
  maxStalled: number;
  logger: Logger;
  /** Called when BullMQ gives up on a job (stalled too often); the document must be failed. */
  onStalledOut?: (job: Job, reason: string) => void;
}

export class JobSource {
  readonly token = randomUUID();
  private readonly worker: Worker;
  private readonly held = new Map<string, Job>();
  private readonly opts: JobSourceOptions;
  private lockTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: JobSourceOptions) {
    this.opts = opts;
    this.worker = new Worker(QUEUES.sign, null, {
      connection: opts.connection,
      prefix: opts.prefix,
      autorun: false,
      lockDuration: opts.lockDurationMs,
      stalledInterval: Math.max(1000, Math.floor(opts.lockDurationMs / 2)),
      maxStalledCount: opts.maxStalled,
      drainDelay: 1,
    });
    this.worker.on('error', (err) => opts.logger.error({ err }, 'job source error'));
    this.worker.on('failed', (job, err) => {
      if (job && !this.held.has(job.id ?? '')) opts.onStalledOut?.(job, err.message);
    });
  }

  async start(): Promise<void> {
    await this.worker.waitUntilReady();
    await this.worker.startStalledCheckTimer();
    const every = Math.max(500, Math.floor(this.opts.lockDurationMs / 3));
    this.lockTimer = setInterval(() => void this.extendLocks(), every);
    this.lockTimer.unref();
  }

  get heldCount(): number {
    return this.held.size;
  }

  /** Waits (up to about a second) for the next job; undefined when none or closing. */
  async next(): Promise<Job | undefined> {
    if (this.closed) return undefined;
    const job = await this.worker.getNextJob(this.token, { block: true });
    if (job?.id) this.held.set(job.id, job);
    return job ?? undefined;
  }

  async complete(job: Job, result: unknown): Promise<void> {
    await this.settle(job, () => job.moveToCompleted(result, this.token, false));
  }

  async fail(job: Job, err: Error): Promise<void> {
    await this.settle(job, () => job.moveToFailed(err, this.token, false));
  }

  /** Gives a job back to the queue (shutdown): another worker, or this one after restart, takes it. */
  async release(job: Job): Promise<void> {
    await this.settle(job, () => job.moveToWait(this.token));
  }

  private async settle(job: Job, op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
    } catch (err) {
      // Lock lost (the job stalled and was taken back): the record in Redis decides what happens.
      this.opts.logger.warn({ err, jobId: job.id }, 'could not settle job');
    } finally {
      if (job.id) this.held.delete(job.id);
    }
  }

  private async extendLocks(): Promise<void> {
    const jobs = [...this.held.values()];
    await Promise.all(
      jobs.map(async (job) => {
        try {
          await job.extendLock(this.token, this.opts.lockDurationMs);
        } catch (err) {
          this.opts.logger.warn({ err, jobId: job.id }, 'could not extend job lock');
        }
      }),
    );
  }

  /** Idempotent. Held jobs should have been settled or released before. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.lockTimer) clearInterval(this.lockTimer);
    await this.worker.close(true);
  }
}
