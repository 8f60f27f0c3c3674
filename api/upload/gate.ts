/**
 * The way into POST /v1/operations before its body is read, in order of cost:
 *   1. cheap checks on the request head: content type (415), declared length (413), spool room
 *      (507: reserved for the upload, space.ts, above the api's floor, shared/spool/room.ts), the tenant's uploaded bytes per second and backlog (429, rate-limits.ts);
 *   2. a turn among the uploads being read (admission.ts: a tenant's first at once, then per
 *      tenant, fewest first), waited for at most UPLOAD_QUEUE_TIMEOUT (503 UPLOADS_BUSY);
 *      while Redis is found unavailable (redis-health.ts), 503 before 1. and to those waiting;
 *   3. reading the body under the upload timeouts (upload-timeouts.ts: 408).
 * So a refused request never waits for a slot, and a stalled upload gives its slot back. A
 * refusal found while the body is read (a field that precedes the files) stops reading at once,
 * as a timeout does: the client learns it without sending the rest.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '@signspool/shared/config';
import { SignspoolError } from '@signspool/shared/errors';
import type { Metrics } from '@signspool/shared/metrics';
import type { Spool } from '@signspool/shared/spool/spool';
import type { TenantRateLimits } from '../rate-limits.js';
import { apiSpoolFloor } from '@signspool/shared/spool/room';
import { redisUnavailableError } from '@signspool/shared/redis/unavailable';
import { closeAfterAnswer } from '../http/connection-limits.js';
import type { RedisHealth } from '../redis-health.js';
import { UploadAdmission } from './admission.js';
import { parseContentType } from './multipart.js';
import type { BodyReading } from './receive.js';
import { SpaceReservations } from './space.js';
import { UploadWatchdog } from './timeouts.js';

/** Whether the request has a body (a length or chunked) of type multipart/form-data: what express's req.is() answered. */
const isFormData = (req: IncomingMessage): boolean => {
  const h = req.headers;
  if (h['transfer-encoding'] === undefined && Number.isNaN(Number(h['content-length']))) return false;
  const ct = parseContentType(h['content-type'] ?? '');
  return ct?.type === 'multipart' && ct.subtype === 'form-data';
};

/** The largest body of a refused upload that is read (and dropped) rather than left unread behind a closed connection. */
const DRAIN_REFUSED_BYTES = 64 * 1024;

export interface UploadPass {
  /** Awaits the body's reading (`work`: receive.ts); rejects with 408 UPLOAD_TIMEOUT if the upload stalls or crawls first. */
  read(work: Promise<void>): Promise<void>;
  /** Stops reading the body now; `read` rejects with `err` (its answer closes the connection). */
  refuse(err: Error): void;
}

export interface UploadGateDeps {
  config: Config;
  spool: Spool;
  metrics: Metrics;
  limits: TenantRateLimits;
  /** While Redis is found unavailable, uploads are refused before anything else (503). */
  redisHealth?: RedisHealth | undefined;
}

export class UploadGate {
  readonly admission: UploadAdmission;
  readonly watchdog: UploadWatchdog;
  /** Room reserved for admitted uploads (space.ts). */
  readonly space: SpaceReservations;
  /** Each request's body reading, so that a timeout can stop it. */
  private readonly readings = new WeakMap<IncomingMessage, BodyReading>();

  constructor(private readonly deps: UploadGateDeps) {
    const { config, metrics } = deps;
    // Read at most every 250 ms: a statfs per upload is measurable at hundreds of uploads per second.
    this.space = new SpaceReservations(deps.spool, 250);
    this.admission = new UploadAdmission(config.upload.concurrency, config.upload.tenantShare, ({ active, waiting }) => {
      metrics.uploads.set({ state: 'reading' }, active);
      metrics.uploads.set({ state: 'waiting' }, waiting);
    });
    this.watchdog = new UploadWatchdog(
      { idleMs: config.upload.idleTimeoutMs, minBytesPerSecond: config.upload.minBytesPerSecond, windowMs: config.upload.minRateWindowMs },
      (reason) => metrics.uploadTimeouts.inc({ reason }),
    );
  }

  /**
   * The refusal of an upload while Redis is unavailable, before its body is read. A small body is
   * read and dropped after the answer (node does it): closing with it unread would reset the
   * connection, and a client still sending would miss the answer. A larger one closes the connection.
   */
  private redisDown(req: IncomingMessage, res: ServerResponse): Error {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (!(declared <= DRAIN_REFUSED_BYTES)) closeAfterAnswer(res);
    return redisUnavailableError();
  }

  /** Remembers the request's body reading (receive.ts), to stop it on a timeout or a refusal. */
  readonly track = (req: IncomingMessage, reading: BodyReading): void => {
    this.readings.set(req, reading);
  };

