/**
 * Builds the signer of one signing identity (shared/signers): a Sign'Stash adapter with the
 * identity's client service, OAuth token manager and TLS settings, or a local signer with its
 * certificate. Each kind is loaded on demand: a worker loads only the kinds it signs with.
 */
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { SigningIdentity } from '@signspool/shared/signers/identities';
import type { Spool } from '@signspool/shared/spool/spool';
import type { Signer } from '../signer.js';

export interface SignerContext {
  /** Where the local signer keeps a generated development certificate (identity `default` without one). */
  dataDir: string;
  spool: Spool;
  logger: Logger;
  metrics?: Metrics;
}

export const createSigner = async (identity: SigningIdentity, ctx: SignerContext): Promise<Signer> => {
  const logger = ctx.logger.child({ signer: identity.name });
  switch (identity.kind) {
    case 'signstash': {
      const { SignstashSigner } = await import('./signstash/adapter.js');
      const metrics = ctx.metrics;
      return new SignstashSigner({
        config: identity.signstash,
        spool: ctx.spool,
        logger,
        ...(metrics ? { onTokenRefresh: () => metrics.tokenRefreshes.inc({ signer: identity.name }) } : {}),
      });
    }
    case 'local': {
      const { LocalSigner } = await import('./local/local.js');
      return new LocalSigner({ dataDir: ctx.dataDir, ...identity.local, reason: identity.signature.reason, spool: ctx.spool, logger });
    }
  }
};
