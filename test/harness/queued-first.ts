/**
 * An api alone for a describe block, so that documents queue up with no worker, and a worker
 * started on its data directory and queue when a test says so: how many documents a worker finds
 * waiting then does not depend on how fast the machine accepts uploads. Both stop after the block.
 */
import { afterAll, beforeAll } from 'vitest';
import { startStack, type Stack } from './stack.js';

export const useApiThenWorker = (env: () => Record<string, string>): { api: () => Stack; startWorker: () => Promise<void> } => {
  let api: Stack | undefined;
  let worker: Stack | undefined;
  beforeAll(async () => {
    api = await startStack({ env: env(), worker: false });
  });
  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
  });
  const started = (): Stack => {
    if (!api) throw new Error('the api is used outside its describe block');
    return api;
  };
  return {
    api: started,
    async startWorker() {
      const { dir, config } = started();
      worker = await startStack({ env: env(), api: false, reuse: { dir, prefix: config.queuePrefix } });
    },
  };
};
