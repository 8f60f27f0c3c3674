/**
 * The sign queue as the upload route hands it to the lifecycle (shared/operations/lifecycle.ts):
 * BullMQ's Queue for every use, plus `sendAdds`, which sends each job's add (the command BullMQ's
 * own Job.addJob builds) on the store's connection at once, so that the submission's commit can
 * follow without waiting: one round trip for both. It declines, sending nothing, until BullMQ has
 * loaded its scripts, and when that connection does not have them (not the queue's). Not through
 * an ioredis pipeline: building one copies every script defined on the connection (about 60
 * here), which cost more CPU than the round trip it saves.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { SignJobSpec, SignQueue } from '@signspool/shared/operations/lifecycle';

type JobClient = Parameters<Job['addJob']>[0];
type ScriptCommand = (args: unknown[]) => Promise<unknown>;

export const pipelinedSignQueue = (queue: Queue): SignQueue => {
  let ready = false;
  queue.waitUntilReady().then(
    () => (ready = true),
    () => undefined,
  );
  return {
    add: (name, data, opts) => queue.add(name, data, opts),
    addBulk: (jobs) => queue.addBulk(jobs),
    remove: (jobId) => queue.remove(jobId),
    sendAdds(redis: Redis, jobs: SignJobSpec[]) {
      if (!ready) return undefined;
      // Job.addJob builds its command synchronously and hands it to its client's runCommand: recorded here, sent below.
      const commands: [string, unknown[]][] = [];
      const recorder = {
        runCommand: (name: string, args: unknown[]): unknown => {
          commands.push([name, args]);
          return recorder;
        },
      };
      const defaults = queue.defaultJobOptions;
      for (const spec of jobs) {
        const job = new Job(queue, spec.name, spec.data, { ...defaults, ...spec.opts }, spec.opts.jobId);
        job.addJob(recorder as unknown as JobClient).catch(() => undefined);
      }
      const target = redis as unknown as Record<string, ScriptCommand | undefined>;
      if (commands.length !== jobs.length || commands.some(([name]) => typeof target[name] !== 'function')) return undefined;
      return {
        keys: jobs.map((spec) => queue.toKey(spec.opts.jobId)),
        replies: commands.map(async ([name, args]) => {
          const reply = await (target[name] as ScriptCommand).call(redis, args);
          // BullMQ's scripts answer a refused add with a negative code.
          if (typeof reply === 'number' && reply < 0) throw new Error(`the queue refused the job (${name}: ${reply})`);
          return reply;
        }),
      };
    },
  };
};