  /**
   * Checks the request head, then waits for a turn. Throws the refusal (4xx, 507, 503); resolves
   * undefined when the client went away while waiting.
   */
  async enter(req: IncomingMessage, res: ServerResponse, tenant: string): Promise<UploadPass | undefined> {
    const health = this.deps.redisHealth;
    if (health && !health.available) throw this.redisDown(req, res);
    const announced = await this.preflight(req, res);
    await this.deps.limits.checkUpload(tenant, announced, res);
    // A client gone during the checks takes no slot (its 'close' has passed: nothing would free it).
    if (res.destroyed) return undefined;
    // A client that leaves while waiting leaves the queue; so does one that waited UPLOAD_QUEUE_TIMEOUT (503).
    // So does one waiting when Redis is found unavailable (503: it could not be accepted).
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    let redisDown = false;
    let unwatch = (): void => undefined;
    const release = await this.admission.admit(tenant, (cancel) => {
      res.once('close', cancel);
      timer = setTimeout(() => {
        timedOut = true;
        cancel();
      }, this.deps.config.upload.queueTimeoutMs);
      const stop = health?.onDown(() => {
        redisDown = true;
        cancel();
      });
      if (stop) unwatch = () => void stop();
    });
    clearTimeout(timer);
    unwatch();
    if (!release) {
      if (redisDown && !res.destroyed) throw this.redisDown(req, res);
      if (!timedOut || res.destroyed) return undefined;
      this.deps.metrics.uploadTimeouts.inc({ reason: 'queue' });
      // The body was not read: the connection closes after the answer.
      closeAfterAnswer(res);
      throw new SignspoolError('UPLOADS_BUSY', {
        detail: `every upload slot stayed taken for ${Math.round(this.deps.config.upload.queueTimeoutMs / 1000)} s; nothing was kept, retry later`,
        retryAfterMs: 5000,
      });
    }
    if (res.destroyed) {
      release();
      return undefined;
    }
    res.once('close', release);
    let refuse: (err: Error) => void = () => undefined;
    const refusal = new Promise<never>((_resolve, reject) => (refuse = reject));
    refusal.catch(() => undefined);
    return {
      read: (work) => this.read(req, res, tenant, work, announced, refusal),
      refuse: (err) => {
        this.stopParsing(req, res, err);
        refuse(err);
      },
    };
  }

  /** Stops reading the body: the files being written fail and are removed (receive.ts); the answer closes the connection. */
  private stopParsing(req: IncomingMessage, res: ServerResponse, err: Error): void {
    res.setHeader('Connection', 'close');
    this.readings.get(req)?.stop(err);
  }

  /**
   * Checks what can be checked before reading the body and reserves the spool room the upload may
   * need (released when the response closes); returns the bytes the upload announced.
   */
  private async preflight(req: IncomingMessage, res: ServerResponse): Promise<number> {
    const { config } = this.deps;
    if (!isFormData(req)) {
      throw new SignspoolError('UNSUPPORTED_MEDIA_TYPE', { detail: 'send documents as multipart/form-data with one "file" part per document' });
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    // Multipart framing adds a little per part; a declared length far over the limit is refused before reading.
    const framing = 4096 * (config.upload.maxFiles + config.upload.maxFields + 1);
    if (Number.isFinite(declared) && declared > config.upload.maxTotalBytes + framing) {
      throw new SignspoolError('REQUEST_TOO_LARGE', {
        detail: `the documents of one request may total at most ${config.upload.maxTotalBytes} bytes`,
        extensions: { limit: config.upload.maxTotalBytes },
      });
    }
    const announced = Number.isFinite(declared) ? declared : 0;
    // A chunked upload may write up to the limit: that is what it reserves.
    const release = await this.space.reserve(announced > 0 ? announced : config.upload.maxTotalBytes, apiSpoolFloor(config));
    if (!release) {
      throw new SignspoolError('INSUFFICIENT_STORAGE', { detail: 'the spool is too full to accept this upload now; retry later', retryAfterMs: 60_000 });
    }
    if (res.closed) release();
    else res.once('close', release);
    return announced;
  }

  private read(req: IncomingMessage, res: ServerResponse, tenant: string, work: Promise<void>, announced: number, refusal: Promise<never>): Promise<void> {
    const socket = req.socket;
    const startBytes = socket.bytesRead;
    const reading = new Promise<void>((resolve, reject) => {
      const stop = this.watchdog.watch(socket, (err) => {
        this.stopParsing(req, res, err);
        reject(err);
      });
      refusal.catch((err: unknown) => {
        stop();
        reject(err instanceof Error ? err : new Error(String(err)));
      });
      work.then(
        () => {
          stop();
          resolve();
        },
        (err: unknown) => {
          stop();
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
    if (announced > 0) return reading;
    // A chunked upload announced nothing: its bytes count once read.
    return reading.finally(() => void this.deps.limits.chargeUploaded(tenant, socket.bytesRead - startBytes));
  }
}
