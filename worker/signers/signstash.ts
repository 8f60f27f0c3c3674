/**
 * The Sign'Stash Proxy Client adapter. EVERY assumption about the upstream's wire format lives in
 * this file (and the token exchange in signstash-token.ts):
 *
 *   POST {SIGNSTASH_URL}/api/v0/document/sign/base64, Authorization: Bearer <token>
 *   {"description", "externalReference": <batchId>, "documents": [{"documentRequest":
 *     {"base64Content", "contentType", "externalReference": <docId>, "name"},
 *    "signatureInfo": {"signatureType", "applyTimestamp", "reason", "location"}}]}
 *   200 {"documentList": [{"externalReference", "name", "signedContent"}]}
 *   errors: {"errorCode", "errorMessage", "externalReference"?}; 401 = token invalid or expired,
 *   CLIENT_SERVICE_NOT_ACTIVE, CERTIFICATE_NOT_PROVISIONED, INVALID_DOCUMENT (one document of the
 *   request), 429 with Retry-After, 5xx.
 *
 * One request per batch. The body is streamed from the spool files, base64-encoded on the fly,
 * with an exact Content-Length; the response is read as a stream and each signedContent is
 * decoded straight into a spool file. Memory does not grow with the batch.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import { readPieces } from '@signspool/shared/page-cache-io';
import type { Spool } from '@signspool/shared/spool';
import { Base64FileSink } from '../base64-file-sink.js';
import { base64Encode, base64Length } from '../base64-stream.js';
import { parseRetryAfter, readSmallBody } from '../http-util.js';
import { readJsonStream } from '../json-stream.js';
import type { BatchDocument, DocumentResult, SignBatch, Signer } from '../signer.js';
import { SignstashTokenManager, transportError } from './signstash-token.js';
import { upstreamConnector } from './upstream-tls.js';

export { parseRetryAfter } from '../http-util.js';

export const SIGN_PATH = '/api/v0/document/sign/base64';
const READ_CHUNK = 3 * 64 * 1024; // a multiple of 3: base64 pieces concatenate cleanly
const ERROR_BODY_LIMIT = 64 * 1024;

export interface SignstashSignerDeps {
  config: Config['signstash'];
  spool: Spool;
  logger: Logger;
  /** Token requests made (metrics). */
  onTokenRefresh?: () => void;
}

/** What the upstream answered when it was not a 200. */
export interface UpstreamFailure {
  status: number;
  retryAfterMs: number | undefined;
  errorCode: string | undefined;
  message: string | undefined;
  externalReference: string | undefined;
}

/** Maps a non-200 answer of the sign endpoint to the catalog (401 is handled by the caller). */
export const mapFailure = (f: UpstreamFailure): SignspoolError => {
  const upstream = [f.errorCode, f.message].filter(Boolean).join(': ');
  const said = upstream ? ` (Sign'Stash said: ${upstream.slice(0, 300)})` : '';
  const code = (f.errorCode ?? '').toUpperCase();
  const msg = f.message ?? '';
  if (code === 'CLIENT_SERVICE_NOT_ACTIVE' || /not (in )?active/i.test(msg)) {
    return new SignspoolError('UPSTREAM_CLIENT_SERVICE_INACTIVE', {
      detail: `The Sign'Stash client service or issuer is not active: an issuer operator must check its status in the Sign'Stash backoffice${said}`,
    });
  }
  if (code === 'CERTIFICATE_NOT_PROVISIONED' || /certificate/i.test(msg)) {
    return new SignspoolError('UPSTREAM_CERTIFICATE_NOT_PROVISIONED', {
      detail: `The Sign'Stash client service has no valid digital certificate: an issuer operator must configure one in the Sign'Stash backoffice${said}`,
    });
  }
  if (f.status === 429) {
    return new SignspoolError('UPSTREAM_RATE_LIMITED', { detail: `Sign'Stash is rate limiting (429)${said}`, ...(f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs }) });
  }
  if (f.status >= 500) {
    return new SignspoolError('UPSTREAM_UNAVAILABLE', { detail: `Sign'Stash answered ${f.status}${said}`, ...(f.retryAfterMs === undefined ? {} : { retryAfterMs: f.retryAfterMs }) });
  }
  if (code === 'INVALID_DOCUMENT') {
    return new SignspoolError('UPSTREAM_DOCUMENT_REJECTED', {
      detail: `Sign'Stash rejected the document${said}`,
      extensions: f.externalReference === undefined ? {} : { externalReference: f.externalReference },
    });
  }
  return new SignspoolError('UPSTREAM_REJECTED', { detail: `Sign'Stash rejected the request with ${f.status}${said}` });
};

