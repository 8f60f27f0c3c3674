/**
 * Section 7, the local signer: PAdES, XAdES and CAdES of 200 KB documents in batches of 50, per
 * CPU-second against the bare signature, worker RSS, and the submit-time format check
 * (bench/local-signer.ts, also `npm run bench:signer` alone).
 */
import { localSignerSection as runLocalSigner } from '../local-signer.js';
import type { BenchContext, Section } from '../section.js';

export const localSignerSection: Section = {
  id: '7',
  title: 'local signer',
  run: async (ctx: BenchContext) => {
    const add = ctx.report.section('7 local signer');
    return runLocalSigner((r) => add(r), { quick: ctx.settings.quick });
  },
};
