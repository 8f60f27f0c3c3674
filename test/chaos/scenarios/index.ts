/** Every chaos scenario, in the order the table prints them, and the few the short form runs. */
import type { Scenario } from '../driver.js';
import { apiSigkill } from './api-sigkill.js';
import { redisDown } from './redis-down.js';
import { redisHung } from './redis-hung.js';
import { redisKill9 } from './redis-kill9.js';
import { sigtermApi, sigtermWorker } from './sigterm.js';
import { spoolBurst } from './spool-burst.js';
import { spoolFullApi, spoolFullWorker } from './spool-full.js';
import { spoolTampered } from './spool-tampered.js';
import { upstreamHang } from './upstream-hang.js';
import { upstreamMix } from './upstream-mix.js';
import { upstreamOutage } from './upstream-outage.js';
import { upstreamPartial } from './upstream-partial.js';
import { webhooksFlaky } from './webhooks.js';
import { workerSigkill } from './worker-sigkill.js';

export const SCENARIOS: Scenario[] = [
  workerSigkill,
  redisKill9('everysec'),
  redisKill9('strict'),
  redisDown,
  redisHung,
  upstreamMix,
  upstreamPartial,
  upstreamHang,
  upstreamOutage,
  spoolFullApi,
  spoolFullWorker,
  spoolBurst,
  sigtermApi,
  sigtermWorker,
  apiSigkill,
  spoolTampered,
  webhooksFlaky,
];

export const scenarioNamed = (name: string): Scenario => {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new Error(`no chaos scenario ${name} (known: ${SCENARIOS.map((x) => x.name).join(', ')})`);
  return s;
};