const failureOf = async (res: Dispatcher.ResponseData): Promise<UpstreamFailure> => {
  const text = await readSmallBody(res.body, ERROR_BODY_LIMIT).catch(() => '');
  let json: { errorCode?: unknown; errorMessage?: unknown; message?: unknown; error?: unknown; externalReference?: unknown } = {};
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    // not JSON
  }
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    status: res.statusCode,
    retryAfterMs: parseRetryAfter(res.headers['retry-after']),
    errorCode: str(json.errorCode) ?? str(json.error),
    message: str(json.errorMessage) ?? str(json.message) ?? (text && !text.startsWith('{') ? text.slice(0, 200) : undefined),
    externalReference: str(json.externalReference),
  };
};

/** Output media type and file name of a signed document, by signature type. */
export const signedOutput = (signatureType: SignBatch['signatureType'], name: string): { contentType: string; fileName: string } => {
  switch (signatureType) {
    case 'PAdES':
      return { contentType: 'application/pdf', fileName: name };
    case 'XAdES':
      return { contentType: 'application/xml', fileName: name };
    case 'CAdES':
      return { contentType: 'application/pkcs7-signature', fileName: `${name}.p7s` };
  }
};

interface Prepared {
  docs: (BatchDocument & { realSize: number })[];
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

  async start(): Promise<void> {
    // Tokens are fetched on first use: a worker starts even while Sign'Stash is down.
  }

  private signatureInfo(batch: SignBatch): string {
    const c = this.deps.config;
    return JSON.stringify({
      signatureType: batch.signatureType,
      applyTimestamp: c.applyTimestamp,
      ...(c.reason === undefined ? {} : { reason: c.reason }),
      ...(c.location === undefined ? {} : { location: c.location }),
    });
  }

  /** The JSON pieces around each document's base64 content. */
  private pieces(batch: SignBatch, docs: BatchDocument[]) {
    const head = `{"description":${JSON.stringify(`signspool batch of ${docs.length} documents`)},"externalReference":${JSON.stringify(batch.batchId)},"documents":[`;
    const info = this.signatureInfo(batch);
    const before = (i: number): string => `${i === 0 ? '' : ','}{"documentRequest":{"base64Content":"`;
    const after = (d: BatchDocument): string =>
      `","contentType":${JSON.stringify(d.contentType)},"externalReference":${JSON.stringify(d.docId)},"name":${JSON.stringify(d.name)}},"signatureInfo":${info}}`;
    return { head, before, after, tail: ']}' };
  }

  private contentLength(batch: SignBatch, docs: Prepared['docs']): number {
    const p = this.pieces(batch, docs);
    let n = Buffer.byteLength(p.head) + Buffer.byteLength(p.tail);
    docs.forEach((d, i) => (n += Buffer.byteLength(p.before(i)) + base64Length(d.realSize) + Buffer.byteLength(p.after(d))));
    return n;
  }

  /** Streams the request body from the spool; `hashes` receives each document's sha256 as sent. */
  private async *body(batch: SignBatch, docs: Prepared['docs'], hashes: Map<string, string>): AsyncGenerator<Buffer> {
    const p = this.pieces(batch, docs);
    yield Buffer.from(p.head);
    for (const [i, d] of docs.entries()) {
      yield Buffer.from(p.before(i));
      const hash = createHash('sha256');
      async function* hashed(): AsyncGenerator<Buffer> {
        for await (const chunk of readPieces(d.path, READ_CHUNK)) {
          hash.update(chunk);
          yield chunk;
        }
      }
      yield* base64Encode(hashed());
      hashes.set(d.docId, hash.digest('hex'));
      yield Buffer.from(p.after(d));
    }
    yield Buffer.from(p.tail);
  }

