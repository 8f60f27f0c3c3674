/**
 * An RFC 3161 time-stamp client: asks the TSA at TSA_URL for a token over some bytes (the
 * signature value, for B-T signatures), over one keep-alive connection with a bounded number of
 * requests in flight, and checks that the token answers this request (imprint and nonce).
 * Failures map to the catalog: TSA_UNAVAILABLE (network, timeout, 429/5xx: retryable, the batch is
 * retried like an upstream call), TSA_REJECTED (the TSA refused the request), TSA_BAD_RESPONSE.
 */
import { createHash, randomBytes } from 'node:crypto';
import { SignedData } from '@peculiar/asn1-cms';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { MessageImprint, PKIStatus, TimeStampReq, TimeStampResp, TSTInfo } from '@peculiar/asn1-tsp';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { Pool } from 'undici';
import { SignspoolError } from '@signspool/shared/errors';
import { parseRetryAfter, readSmallBody } from '../../http-util.js';
import { toArrayBuffer } from './der.js';

const SHA256 = '2.16.840.1.101.3.4.2.1';
const MAX_REPLY_BYTES = 256 * 1024;

export interface TsaClientOptions {
  url: string;
  timeoutMs: number;
  /** Requests in flight at once (pipelined on the one connection). */
  concurrency: number;
}

export class TsaClient {
  private readonly pool: Pool;
  private readonly path: string;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly opts: TsaClientOptions) {
    const url = new URL(opts.url);
    this.path = `${url.pathname}${url.search}`;
    this.pool = new Pool(url.origin, {
      connections: 1,
      pipelining: opts.concurrency,
      connect: { timeout: opts.timeoutMs },
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      keepAliveTimeout: 10_000,
    });
  }

  /** The DER TimeStampToken (a CMS ContentInfo) over SHA-256(`data`). */
  async timestamp(data: Buffer, signal: AbortSignal): Promise<Buffer> {
    await this.slot();
    try {
      return await this.request(data, signal);
    } finally {
      this.inFlight -= 1;
      this.waiting.shift()?.();
    }
  }

  private async slot(): Promise<void> {
    if (this.inFlight < this.opts.concurrency) {
      this.inFlight += 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight += 1;
  }

  private async request(data: Buffer, signal: AbortSignal): Promise<Buffer> {
    const imprint = createHash('sha256').update(data).digest();
    const nonce = randomBytes(8);
    nonce[0] = ((nonce[0] ?? 0) & 0x7e) | 0x01; // a positive INTEGER with no leading zero byte
    const query = new TimeStampReq({
      version: 1,
      messageImprint: new MessageImprint({
        hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA256, parameters: null }),
        hashedMessage: new OctetString(imprint),
      }),
      nonce: toArrayBuffer(nonce),
      certReq: true,
    });
    let res;
    try {
      res = await this.pool.request({
        method: 'POST',
        path: this.path,
        signal,
        headers: { 'content-type': 'application/timestamp-query', accept: 'application/timestamp-reply' },
        body: Buffer.from(AsnConvert.serialize(query)),
      });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const code = (err as { code?: string }).code ?? (err as Error).name;
      throw new SignspoolError('TSA_UNAVAILABLE', { detail: `the time-stamp authority could not be reached or did not answer in time (${code})`, cause: err });
    }
    if (res.statusCode === 429 || res.statusCode >= 500) {
      await res.body.dump().catch(() => undefined);
      const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
      throw new SignspoolError('TSA_UNAVAILABLE', {
        detail: `the time-stamp authority answered ${res.statusCode}`,
        ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      });
    }
    if (res.statusCode !== 200) {
      await readSmallBody(res.body).catch(() => '');
      throw new SignspoolError('TSA_REJECTED', { detail: `the time-stamp authority answered ${res.statusCode}` });
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > MAX_REPLY_BYTES) throw new SignspoolError('TSA_BAD_RESPONSE', { detail: 'the time-stamp reply is larger than 256 KiB' });
      parts.push(chunk as Buffer);
    }
    return checkReply(Buffer.concat(parts), imprint, nonce);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

/** The token of a granted reply that answers our imprint and nonce. */
const checkReply = (reply: Buffer, imprint: Buffer, nonce: Buffer): Buffer => {
  let resp: TimeStampResp;
  let tst: TSTInfo;
  try {
    resp = AsnConvert.parse(reply, TimeStampResp);
    if (resp.status.status !== PKIStatus.granted && resp.status.status !== PKIStatus.grantedWithMods) {
      throw new SignspoolError('TSA_REJECTED', {
        detail: `the time-stamp authority refused the request (status ${resp.status.status}${resp.status.statusString ? `: ${resp.status.statusString.join(' ')}` : ''})`,
      });
    }
    if (!resp.timeStampToken) throw new Error('no token');
    const signedData = AsnConvert.parse(resp.timeStampToken.content, SignedData);
    const eContent = signedData.encapContentInfo.eContent;
    const tstDer = eContent?.single?.buffer ?? eContent?.any;
    if (!tstDer) throw new Error('no TSTInfo');
    tst = AsnConvert.parse(tstDer, TSTInfo);
  } catch (err) {
    if (err instanceof SignspoolError) throw err;
    throw new SignspoolError('TSA_BAD_RESPONSE', { detail: `the time-stamp reply cannot be read (${(err as Error).message})` });
  }
  const gotImprint = Buffer.from(tst.messageImprint.hashedMessage.buffer);
  const gotNonce = tst.nonce ? Buffer.from(tst.nonce) : undefined;
  if (!gotImprint.equals(imprint) || !gotNonce?.equals(nonce)) {
    throw new SignspoolError('TSA_BAD_RESPONSE', { detail: 'the time-stamp token does not answer this request (imprint or nonce differ)' });
  }
  return Buffer.from(AsnConvert.serialize(resp.timeStampToken));
};
