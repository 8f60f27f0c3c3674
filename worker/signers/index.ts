/** Chooses the signer named by SIGNER (loaded on demand: a worker loads only the one it uses). */
import type { Config } from '@signspool/shared/config';
import type { Logger } from '@signspool/shared/logger';
import type { Metrics } from '@signspool/shared/metrics';
import type { Spool } from '@signspool/shared/spool/spool';
import type { Signer } from '../signer.js';

export const createSigner = async (config: Config, spool: Spool, logger: Logger, metrics?: Metrics): Promise<Signer> => {
  switch (config.signer) {
    case 'signstash': {
      const { SignstashSigner } = await import('./signstash/adapter.js');
      return new SignstashSigner({
        config: config.signstash,
        spool,
        logger: logger.child({ signer: 'signstash' }),
        ...(metrics ? { onTokenRefresh: () => metrics.tokenRefreshes.inc() } : {}),
      });
    }
    case 'local': {
      const { LocalSigner } = await import('./local/local.js');
      return new LocalSigner({
        dataDir: config.dataDir,
        ...config.localSigner,
        spool,
        logger: logger.child({ signer: 'local' }),
      });
    }
  }
};
