/**
 * The Sign'Stash Proxy Client adapter: one request per batch to
 * POST {SIGNSTASH_URL}/api/v0/document/sign/base64 with a bearer token (signstash-token.ts). The
 * request is encoded by signstash-request.ts, a 200 answer decoded by signstash-response.ts, any
 * other answer mapped by signstash-failure.ts. 401 means the token is invalid or expired: it is
 * fetched again and the request retried once. It runs inside the batch runner's `upstream.sign`
 * span, which gets the answer's status (and an event for a refreshed token).
 */
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { trace } from '@opentelemetry/api';
import { Agent, request, type Dispatcher } from 'undici';
import type { SignstashSettings } from '@signspool/shared/signers/identities';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Spool } from '@signspool/shared/spool/spool';
import type { BatchDocument, DocumentResult, SignBatch, Signer, SignerStatus } from '../../signer.js';
import { mapFailure, readFailure } from './failure.js';
import { SignRequestEncoder } from './request.js';
import { SignedListDecoder } from './response.js';
import { SignstashTokenManager, transportError } from './token.js';
import { upstreamConnector } from './upstream-tls.js';

export { signedOutput } from '../signed-output.js';
export { mapFailure, type UpstreamFailure } from './failure.js';

export const SIGN_PATH = '/api/v0/document/sign/base64';
const ERROR_BODY_LIMIT = 64 * 1024;

export interface SignstashSignerDeps {
  config: SignstashSettings;
  spool: Spool;
  logger: Logger;
  /** Token requests made (metrics). */
  onTokenRefresh?: () => void;
}

interface Prepared {
  docs: BatchDocument[];
  missing: DocumentResult[];
}

export class SignstashSigner implements Signer {
  readonly name = 'signstash';
  private readonly agent: Agent;
  readonly tokens: SignstashTokenManager;
  private stopped = false;

  constructor(private readonly deps: SignstashSignerDeps) {
    const c = deps.config;
    this.agent = new Agent({
      connect: upstreamConnector(c),
      headersTimeout: c.headersTimeoutMs,
      bodyTimeout: c.bodyTimeoutMs,
      keepAliveTimeout: 10_000,
    });
    this.tokens = new SignstashTokenManager({
      authUrl: c.authUrl,
      clientId: c.clientId,
      clientSecret: c.clientSecret,
      skewMs: c.tokenSkewMs,
      dispatcher: this.agent,
      logger: deps.logger,
      ...(deps.onTokenRefresh ? { onRefresh: deps.onTokenRefresh } : {}),
    });
  }

  status(): SignerStatus {
    const until = this.tokens.validUntil;
    return until === undefined ? {} : { tokenValidUntil: until };
  }

  async start(): Promise<void> {
    // Tokens are fetched on first use: a worker starts even while Sign'Stash is down.
  }

  private async prepare(batch: SignBatch): Promise<Prepared> {
    const docs: Prepared['docs'] = [];
    const missing: DocumentResult[] = [];
    for (const d of batch.documents) {
      try {
        const st = statSync(d.path);
        if (st.size !== d.size) {
          missing.push({
            ok: false,
            docId: d.docId,
            error: new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file changed size since upload' }),
          });
        } else docs.push(d);
      } catch {
        missing.push({ ok: false, docId: d.docId, error: new SignspoolError('SPOOL_FILE_MISSING') });
      }
    }
    return { docs, missing };
  }

  async signBatch(batch: SignBatch, signal: AbortSignal): Promise<DocumentResult[]> {
    if (this.stopped) throw new Error('signstash signer stopped');
    const { docs, missing } = await this.prepare(batch);
    if (docs.length === 0) return missing;
    const c = this.deps.config;
    const encoder = new SignRequestEncoder(batch, docs, { applyTimestamp: c.applyTimestamp, reason: c.reason, location: c.location });
    let token = await this.tokens.getToken(signal);
    for (let attempt = 1; ; attempt++) {
      const hashes = new Map<string, string>();
      let res: Dispatcher.ResponseData;
      try {
        res = await request(`${this.deps.config.url}${SIGN_PATH}`, {
          method: 'POST',
          dispatcher: this.agent,
          signal,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            accept: 'application/json',
            'content-length': String(encoder.contentLength()),
          },
          body: encoder.body(hashes),
        });
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw transportError(err, "Sign'Stash");
      }
      const span = trace.getActiveSpan();
      span?.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode === 401) {
        await res.body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => undefined);
        span?.addEvent('token rejected (401)');
        this.tokens.invalidate(token);
        if (attempt >= 2) {
          throw new SignspoolError('UPSTREAM_TOKEN_INVALID', { detail: "Sign'Stash rejected a freshly issued OAuth token twice" });
        }
        this.deps.logger.info({ batchId: batch.batchId }, "Sign'Stash rejected the token; refreshing it and retrying once");
        token = await this.tokens.getToken(signal);
        continue;
      }
      if (res.statusCode !== 200) throw mapFailure(await readFailure(res));
      let results: DocumentResult[];
      try {
        results = await new SignedListDecoder(batch, docs, this.deps.spool, this.deps.logger).read(res.body, signal);
      } catch (err) {
        if (signal.aborted || err instanceof SignspoolError) throw err;
        throw transportError(err, "Sign'Stash");
      }
      // A document whose bytes changed while being sent must not be reported as signed.
      const checked = await Promise.all(
        results.map(async (r): Promise<DocumentResult> => {
          const doc = docs.find((d) => d.docId === r.docId);
          if (!r.ok || !doc || hashes.get(r.docId) === doc.sha256) return r;
          await rm(r.path, { force: true });
          return {
            ok: false,
            docId: r.docId,
            error: new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file no longer matches the sha256 taken at upload' }),
          };
        }),
      );
      return [...missing, ...checked];
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.agent.close();
  }
}
