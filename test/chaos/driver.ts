/**
 * The chaos suite's driver. For one scenario it starts real processes (its own redis-server with
 * AOF, the api, two or more workers, the fake Sign'Stash in this process), submits documents at a
 * steady rate while the scenario breaks something, and keeps every answer: each 202 (operation
 * id, document ids, sha256 of each document sent) and the HTTP status of every request it made.
 * Each acknowledged operation is followed (long-poll) until it is terminal and its signed
 * documents are downloaded at once (RETENTION is short). After the fault it waits, bounded, for
 * every operation to end; then it lets the operations' retention pass and counts what is left in
 * the spool and in Redis twice: with every service frozen (SIGSTOP: what a crash at that moment
 * leaves, since a killed process removes nothing) and after a graceful stop. It reads every
 * process's output for crashes (process-watch.ts) and classifies every request that got no answer
 * (http-recorder.ts). The figures (see `ScenarioResult`) are computed from these records and from
 * the fake's log of what it received and returned.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { generateApiKey, hashApiKey } from '@signspool/api/auth/auth';
import { FakeSignstash, type RequestRecord } from '../fake-signstash/server.js';
import { startService, type ServiceProcess } from '../harness/processes.js';
import { HttpRecorder, type HttpFigures } from './http-recorder.js';
import { leftoverKeys, listFiles } from './leftovers.js';
import { ProcessWatch, type ProcessFault } from './process-watch.js';
import { ChaosRedis, type AppendFsync } from './redis.js';

export interface ChaosSettings {
  /** Documents the load submits (attempts, acknowledged or not). */
  docs: number;
  docsPerOp: number;
  /** Steady submission rate. */
  docsPerSec: number;
  workers: number;
  retentionMs: number;
  janitorIntervalMs: number;
  orphanGraceMs: number;
  /** How long, after the fault and the load are over, operations may take to end. */
  settleTimeoutMs: number;
  /** Redis's AOF fsync policy. */
  appendFsync: AppendFsync;
  /** Mount a tmpfs of this size (e.g. "20m") as the spool; the scenario is skipped where that fails. */
  spoolTmpfs?: string;
  fake: { perRequestMs: number; bytesPerSec: number };
  /** Service environment on top of the suite's defaults. */
  env: Record<string, string>;
}

export const TERMINAL = new Set(['succeeded', 'partially_failed', 'failed', 'canceled']);
const DOC_FINAL = new Set(['signed', 'failed', 'canceled']);

interface SentDoc {
  name: string;
  sha256: string;
}

export interface Ack {
  opId: string;
  at: number;
  docs: { id: string; name: string; sha256: string }[];
}

export interface DocOutcome {
  status: string;
  errorCode?: string | undefined;
  recordSha256?: string | undefined;
  downloadSha256?: string | undefined;
  downloadStatus?: number | undefined;
  /** The download's 404 came after the record's expiry (completedAt + RETENTION): nothing to judge. */
  downloadTooLate?: boolean;
}

export interface Tracked {
  ack: Ack;
  /**
   * 'terminal'; 'missing' (404 before it was seen terminal, while it cannot have expired);
   * 'unverified' (404 after the driver could not read it for RETENTION: it may have ended and
   * expired meanwhile); 'pending' (still open at the deadline).
   */
  state: 'pending' | 'terminal' | 'missing' | 'unverified';
  /** When the driver last read it (or got its 202). */
  lastOkAt: number;
  opStatus?: string;
  terminalAt?: number;
  /** The last status read and when (ms after the 202), to judge a 404. */
  lastSeen?: string;
  docs: Map<string, DocOutcome>;
  done: Promise<void>;
}

