/**
 * The chaos suite's arithmetic: from what the driver saw (acknowledgements, final records,
 * downloads, HTTP statuses) and what the fake recorded, each column counts what it says, so a
 * broken pipeline cannot show 0 (lost, wrong bytes, failed, stuck, 5xx, processed without 202).
 */
import { describe, expect, it } from 'vitest';
import type { RequestRecord } from '../../../fake-signstash/server.js';
import { computeFigures, judge, type ScenarioResult, type Tracked } from '../../../chaos/driver.js';

const row = (): ScenarioResult => ({
  scenario: 't',
  result: 'PASS',
  durationS: 0,
  acknowledged: 0,
  lost: 0,
  wrong: 0,
  failed: 0,
  stuck: 0,
  unverified: 0,
  http5xx: 0,
  ghost: 0,
  multiSigned: 0,
  filesLeft: 0,
  keysLeft: 0,
  misses: [],
  notes: [],
  details: {},
});

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

describe('chaos figures', () => {
  it('counts a clean run as all zero, and judges it PASS', () => {
    const r = row();
    computeFigures(
      r,
      { name: 't', title: '', run: async () => undefined },
      [tracked('op1', [['d1', 'in1']], 'terminal', { d1: { status: 'signed', recordSha256: 'out1', downloadSha256: 'out1', downloadStatus: 200 } })],
      [request('ok', [['d1', 'in1', 'out1']])],
      {
        statuses: new Map([
          [202, 1],
          [200, 2],
          [503, 4],
          [507, 1],
        ]),
      },
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
    computeFigures(r, scenario, t, records, {
      statuses: new Map([
        [500, 3],
        [502, 1],
        [503, 9],
        [507, 2],
        [0, 5],
      ]),
    });
    judge(r);
    expect(r).toMatchObject({ acknowledged: 12, lost: 3, stuck: 1, unverified: 2, wrong: 4, failed: 1, http5xx: 4, ghost: 1, multiSigned: 1, result: 'FAIL' });
  });
});
