/**
 * Consumes the sign queue by hand: a BullMQ Worker without processor (getNextJob, then
 * moveToCompleted / moveToFailed / moveToWait / moveToDelayed). It extends the locks of every held
 * job in one call, notices jobs whose lock was lost (another worker owns them now), and runs
 * BullMQ's stalled-job checker so jobs of a dead worker come back. While the worker wants more
 * jobs (`wantsMore`), a completion fetches the next waiting job in the same call (BullMQ's
 * moveToFinished with fetchNext, what its own Worker does): that job is locked and held at once,
 * and `next` hands it out before asking Redis again; jobs fetched so and not handed out are given
 * back to the queue at `close`.
 */
import { randomUUID } from 'node:crypto';
import { Worker, type Job, type JobJsonRaw } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '@signspool/shared/logger';
import { QUEUES } from '@signspool/shared/queue';

export interface SignJobConsumerOptions {
  connection: Redis;
  prefix: string;
  lockDurationMs: number;
  maxStalled: number;
  logger: Logger;
  /** Called when BullMQ gives up on a job (stalled too often); the document must be failed. */
  onStalledOut?: (job: Job, reason: string) => void;
  /** Whether a completion may fetch the next job along (false: only `next` fetches). */
  wantsMore?: () => boolean;
}

/** BullMQ's Worker, turning the reply of a completion that fetched the next job into that job. */
class SignQueueWorker extends Worker {
  /** The job in a moveToCompleted reply (`[jobData, jobId, …]`), locked with `token`; undefined when none came. */
  async fetchedJob(reply: unknown, token: string): Promise<Job | undefined> {
    if (!Array.isArray(reply) || reply[0] === undefined || reply[0] === null || typeof reply[1] !== 'string') return undefined;
    return this.nextJobFromJobData(reply[0] as JobJsonRaw, reply[1], token);
  }
}

export class SignJobConsumer {
  readonly token = randomUUID();
  private readonly worker: SignQueueWorker;
  private readonly held = new Map<string, Job>();
  /** Held jobs a completion fetched, not yet handed out by `next`. */
  private readonly fetched: Job[] = [];
  /** Completions deciding whether to fetch along: their own job is not counted then (it is on its way out). */
  private deciding = 0;
  private readonly opts: SignJobConsumerOptions;
  /** Held jobs whose lock could not be extended: their results must not be recorded by this worker. */
  private readonly lost = new Set<string>();
  private lockTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(opts: SignJobConsumerOptions) {
    this.opts = opts;
    this.worker = new SignQueueWorker(QUEUES.sign, null, {
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

  /**
   * Jobs held. A completion that fetches along keeps its own job held until the next one is, so the
   * one takes the other's place.
   */
  get heldCount(): number {
    return this.held.size - this.deciding;
  }

  /** Held jobs a completion fetched along that `next` has not handed out yet. */
  get fetchedCount(): number {
    return this.fetched.length;
  }

  /** Waits (up to about a second) for the next job; undefined when none or closing. */
  async next(): Promise<Job | undefined> {
    if (this.closed) return undefined;
    const along = this.fetched.shift();
    if (along) return along;
    const job = await this.worker.getNextJob(this.token, { block: true });
    if (job?.id) this.held.set(job.id, job);
    return job ?? undefined;
  }

  async complete(job: Job, result: unknown): Promise<void> {
    this.deciding++;
    let fetchNext: boolean;
    try {
      fetchNext = !this.closed && (this.opts.wantsMore?.() ?? false);
    } finally {
      this.deciding--;
    }
    if (!fetchNext) return this.settle(job, () => job.moveToCompleted(result, this.token, false));
    return this.settle(job, async () => this.keep(await this.worker.fetchedJob(await job.moveToCompleted(result, this.token, true), this.token)));
  }

  /** A job a completion brought along: held (its lock extended) until `next` hands it out, or given back when closing. */
  private async keep(job: Job | undefined): Promise<void> {
    if (!job?.id) return;
    this.held.set(job.id, job);
    if (this.closed) await this.release(job);
    else this.fetched.push(job);
  }

  async fail(job: Job, err: Error): Promise<void> {
    await this.settle(job, () => job.moveToFailed(err, this.token, false));
  }

  /** Gives a job back to the queue, at once or after `delayMs`; another worker, or this one later, takes it. */
  async release(job: Job, delayMs = 0): Promise<void> {
    await this.settle(job, () => (delayMs > 0 ? job.moveToDelayed(Date.now() + delayMs, this.token) : job.moveToWait(this.token)));
  }

  /** False once the job's lock was lost: another worker may be signing it. */
  owns(job: Job): boolean {
    return job.id !== undefined && this.held.has(job.id) && !this.lost.has(job.id);
  }

  /** Forgets a job whose lock was lost, without touching it in Redis (its new owner settles it). */
  forget(job: Job): void {
    if (!job.id) return;
    this.held.delete(job.id);
    this.lost.delete(job.id);
  }

  private async settle(job: Job, op: () => Promise<unknown>): Promise<void> {
    try {
      await op();
    } catch (err) {
      // Lock lost (the job stalled and was taken back): the record in Redis decides what happens.
      this.opts.logger.warn({ err, jobId: job.id }, 'could not settle job');
    } finally {
      this.forget(job);
    }
  }

  private async extendLocks(): Promise<void> {
    const jobs = [...this.held.values()].filter((j) => j.id !== undefined && !this.lost.has(j.id));
    if (jobs.length === 0) return;
    const ids = jobs.map((j) => j.id ?? '');
    try {
      const failed = await this.worker.extendJobLocks(
        ids,
        ids.map(() => this.token),
        this.opts.lockDurationMs,
      );
      for (const id of failed) {
        if (!this.held.has(id)) continue;
        this.lost.add(id);
        this.opts.logger.warn({ jobId: id }, 'lost the lock of a held job; its result will not be recorded here');
      }
    } catch (err) {
      // Redis unreachable: the locks may expire; the state machine's claim decides who records a result.
      this.opts.logger.warn({ err: { message: (err as Error).message }, jobs: jobs.length }, 'could not extend job locks');
    }
  }

  /** Idempotent. Held jobs should have been settled or released before; jobs fetched along and not handed out go back to the queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.fetched.splice(0).map((job) => this.release(job)));
    if (this.lockTimer) clearInterval(this.lockTimer);
    await this.worker.close(true);
  }
}