/** The columns of one row. Targets: every count but `acknowledged`, `multiSigned`, `refused` and `cut` is 0. */
export interface ScenarioResult {
  scenario: string;
  result: 'PASS' | 'FAIL' | 'SKIP' | 'ERROR';
  durationS: number;
  acknowledged: number;
  /** Acknowledged documents whose record is gone, or without a final state in an ended operation. */
  lost: number;
  /** Signed documents whose download is not what the fake returned for the bytes we sent. */
  wrong: number;
  /** Documents failed with a code the scenario does not accept as a correct answer. */
  failed: number;
  /** Documents of operations not terminal when the bounded wait ended. */
  stuck: number;
  /** Documents the driver could not judge: their record expired before it could read it (RETENTION too short for the machine). */
  unverified: number;
  /** Answers with a 5xx status other than 503 (unavailable) and 507 (spool full). */
  http5xx: number;
  /** Requests that got no answer while an api was there to give one: timed out, reset, closed. */
  noAnswer: number;
  /** 503 answers without Retry-After. */
  unavailableNoRetryAfter: number;
  /** Requests refused (no api listening, between a stop and a restart) or cut by the driver's own SIGKILL of the api: counted, no target. */
  refused: number;
  cut: number;
  /** Process exits nobody asked for, SIGTERMs that did not exit 0, unhandled rejections, uncaught exceptions, fatal log lines. */
  crashes: number;
  /** Documents the upstream received that were never acknowledged (a POST with no 202 that was processed). */
  ghost: number;
  /** Documents signed in more than one successful upstream request (at-least-once; counted, not a target). */
  multiSigned: number;
  /** Files under the spool after retention and a graceful stop. */
  filesLeft: number;
  /** Redis keys under the test prefix after retention and a graceful stop, BullMQ's own per-queue structures excepted (leftovers.ts). */
  keysLeft: number;
  /** The same after retention with every service frozen: what a crash (SIGKILL) at that moment leaves. */
  filesLeftKill: number;
  keysLeftKill: number;
  /** The scenario's own checks (e.g. webhooks delivered exactly once): label → count of misses (target 0). */
  checks: Record<string, number>;
  misses: string[];
  notes: string[];
  details: Record<string, unknown>;
}

export interface ChaosContext {
  readonly settings: ChaosSettings;
  readonly fake: FakeSignstash;
  readonly redis: ChaosRedis;
  readonly spoolDir: string;
  readonly api: ServiceProcess;
  readonly workers: ServiceProcess[];
  /** Acknowledged operations so far. */
  acks(): Ack[];
  waitAcked(n: number, timeoutMs?: number): Promise<void>;
  waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs?: number): Promise<void>;
  /** Stops the api with `signal` and starts a new one on the same port (`between`: run while no api is up). */
  restartApi(signal: NodeJS.Signals, between?: () => Promise<void>): Promise<void>;
  /**
   * Stops worker `i` with `signal` and starts a replacement in its place; with `wait: false` it
   * returns once the worker has exited (the driver waits for the replacement after the fault).
   */
  replaceWorker(i: number, signal: NodeJS.Signals, opts?: { wait?: boolean }): Promise<void>;
  /** Batches in flight in worker `i` (its /metrics), 0 when it does not answer. */
  batchesInFlight(i: number): Promise<number>;
  /** Waits until worker `i` has a batch in flight; false (and a note) if none is seen in time. */
  waitInFlight(i: number, timeoutMs?: number): Promise<boolean>;
  /** The service environment (e.g. to start another process). */
  readonly env: Record<string, string>;
  /** The load's API key (tenant acme). */
  readonly apiKey: string;
  /** Submits one operation with documents of these sizes, followed like the load's (a burst beside the steady load). */
  submit(sizes: number[]): Promise<void>;
  /** A request to the api through the driver's recorder (its answer, or its lack of one, is counted). */
  request(pathname: string, init: RequestInit & { timeoutMs: number }): Promise<{ status: number; body: Buffer; headers: Headers | undefined }>;
  note(text: string): void;
  log(text: string): void;
}

export interface Scenario {
  name: string;
  /** One line: what breaks. */
  title: string;
  settings?(base: ChaosSettings): Partial<ChaosSettings>;
  /** Breaks things while the load runs; resolves once the fault is over. */
  run(ctx: ChaosContext): Promise<void>;
  /** A failed document's code that is a correct answer in this scenario (e.g. SPOOL_FILE_MISSING for a deleted file). */
  acceptsFailure?(docId: string, code: string | undefined): boolean;
  /** Before the services start: what the scenario needs (a webhook receiver...): service env and form fields of each upload. */
  prepare?(): Promise<{ env?: Record<string, string>; fields?: Record<string, string> }>;
  /** After every operation ended (or the bounded wait did): the scenario's own checks, label → misses with examples. */
  check?(ctx: ChaosContext, ended: Ack[]): Promise<Record<string, { count: number; examples: string[] }>>;
  /** After the run, whatever happened (close what `prepare` opened). */
  cleanup?(): Promise<void>;
}

export class SkipScenario extends Error {}