  private async prepare(batch: SignBatch): Promise<Prepared> {
    const docs: Prepared['docs'] = [];
    const missing: DocumentResult[] = [];
    for (const d of batch.documents) {
      try {
        const st = statSync(d.path);
        if (st.size !== d.size) {
          missing.push({ ok: false, docId: d.docId, error: new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file changed size since upload' }) });
        } else docs.push({ ...d, realSize: st.size });
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
            'content-length': String(this.contentLength(batch, docs)),
          },
          body: Readable.from(this.body(batch, docs, hashes), { objectMode: false }),
        });
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        throw transportError(err, "Sign'Stash");
      }
      if (res.statusCode === 401) {
        await res.body.dump({ limit: ERROR_BODY_LIMIT }).catch(() => undefined);
        this.tokens.invalidate(token);
        if (attempt >= 2) {
          throw new SignspoolError('UPSTREAM_TOKEN_INVALID', { detail: "Sign'Stash rejected a freshly issued OAuth token twice" });
        }
        this.deps.logger.info({ batchId: batch.batchId }, "Sign'Stash rejected the token; refreshing it and retrying once");
        token = await this.tokens.getToken(signal);
        continue;
      }
      if (res.statusCode !== 200) throw mapFailure(await failureOf(res));
      const results = await this.readResponse(batch, docs, res, signal);
      // A document whose bytes changed while being sent must not be reported as signed.
      const checked = results.map((r): DocumentResult => {
        const sent = hashes.get(r.docId);
        const doc = docs.find((d) => d.docId === r.docId);
        if (r.ok && doc && sent !== doc.sha256) {
          return { ok: false, docId: r.docId, error: new SignspoolError('SPOOL_FILE_CORRUPT', { detail: 'the spooled file no longer matches the sha256 taken at upload' }) };
        }
        return r;
      });
      return [...missing, ...checked];
    }
  }

  /** Reads the 200 answer as a stream, decoding each signedContent into a spool file. */
  private async readResponse(batch: SignBatch, docs: Prepared['docs'], res: Dispatcher.ResponseData, signal: AbortSignal): Promise<DocumentResult[]> {
    const { spool, logger } = this.deps;
    const byRef = new Map(docs.map((d) => [d.docId, d]));
    const results = new Map<string, DocumentResult>();
    const tmpFiles = new Set<string>();
    interface Current {
      externalReference?: string;
      sink?: Base64FileSink | undefined;
      signed?: { size: number; sha256: string };
    }
    let cur: Current = {};
    const commits: Promise<void>[] = [];
    const isDocField = (p: readonly (string | number)[], field: string): boolean => p.length === 3 && p[0] === 'documentList' && typeof p[1] === 'number' && p[2] === field;
    const sinkOf = async (c: Current): Promise<Base64FileSink> => {
      if (!c.sink) {
        const tmp = await spool.takeTmp('signed');
        c.sink = await Base64FileSink.open(tmp.path, tmp.flags);
        tmpFiles.add(c.sink.path);
      }
      return c.sink;
    };
    try {
      await readJsonStream(res.body, {
        streamString: (p) => isDocField(p, 'signedContent'),
        onStringChunk: async (_p, chunk) => {
          if (signal.aborted) throw signal.reason;
          await (await sinkOf(cur)).push(chunk);
        },
        onStringEnd: async () => {
          // An empty signedContent gives an empty file.
          cur.signed = await (await sinkOf(cur)).finish();
        },
        onValue: (p, v) => {
          if (isDocField(p, 'externalReference') && typeof v === 'string') cur.externalReference = v;
        },
        onObjectEnd: async (p) => {
          if (!(p.length === 2 && p[0] === 'documentList')) return;
          const done = cur;
          cur = {};
          const doc = done.externalReference === undefined ? undefined : byRef.get(done.externalReference);
          if (!doc || results.has(doc.docId)) {
            await done.sink?.abort();
            logger.warn({ batchId: batch.batchId }, "Sign'Stash answered a document this batch did not send; ignored");
            return;
          }
          if (!done.signed || !done.sink) {
            await done.sink?.abort();
            results.set(doc.docId, { ok: false, docId: doc.docId, error: new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: "Sign'Stash returned no signed content for this document" }) });
            return;
          }
          // fsync, rename and directory fsync run while the rest of the answer streams in; awaited before returning.
          const dest = spool.signedPath(doc.opId, doc.docId);
          const sink = done.sink;
          const tmp = sink.path;
          const signed: DocumentResult = { ok: true, docId: doc.docId, path: dest, size: done.signed.size, sha256: done.signed.sha256, ...signedOutput(batch.signatureType, doc.name) };
          results.set(doc.docId, signed);
          commits.push(
            (async () => {
              await sink.close({ sync: true });
              await spool.commit(tmp, dest, { synced: true });
            })().then(
              () => void tmpFiles.delete(tmp),
              (err: unknown) => {
                logger.error({ err: { message: (err as Error).message }, docId: doc.docId }, 'could not store a signed document');
                results.set(doc.docId, { ok: false, docId: doc.docId, error: new SignspoolError('INTERNAL', { detail: 'the signed document could not be stored in the spool' }) });
              },
            ),
          );
        },
      });
      await Promise.all(commits);
      // Results of documents this batch did not send, or whose commit failed.
      await Promise.all([...tmpFiles].map((f) => rm(f, { force: true })));
    } catch (err) {
      await Promise.allSettled(commits);
      await cur.sink?.abort();
      await Promise.all([...tmpFiles].map((f) => rm(f, { force: true })));
      if (signal.aborted) throw signal.reason;
      if (err instanceof SignspoolError) throw err;
      const name = err instanceof Error ? err.name : '';
      if (name === 'JsonStreamError') throw new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: `Sign'Stash answered with malformed JSON (${(err as Error).message})` });
      throw transportError(err, "Sign'Stash");
    }
    return docs.map(
      (d) =>
        results.get(d.docId) ?? {
          ok: false,
          docId: d.docId,
          error: new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: "Sign'Stash's answer did not include this document" }),
        },
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.agent.close();
  }
}
