/**
 * The chaos suite's arithmetic: from what the driver saw (acknowledgements, final records,
 * downloads, HTTP statuses) and what the fake recorded, each column counts what it says, so a
 * broken pipeline cannot show 0 (lost, wrong bytes, failed, stuck, 5xx, processed without 202).
 */
import { describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../../fake-signstash/server.js';
import { computeFigures, countCrashes, emptyResult, judge, type ScenarioResult, type Tracked } from '../../../chaos/driver.js';
import { classifyFailure, type HttpFigures } from '../../../chaos/http-recorder.js';
import { judgeKeys } from '../../../chaos/leftovers.js';
import { spawn } from 'node:child_process';
import type { ServiceProcess } from '../../../harness/processes.js';
import { classifyLine, ProcessWatch } from '../../../chaos/process-watch.js';
import { judgeDeliveries } from '../../../chaos/scenarios/webhooks.js';

const row = (): ScenarioResult => emptyResult('t');

const tracked = (
  opId: string,
  docs: [string, string][],
  state: Tracked['state'],
  outcomes: Record<string, Tracked['docs'] extends Map<string, infer V> ? V : never> = {},
): Tracked => ({
  ack: { opId, at: 0, docs: docs.map(([id, sha]) => ({ id, name: `${id}.pdf`, sha256: sha })) },
  state,
  lastOkAt: 0,
  docs: new Map(Object.entries(outcomes)),
  done: Promise.resolve(),
});

const request = (outcome: RequestRecord['outcome'], docs: [string, string, string][]): RequestRecord => ({
  id: 1,
  clientId: 'signspool',
  at: 0,
  externalReference: 'b',
  documents: docs.length,
  bytes: 0,
  outcome,
  status: 200,
  durationMs: 0,
  docs: docs.map(([id, sIn, sOut]) => ({ externalReference: id, name: id, size: 1, sha256In: sIn, sha256Out: sOut })),
});

const http = (statuses: Map<number, number>, failures: HttpFigures['failures'], unavailableWithoutRetryAfter = 0): HttpFigures => ({
  statuses,
  failures,
  unavailableWithoutRetryAfter,
  noAnswerExamples: [],
});

describe('chaos figures', () => {
  it('counts a clean run as all zero, and judges it PASS', () => {
    const r = row();
    computeFigures(
      r,
      { name: 't', title: '', run: async () => undefined },
      [tracked('op1', [['d1', 'in1']], 'terminal', { d1: { status: 'signed', recordSha256: 'out1', downloadSha256: 'out1', downloadStatus: 200 } })],
      [request('ok', [['d1', 'in1', 'out1']])],
      http(
        new Map([
          [202, 1],
          [200, 2],
          [503, 4],
          [507, 1],
        ]),
        { refused: 3, cut: 2, noAnswer: 0 },
      ),
    );
    judge(r);
    expect(r).toMatchObject({ acknowledged: 1, lost: 0, wrong: 0, failed: 0, stuck: 0, http5xx: 0, ghost: 0, multiSigned: 0, result: 'PASS' });
  });

  it('sees lost, wrong, failed, stuck, unverified, 5xx, ghosts and double signing', () => {
    const r = row();
    const scenario = {
      name: 't',
      title: '',
      run: async () => undefined,
      acceptsFailure: (id: string, code: string | undefined) => id === 'ok-fail' && code === 'SPOOL_FILE_MISSING',
    };
    const t = [
      tracked('op1', [['gone', 'a']], 'missing'),
      tracked('op2', [['open', 'b']], 'pending'),
      tracked(
        'op3',
        [
          ['d-notfinal', 'c'],
          ['d-absent', 'c2'],
        ],
        'terminal',
        { 'd-notfinal': { status: 'signing' } },
      ),
      tracked(
        'op4',
        [
          ['bytes-differ', 'e'],
          ['record-differs', 'f'],
          ['from-other-input', 'g'],
          ['no-download', 'h'],
        ],
        'terminal',
        {
          'bytes-differ': { status: 'signed', recordSha256: 'E1', downloadSha256: 'E2' },
          'record-differs': { status: 'signed', recordSha256: 'F0', downloadSha256: 'F1' },
          'from-other-input': { status: 'signed', recordSha256: 'G1', downloadSha256: 'G1' },
          'no-download': { status: 'signed', recordSha256: 'H1', downloadStatus: 500 },
        },
      ),
      tracked('op6', [['expired-unseen', 'k']], 'unverified'),
      tracked('op7', [['expired-before-download', 'l']], 'terminal', {
        'expired-before-download': { status: 'signed', recordSha256: 'L1', downloadStatus: 404, downloadTooLate: true },
      }),
      tracked(
        'op5',
        [
          ['bad-fail', 'i'],
          ['ok-fail', 'j'],
        ],
        'terminal',
        { 'bad-fail': { status: 'failed', errorCode: 'UPSTREAM_UNAVAILABLE' }, 'ok-fail': { status: 'failed', errorCode: 'SPOOL_FILE_MISSING' } },
      ),
    ];
    const records = [
      request('ok', [
        ['bytes-differ', 'e', 'E1'],
        ['record-differs', 'f', 'F1'],
        ['from-other-input', 'TAMPERED', 'G1'],
        ['no-download', 'h', 'H1'],
      ]),
      request('ok', [['bytes-differ', 'e', 'E1']]),
      request('ok', [['never-acked', 'z', 'Z1']]),
    ];
    computeFigures(
      r,
      scenario,
      t,
      records,
      http(
        new Map([
          [500, 3],
          [502, 1],
          [503, 9],
          [507, 2],
        ]),
        { refused: 1, cut: 1, noAnswer: 5 },
        2,
      ),
    );
    judge(r);
    expect(r).toMatchObject({
      acknowledged: 12,
      lost: 3,
      stuck: 1,
      unverified: 2,
      wrong: 4,
      failed: 1,
      http5xx: 4,
      noAnswer: 5,
      unavailableNoRetryAfter: 2,
      refused: 1,
      cut: 1,
      ghost: 1,
      multiSigned: 1,
      result: 'FAIL',
    });
    expect(r.misses).toEqual(expect.arrayContaining(['no answer 5', '503 without Retry-After 2']));
  });

  it('refused and cut requests are counted apart from no answer, which is a target', () => {
    const refused = Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
    const reset = Object.assign(new TypeError('fetch failed'), { cause: { code: 'UND_ERR_SOCKET' } });
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    expect(classifyFailure(refused, 100, 200, [{ from: 150, to: 160 }])).toBe('refused');
    expect(classifyFailure(reset, 100, 200, [{ from: 150, to: 160 }])).toBe('cut');
    // Started after the SIGKILL was sent, before the api exited: its connection was reset by the kill.
    expect(classifyFailure(reset, 155, 200, [{ from: 150, to: 160 }])).toBe('cut');
    expect(
      classifyFailure(reset, 100, 200, [
        { from: 40, to: 50 },
        { from: 250, to: 260 },
      ]),
    ).toBe('noAnswer');
    expect(classifyFailure(timeout, 100, 200, [])).toBe('noAnswer');
  });

  it('a crash, an unclean stop or an unhandled rejection fails the row; error-level lines are only counted', () => {
    expect(classifyLine('{"level":50,"msg":"unhandled promise rejection","err":{}}')).toBe('unhandled rejection');
    expect(classifyLine('{"level":60,"msg":"cannot start"}')).toBe('fatal log');
    expect(classifyLine('{"level":50,"msg":"upload refused"}')).toBe('error log');
    expect(classifyLine('{"level":40,"msg":"redis unavailable"}')).toBeUndefined();
    expect(classifyLine('Node.js v20.19.5')).toBe('uncaught exception');
    expect(classifyLine('    at Object.<anonymous> (/x.js:1:7)')).toBeUndefined();
    const r = row();
    countCrashes(r, [{ kind: 'unexpected exit', role: 'worker', pid: 1, detail: 'exit 1' }]);
    judge(r);
    expect(r.misses).toContain('crashes 1');
  });

  it("leftover keys: BullMQ's own structures are not leftovers, the jobs they hold and every other key are", () => {
    const structures = new Set(['p:sign:meta', 'p:sign:wait', 'p:sign:events', 'p:fair']);
    expect(judgeKeys(['p:sign:meta', 'p:sign:events', 'p:fair'], structures, { sign: { wait: 0, failed: 0 } })).toEqual([]);
    expect(judgeKeys(['p:sign:meta', 'p:sign:wait', 'p:sign:42', 'p:op:abc'], structures, { sign: { wait: 1, failed: 0 } })).toEqual([
      'p:op:abc',
      'p:sign:42',
      'sign jobs wait=1',
    ]);
  });

  it('leftovers at a kill and the scenario checks are targets', () => {
    const r = row();
    r.acknowledged = 1;
    r.keysLeftKill = 2;
    r.checks = { 'webhooks not delivered': 1, 'webhooks delivered twice': 0 };
    judge(r);
    expect(r.misses).toEqual(['keys left at a kill 2', 'webhooks not delivered 1']);
  });

  it('webhooks: each ended operation delivered under exactly one webhook-id answered 2xx, signatures verified', () => {
    const ack = (opId: string) => ({ opId, at: 0, docs: [] });
    const ended = [ack('op1'), ack('op2'), ack('op3'), ack('op4')];
    const d = (webhookId: string, opId: string | undefined, status = 204, verified = true) => ({ webhookId, opId, status, verified });
    const got = judgeDeliveries(
      ended,
      [...ended, ack('op5')],
      [
        d('m1', 'op1'),
        d('m1', 'op1'), // the same delivery again (at-least-once): not twice
        d('m2', 'op2', 500), // refused by the receiver: not delivered
        d('m3', 'op3'),
        d('m3b', 'op3'), // a second delivery id for op3: twice
        d('m4', 'op4', 204, false), // bad signature: neither delivered nor trusted
        d('m9', 'op9'), // an operation nobody acknowledged
      ],
    );
    expect(Object.fromEntries(Object.entries(got).map(([k, v]) => [k, v.count]))).toEqual({
      'webhooks not delivered': 2,
      'webhooks delivered twice': 1,
      'webhook signatures bad': 1,
      'webhooks for no 202': 1,
    });
    expect(got['webhooks not delivered']?.examples).toEqual(['op2', 'op4']);
  });

  it('process watch: an exit nobody asked for and an unhandled rejection are faults; an asked SIGTERM ending 0 is not', async () => {
    const proc = (code: string): ServiceProcess => {
      const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<number | string>((resolve) => child.once('exit', (c, sig) => resolve(c ?? sig ?? '?')));
      return {
        role: 'worker',
        url: '',
        child,
        output: () => '',
        stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
          child.kill(signal);
          return exited;
        },
      } as ServiceProcess;
    };
    const watch = new ProcessWatch();
    const crashing = proc(`console.log(JSON.stringify({ level: 50, msg: 'unhandled promise rejection' })); setTimeout(() => process.exit(3), 50);`);
    const clean = proc(`process.on('SIGTERM', () => process.exit(0)); console.log('ready'); setInterval(() => undefined, 1000);`);
    // Listening before anything is awaited: either may speak or exit first.
    const crashed = new Promise((r) => crashing.child.once('exit', r));
    const ready = new Promise((r) => clean.child.stdout?.once('data', r));
    watch.watch(crashing);
    watch.watch(clean);
    await crashed;
    await ready;
    await watch.stop(clean, 'SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    expect(watch.faults.map((f) => f.kind).sort()).toEqual(['unexpected exit', 'unhandled rejection']);
  });
});