/** How long the load goes on after the fault: what is submitted after a recovery must be answered too. */
const LOAD_TAIL_MS = 5000;
/** How long an unanswered POST is tried again with its Idempotency-Key. */
const POST_RETRY_MS = 30_000;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A row with nothing counted yet. */
export const emptyResult = (scenario: string): ScenarioResult => ({
  scenario,
  result: 'PASS',
  durationS: 0,
  acknowledged: 0,
  lost: 0,
  wrong: 0,
  failed: 0,
  stuck: 0,
  unverified: 0,
  http5xx: 0,
  noAnswer: 0,
  unavailableNoRetryAfter: 0,
  refused: 0,
  cut: 0,
  crashes: 0,
  ghost: 0,
  multiSigned: 0,
  filesLeft: 0,
  keysLeft: 0,
  filesLeftKill: 0,
  keysLeftKill: 0,
  checks: {},
  misses: [],
  notes: [],
  details: {},
});

export const runScenario = async (scenario: Scenario, base: ChaosSettings, log: (s: string) => void = console.log): Promise<ScenarioResult> => {
  const settings: ChaosSettings = { ...base, ...scenario.settings?.(base) };
  settings.env = { ...base.env, ...(scenario.settings?.(base).env ?? {}) };
  const started = Date.now();
  const result = emptyResult(scenario.name);
  const dir = await mkdtemp(path.join(os.tmpdir(), `signspool-chaos-${scenario.name}-`));
  const redis = new ChaosRedis(path.join(dir, 'redis'), settings.appendFsync);
  const fake = new FakeSignstash(settings.fake);
  const procs: ServiceProcess[] = [];
  // CHAOS_LOG_DIR keeps every process's output of the run, for a row that misses.
  const logDir = process.env['CHAOS_LOG_DIR'];
  if (logDir) await mkdir(logDir, { recursive: true });
  const watch = new ProcessWatch(logDir ? { dir: logDir, label: scenario.name } : undefined);
  // Workers still starting (replaceWorker with wait: false): awaited before anything is killed.
  const replacements: Promise<unknown>[] = [];
  let mounted = '';
  const say = (s: string): void => log(`[${scenario.name} +${((Date.now() - started) / 1000).toFixed(1)}s] ${s}`);
  try {
    let spoolDir = path.join(dir, 'data', 'spool');
    if (settings.spoolTmpfs) {
      const mnt = path.join(dir, 'spool-tmpfs');
      await import('node:fs/promises').then((fs) => fs.mkdir(mnt, { recursive: true }));
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${settings.spoolTmpfs}`, 'tmpfs', mnt], { encoding: 'utf8' });
      if (r.status !== 0)
        throw new SkipScenario(
          `cannot mount a ${settings.spoolTmpfs} tmpfs for the spool (${(r.stderr || r.error?.message || 'mount failed').trim()}); run as root with mount(8)`,
        );
      mounted = mnt;
      spoolDir = mnt;
    }
    const prepared = (await scenario.prepare?.()) ?? {};
    await redis.start();
    await fake.start();
    const key = generateApiKey();
    const prefix = `chaos${randomBytes(4).toString('hex')}`;
    const env: Record<string, string> = fake.clientEnv({
      REDIS_URL: redis.url,
      QUEUE_PREFIX: prefix,
      DATA_DIR: path.join(dir, 'data'),
      SPOOL_DIR: spoolDir,
      API_KEYS: `acme:${hashApiKey(key)}`,
      LOG_LEVEL: 'warn',
      BATCH_MAX_DOCS: '10',
      BATCH_LINGER: '100ms',
      UPSTREAM_CONCURRENCY: '2',
      JOB_LOCK_DURATION: '5s',
      SPOOL_MIN_FREE_BYTES: '1MiB',
      UPSTREAM_BACKOFF_BASE: '200ms',
      UPSTREAM_BACKOFF_MAX: '2s',
      RETENTION: `${settings.retentionMs}ms`,
      IDEMPOTENCY_TTL: `${Math.max(1000, settings.retentionMs)}ms`,
      JANITOR_INTERVAL: `${settings.janitorIntervalMs}ms`,
      ORPHAN_GRACE: `${settings.orphanGraceMs}ms`,
      SHUTDOWN_TIMEOUT: '10s',
      // The driver's documents are not PDFs, and its one tenant's limits would only slow the faults down.
      DEFAULT_SIGNATURE_TYPE: 'CAdES',
      RATE_LIMIT_REQUESTS: '0',
      RATE_LIMIT_UPLOAD_BYTES: '0',
      BACKLOG_MAX_DOCUMENTS: '0',
      ...settings.env,
      ...prepared.env,
    });
    const http = new HttpRecorder(key);
    const started = (p: ServiceProcess): ServiceProcess => {
      watch.watch(p);
      procs.push(p);
      return p;
    };
    const stop = async (p: ServiceProcess, signal: NodeJS.Signals): Promise<number | string> => {
      if (p.role !== 'api' || signal !== 'SIGKILL') return watch.stop(p, signal);
      const kill = { from: Date.now(), to: Number.MAX_SAFE_INTEGER };
      http.apiKills.push(kill);
      const code = await watch.stop(p, signal);
      kill.to = Date.now();
      return code;
    };
    // Started side by side: on a busy machine most of a scenario's time is processes starting.
    const starting = [
      startService('api', env, { readyTimeoutMs: 90_000 }),
      ...Array.from({ length: settings.workers }, () => startService('worker', env, { readyTimeoutMs: 90_000 })),
    ];
    const starts = await Promise.allSettled(starting);
    for (const r of starts) if (r.status === 'fulfilled') started(r.value);
    for (const r of starts) if (r.status === 'rejected') throw r.reason;
    const [apiProc, ...workers] = starts.map((r) => (r as PromiseFulfilledResult<ServiceProcess>).value);
    if (!apiProc) throw new Error('no api');
    const api: { p: ServiceProcess } = { p: apiProc };
    say(`started: redis (appendfsync ${settings.appendFsync}), api, ${settings.workers} workers, fake; ${settings.docs} documents at ${settings.docsPerSec}/s`);

    // --- The load: steady rate, every answer kept. ---
    const acks: Ack[] = [];
    const tracked: Tracked[] = [];
    // The load covers the whole fault and the recovery: it runs until `docs` are submitted and
    // LOAD_TAIL_MS after the fault is over.
    let faultOverAt = 0;
    let followStop = false;
    const inflight = new Set<Promise<void>>();
    let seq = 0;
    const submitOne = async (sizes?: number[]): Promise<void> => {
      const form = new FormData();
      for (const [k, v] of Object.entries(prepared.fields ?? {})) form.append(k, v);
      const sent: SentDoc[] = [];
      for (let i = 0; i < (sizes?.length ?? settings.docsPerOp); i++) {
        const n = seq++;
        // Unique content, 2-12 KB (or the size asked).
        const content = Buffer.concat([Buffer.from(`%PDF-1.4 chaos ${scenario.name} ${n} `), randomBytes(sizes?.[i] ?? 2048 + ((n * 997) % 10240))]);
        const name = `chaos-${n}.pdf`;
        sent.push({ name, sha256: sha256(content) });
        form.append('file', new Blob([content], { type: 'application/pdf' }), name);
      }
      // As a careful client does: a POST that got no answer, a 503 (after its Retry-After, at most
      // 5 s) or a 409 (its first try still seen as uploading) is sent again with the same
      // Idempotency-Key, for up to POST_RETRY_MS; its 202 then acknowledges what an earlier try
      // may have committed (a 503 cannot always know: Redis may have applied the commit whose
      // answer was lost).
      const idempotencyKey = randomBytes(12).toString('hex');
      const retryUntil = Date.now() + POST_RETRY_MS;
      let res = await http.call(`${api.p.url}/v1/operations`, {
        method: 'POST',
        body: form,
        headers: { 'idempotency-key': idempotencyKey },
        timeoutMs: 60_000,
      });
      while ((res.status === 0 || res.status === 409 || res.status === 503) && Date.now() < retryUntil && !followStop) {
        const retryAfterS = Number(res.headers?.get('retry-after') ?? '');
        await sleep(res.status === 503 && retryAfterS > 0 ? Math.min(5000, retryAfterS * 1000) : 500);
        res = await http.call(`${api.p.url}/v1/operations`, { method: 'POST', body: form, headers: { 'idempotency-key': idempotencyKey }, timeoutMs: 60_000 });
      }
      if (res.status !== 202) return;
      const body = JSON.parse(res.body.toString()) as { id: string; documents: { id: string; name: string; sha256: string }[] };
      const ack: Ack = { opId: body.id, at: Date.now(), docs: [] };
      for (const s of sent) {
        const d = body.documents.find((x) => x.name === s.name);
        // A 202 whose document list does not match what was sent is itself a wrong answer.
        ack.docs.push({ id: d?.id ?? `missing-${s.name}`, name: s.name, sha256: s.sha256 });
        if (d && d.sha256 !== s.sha256) result.notes.push(`202 for ${body.id} gave sha256 ${d.sha256} for ${s.name}, sent ${s.sha256}`);
      }
      acks.push(ack);
      tracked.push(follow(ack));
    };
    // Follows one operation until terminal (long-poll), downloading its signed documents at once.
    const follow = (ack: Ack): Tracked => {
      const t: Tracked = { ack, state: 'pending', lastOkAt: ack.at, docs: new Map(), done: Promise.resolve() };
      // Long-polls much shorter than RETENTION: an operation seen as 404 never was seen terminal,
      // and cannot have ended and expired in between (unless the api was unreachable that long).
      const waitS = Math.max(1, Math.floor(settings.retentionMs / 4000));
      t.done = (async () => {
        while (!followStop) {
          const res = await http.call(`${api.p.url}/v1/operations/${ack.opId}`, { headers: { prefer: `wait=${waitS}` }, timeoutMs: 20_000 });
          if (res.status === 404) {
            t.state = Date.now() - t.lastOkAt >= settings.retentionMs ? 'unverified' : 'missing';
            t.lastSeen = `${t.lastSeen ?? 'never read'}, 404 at +${Date.now() - ack.at} ms`;
            return;
          }
          if (res.status !== 200) {
            await sleep(250);
            continue;
          }
          t.lastOkAt = Date.now();
          const op = JSON.parse(res.body.toString()) as {
            status: string;
            completedAt: string | null;
            documents: { id: string; status: string; error?: { code: string }; signed?: { sha256: string } }[];
          };
          t.lastSeen = `${op.status} at +${Date.now() - ack.at} ms`;
          if (!TERMINAL.has(op.status)) {
            // Answered at once, not waited on (the tenant's long polls are all taken): a careful client pauses.
            if (!res.headers?.get('preference-applied')) await sleep(1000);
            continue;
          }
          t.state = 'terminal';
          t.opStatus = op.status;
          t.terminalAt = Date.now();
          for (const d of op.documents) t.docs.set(d.id, { status: d.status, errorCode: d.error?.code, recordSha256: d.signed?.sha256 });
          for (const d of op.documents) {
            if (d.status !== 'signed') continue;
            const out = t.docs.get(d.id);
            // Retried while no api answers (restart, Redis down), until the record's expiry.
            const expiresAt = (op.completedAt ? Date.parse(op.completedAt) : Date.now()) + settings.retentionMs;
            while (out) {
              const dl = await http.call(`${api.p.url}/v1/operations/${ack.opId}/documents/${d.id}`, { timeoutMs: 20_000 });
              out.downloadStatus = dl.status;
              if (dl.status === 200) {
                out.downloadSha256 = sha256(dl.body);
                break;
              }
              // A 404 (or no answer) past the record's expiry says nothing about the document: the driver came too late.
              if ((dl.status === 404 || dl.status === 0 || dl.status >= 500) && Date.now() >= expiresAt - 500) {
                out.downloadTooLate = true;
                break;
              }
              if (dl.status !== 0 && dl.status < 500) break;
              await sleep(250);
            }
          }
          return;
        }
      })();
      return t;
    };
    const loadDone = (async () => {
      const intervalMs = (1000 * settings.docsPerOp) / settings.docsPerSec;
      const ops = Math.ceil(settings.docs / settings.docsPerOp);
      const t0 = Date.now();
      for (let i = 0; i < ops || !faultOverAt || Date.now() < faultOverAt + LOAD_TAIL_MS; i++) {
        const due = t0 + i * intervalMs;
        if (due > Date.now()) await sleep(due - Date.now());
        const p = submitOne().finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.all([...inflight]);
    })();

    const ctx: ChaosContext = {
      settings,
      fake,
      redis,
      spoolDir,
      get api() {
        return api.p;
      },
      workers,
      env,
      apiKey: key,
      acks: () => acks,
      submit: (sizes) => submitOne(sizes),
      request: (pathname, init) => http.call(`${api.p.url}${pathname}`, init),
      waitAcked: (n, timeoutMs = 60_000) => ctx.waitFor(`${n} operations acknowledged`, () => acks.length >= n, timeoutMs),
      async waitFor(what, check, timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        while (!(await check())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
          await sleep(50);
        }
      },
      async restartApi(signal, between) {
        const port = Number(new URL(api.p.url).port);
        const code = await stop(api.p, signal);
        say(`api stopped with ${signal} (exit ${code})`);
        await between?.();
        api.p = started(await startService('api', env, { port, readyTimeoutMs: 90_000 }));
      },
      async replaceWorker(i, signal, opts = {}) {
        const w = workers[i];
        if (!w) throw new Error(`no worker ${i}`);
        const code = await stop(w, signal);
        say(`worker ${i} stopped with ${signal} (exit ${code})`);
        const next = startService('worker', env, { readyTimeoutMs: 90_000 }).then((p) => {
          workers[i] = started(p);
        });
        replacements.push(next);
        if (opts.wait ?? true) await next;
      },
      async batchesInFlight(i) {
        const w = workers[i];
        if (!w) return 0;
        const text = await fetch(`${w.url}/metrics`, { signal: AbortSignal.timeout(5000) }).then(
          (r) => r.text(),
          () => '',
        );
        return Number(/^signspool_batches_in_flight (\d+)/m.exec(text)?.[1] ?? 0);
      },
      async waitInFlight(i, timeoutMs = 60_000) {
        const seen = await ctx
          .waitFor(`worker ${i} with a batch in flight`, async () => (await ctx.batchesInFlight(i)) >= 1, timeoutMs)
          .then(
            () => true,
            () => false,
          );
        if (!seen) ctx.note(`worker ${i}: no batch seen in flight within ${timeoutMs / 1000} s; stopped anyway`);
        return seen;
      },
      note: (text) => result.notes.push(text),
      log: say,
    };

    try {
      await scenario.run(ctx);
    } finally {
      faultOverAt = Date.now();
    }
    say('fault over');
    await Promise.all(replacements);
    await loadDone;
    const acked = acks.length;
    say(`load over: ${acked} operations acknowledged; waiting for them to end (at most ${settings.settleTimeoutMs / 1000} s)`);
    const settleDeadline = Date.now() + settings.settleTimeoutMs;
    while (tracked.some((t) => t.state === 'pending') && Date.now() < settleDeadline) await sleep(200);
    followStop = true;
    await Promise.race([Promise.all(tracked.map((t) => t.done)), sleep(25_000)]);
    say(
      `settled: ${tracked.filter((t) => t.state === 'terminal').length} ended, ${tracked.filter((t) => t.state === 'missing').length} missing, ${tracked.filter((t) => t.state === 'pending').length} still open`,
    );

    // --- The scenario's own checks, while the services still run. ---
    const checks =
      (await scenario.check?.(
        ctx,
        tracked.filter((t) => t.state === 'terminal').map((t) => t.ack),
      )) ?? {};
    for (const [label, c] of Object.entries(checks)) {
      result.checks[label] = c.count;
      if (c.examples.length) result.notes.push(`${label}: ${c.examples.slice(0, 5).join('; ')}`);
    }

    // --- Leftovers: after the last operation's retention (and the janitor's grace), with every service
    // frozen (what a crash leaves: SIGKILL removes nothing) and after a graceful stop. ---
    const lastEnd = Math.max(Date.now(), ...tracked.map((t) => t.terminalAt ?? 0));
    const quietUntil = lastEnd + Math.max(settings.retentionMs, settings.orphanGraceMs) + 2 * settings.janitorIntervalMs + 1000;
    if (quietUntil > Date.now()) await sleep(quietUntil - Date.now());
    const live = procs.filter((p) => p.child.exitCode === null && p.child.signalCode === null);
    for (const p of live) p.child.kill('SIGSTOP');
    const frozen = await leftovers(spoolDir, redis, prefix).finally(() => {
      for (const p of live) p.child.kill('SIGCONT');
    });
    // Spares (shared/spool/spare-files.ts) are a live process's cache of spent files, reused for its
    // next write, and its heartbeat (shared/spool/tmp-owners.ts) says it is alive: not leftovers. A
    // dead process's are: the janitor removes them once its heartbeat is stale.
    const ownLive = (f: string): boolean => f.startsWith('tmp/spare-') || f.startsWith('tmp/owner-');
    const held = frozen.files.filter(ownLive);
    const atKill = { files: frozen.files.filter((f) => !ownLive(f)), keys: frozen.keys };
    if (held.length) result.notes.push(`${held.length} spare and heartbeat files held by the live processes at the kill (not counted)`);
    await Promise.all(procs.map((p) => stop(p, 'SIGTERM')));
    procs.length = 0;
    const stopped = await leftovers(spoolDir, redis, prefix);
    const files = stopped.files;
    const keys = stopped.keys;
    result.filesLeft = files.length;
    result.keysLeft = keys.length;
    result.filesLeftKill = atKill.files.length;
    result.keysLeftKill = atKill.keys.length;
    if (files.length > 0) result.notes.push(`files left: ${files.slice(0, 5).join(', ')}`);
    if (keys.length > 0) result.notes.push(`keys left: ${keys.slice(0, 5).join(', ')}`);
    // By name (a key's note of its expiry changes between the two counts).
    const named = (x: string): string => x.replace(/ \(.*\)$/, '');
    const onlyAtKill = (all: string[], after: string[]): string[] => all.filter((x) => !after.map(named).includes(named(x)));
    if (onlyAtKill(atKill.files, files).length)
      result.notes.push(`files a crash would leave (gone after SIGTERM): ${onlyAtKill(atKill.files, files).slice(0, 5).join(', ')}`);
    if (onlyAtKill(atKill.keys, keys).length)
      result.notes.push(`keys a crash would leave (gone after SIGTERM): ${onlyAtKill(atKill.keys, keys).slice(0, 5).join(', ')}`);

    // --- The figures. ---
    const records = fake.requests();
    computeFigures(result, scenario, tracked, records, http);
    countCrashes(result, watch.faults);
    if (http.noAnswerExamples.length) result.notes.push(`no answer: ${http.noAnswerExamples.join('; ')}`);
    if (watch.errorLines) result.notes.push(`${watch.errorLines} error-level log lines: ${[...watch.errorExamples].map(([m, n]) => `${n}× ${m}`).join('; ')}`);
    result.details = {
      settings: { ...settings, env: settings.env },
      httpStatuses: Object.fromEntries([...http.statuses].sort((a, b) => a[0] - b[0])),
      httpFailures: http.failures,
      processFaults: watch.faults,
      errorLogLines: Object.fromEntries(watch.errorExamples),
      filesLeftAtKill: atKill.files.slice(0, 20),
      keysLeftAtKill: atKill.keys.slice(0, 20),
      upstreamRequests: countBy(records.map((r) => r.outcome)),
      filesLeft: files.slice(0, 20),
      keysLeft: keys.slice(0, 20),
      documentsByStatus: countBy(tracked.flatMap((t) => [...t.docs.values()].map((d) => (d.errorCode ? `${d.status}:${d.errorCode}` : d.status)))),
    };
  } catch (err) {
    if (err instanceof SkipScenario) {
      result.result = 'SKIP';
      result.notes.push(err.message);
    } else {
      result.result = 'ERROR';
      result.notes.push(`the run broke: ${err instanceof Error ? err.message : String(err)}`);
      for (const p of procs) result.notes.push(`${p.role} output tail: ${p.output().slice(-800)}`);
    }
  } finally {
    await Promise.allSettled(replacements);
    await Promise.all(procs.map((p) => watch.stop(p, 'SIGKILL')));
    await scenario.cleanup?.().catch((err: unknown) => result.notes.push(`cleanup: ${String(err)}`));
    await fake.stop();
    await redis.stop('SIGKILL');
    if (mounted) spawnSync('umount', [mounted]);
    await rm(dir, { recursive: true, force: true });
  }
  result.durationS = Math.round((Date.now() - started) / 100) / 10;
  if (result.result === 'PASS') judge(result);
  say(`${result.result}: ${JSON.stringify({ ...result, details: undefined })}`);
  return result;
};

const countBy = (xs: string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};

/** Files and keys left now (keys: '(redis not running)' when it is not). */
const leftovers = async (spoolDir: string, redis: ChaosRedis, prefix: string): Promise<{ files: string[]; keys: string[] }> => ({
  files: await listFiles(spoolDir),
  keys: redis.running ? await leftoverKeys(redis.url, prefix) : ['(redis not running)'],
});

/** The crashes column: every process fault, with a note for each of the first few. */
export const countCrashes = (result: ScenarioResult, faults: ProcessFault[]): void => {
  result.crashes = faults.length;
  for (const f of faults.slice(0, 5)) result.notes.push(`${f.kind}: ${f.role} (pid ${f.pid ?? '?'}) ${f.detail}`);
};

/** Computes the columns from what the driver saw and what the fake recorded. */
export const computeFigures = (result: ScenarioResult, scenario: Scenario, tracked: Tracked[], records: RequestRecord[], http: HttpFigures): void => {
  // What the fake returned for each document, by the sha256 of what it received.
  const returned = new Map<string, { in: string; out: string }[]>();
  const okCount = new Map<string, number>();
  const upstreamDocs = new Set<string>();
  for (const r of records) {
    for (const d of r.docs) {
      upstreamDocs.add(d.externalReference);
      if (d.sha256Out) returned.set(d.externalReference, [...(returned.get(d.externalReference) ?? []), { in: d.sha256In, out: d.sha256Out }]);
      // Signed in an answer that reached the client whole (a partial answer's other documents too).
      if (r.status === 200 && d.sha256Out && !d.fault) okCount.set(d.externalReference, (okCount.get(d.externalReference) ?? 0) + 1);
    }
  }
  const ackedIds = new Set<string>();
  const examples: Record<string, string[]> = { lost: [], wrong: [], failed: [], stuck: [], unverified: [], ghost: [] };
  const example = (k: string, s: string): void => {
    const list = examples[k];
    if (list && list.length < 5) list.push(s);
  };
  for (const t of tracked) {
    for (const d of t.ack.docs) {
      ackedIds.add(d.id);
      result.acknowledged += 1;
      if (t.state === 'pending') {
        result.stuck += 1;
        example('stuck', `${t.ack.opId}/${d.id}`);
        continue;
      }
      if (t.state === 'unverified') {
        result.unverified += 1;
        example('unverified', `${t.ack.opId}/${d.id}: 404 after ${t.lastSeen ?? '-'}`);
        continue;
      }
      const out = t.docs.get(d.id);
      if (t.state === 'missing' || !out || !DOC_FINAL.has(out.status)) {
        result.lost += 1;
        example(
          'lost',
          `${t.ack.opId}/${d.id}: ${t.state === 'missing' ? `record missing (last read: ${t.lastSeen ?? '-'})` : `document ${out?.status ?? 'absent'}`}`,
        );
        continue;
      }
      if (out.status === 'signed' && out.downloadTooLate) {
        result.unverified += 1;
        example('unverified', `${t.ack.opId}/${d.id}: download 404 after the record's expiry`);
      } else if (out.status === 'signed') {
        const fromFake = returned.get(d.id) ?? [];
        const ok =
          out.downloadSha256 !== undefined &&
          out.downloadSha256 === out.recordSha256 &&
          fromFake.some((f) => f.in === d.sha256 && f.out === out.downloadSha256);
        if (!ok) {
          result.wrong += 1;
          example(
            'wrong',
            `${t.ack.opId}/${d.id}: download ${out.downloadStatus ?? '-'} ${out.downloadSha256?.slice(0, 12) ?? '-'}, record ${out.recordSha256?.slice(0, 12) ?? '-'}, fake returned ${fromFake.map((f) => `${f.in.slice(0, 8)}→${f.out.slice(0, 8)}`).join(',') || 'nothing'} (sent ${d.sha256.slice(0, 8)})`,
          );
        }
      } else if (!(scenario.acceptsFailure?.(d.id, out.errorCode) ?? false)) {
        result.failed += 1;
        example('failed', `${t.ack.opId}/${d.id}: ${out.status} ${out.errorCode ?? ''}`);
      }
    }
  }
  for (const id of upstreamDocs) {
    if (!ackedIds.has(id)) {
      result.ghost += 1;
      example('ghost', id);
    }
  }
  result.multiSigned = [...okCount.values()].filter((n) => n > 1).length;
  for (const [status, n] of http.statuses) if (status >= 500 && status !== 503 && status !== 507) result.http5xx += n;
  result.noAnswer = http.failures.noAnswer;
  result.refused = http.failures.refused;
  result.cut = http.failures.cut;
  result.unavailableNoRetryAfter = http.unavailableWithoutRetryAfter;
  for (const [k, list] of Object.entries(examples)) if (list.length) result.notes.push(`${k}: ${list.join('; ')}`);
};

