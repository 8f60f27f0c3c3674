/**
 * Sign'Stash answers 200 with answers that are not whole, in waves: a document left out of the
 * documentList, a per-document error (errorCode INVALID_DOCUMENT), JSON cut off in the middle.
 * A document left out and a cut-off answer are retried until signed; a document the upstream
 * rejects by its own per-document errorCode fails UPSTREAM_DOCUMENT_REJECTED (the same table as a
 * request-level rejection), which is then a correct answer for that document only.
 */
import type { FakeSignstash, Fault } from '../../fake-signstash/server.js';
import type { Scenario } from '../driver.js';

const WAVE: Fault[] = [{ kind: 'omit_document' }, { kind: 'truncated' }, { kind: 'document_error', errorCode: 'INVALID_DOCUMENT' }, { kind: 'omit_document' }];

let fake: FakeSignstash | undefined;

/** Documents the fake answered with a per-document INVALID_DOCUMENT. */
const rejectedByUpstream = (): Set<string> =>
  new Set(
    (fake?.requests() ?? []).flatMap((r) =>
      r.docs.filter((d) => d.fault === 'document_error' && d.errorCode === 'INVALID_DOCUMENT').map((d) => d.externalReference),
    ),
  );

export const upstreamPartial: Scenario = {
  name: 'upstream-partial-malformed',
  title: "Sign'Stash answers 200 leaving a document out, with a per-document error, or cut off",
  async run(ctx) {
    fake = ctx.fake;
    await ctx.waitAcked(3);
    const waves = 3;
    for (let wave = 0; wave < waves; wave++) {
      for (const f of WAVE) ctx.fake.injectFault(f);
      await ctx.waitFor('the wave consumed', () => ctx.fake.requests().filter((r) => r.docs.some((d) => d.fault)).length >= (wave + 1) * WAVE.length, 60_000);
      await new Promise((r) => setTimeout(r, 1000));
    }
    ctx.note(`${waves} waves of: ${WAVE.map((f) => f.errorCode ?? f.kind).join(', ')}; ${rejectedByUpstream().size} documents rejected by the upstream`);
  },
  acceptsFailure: (docId, code) => code === 'UPSTREAM_DOCUMENT_REJECTED' && rejectedByUpstream().has(docId),
};