/** Every column with a target of 0, by its label (the scenario's own checks are added by `targetFigures`). */
export const TARGETS: [keyof ScenarioResult, string][] = [
  ['lost', 'lost'],
  ['wrong', 'wrong bytes'],
  ['failed', 'failed'],
  ['stuck', 'stuck'],
  ['unverified', 'unverified (RETENTION too short for this machine)'],
  ['http5xx', '5xx'],
  ['noAnswer', 'no answer'],
  ['unavailableNoRetryAfter', '503 without Retry-After'],
  ['crashes', 'crashes'],
  ['ghost', 'processed without a 202'],
  ['filesLeft', 'files left'],
  ['keysLeft', 'keys left'],
  ['filesLeftKill', 'files left at a kill'],
  ['keysLeftKill', 'keys left at a kill'],
];

/** Label → figure of every target of a row (each should be 0). */
export const targetFigures = (r: ScenarioResult): Record<string, number> => ({
  ...Object.fromEntries(TARGETS.map(([k, label]) => [label, r[k] as number])),
  ...r.checks,
});

/** PASS only when every target is met (and something was acknowledged: an empty run proves nothing). */
export const judge = (r: ScenarioResult): void => {
  for (const [label, n] of Object.entries(targetFigures(r))) if (n > 0) r.misses.push(`${label} ${n}`);
  if (r.acknowledged === 0) r.misses.push('nothing acknowledged');
  r.result = r.misses.length ? 'FAIL' : 'PASS';
};
