/**
 * Decodes Sign'Stash's 200 answer, `{"documentList": [{"externalReference", "name",
 * "signedContent"}, …]}`, as a stream: each signedContent is base64-decoded straight into a spool
 * file, which is fsynced and renamed to the document's result path while the rest streams in; the
 * result directories are fsynced once each when the answer has ended, before any result is
 * returned (a directory shared by several results of the batch is fsynced once). Memory does not
 * grow with the answer. An entry may carry `errorCode`/`errorMessage` (and a
 * `status`) instead of content: it is mapped through the same table as a request-level failure
 * (failure.ts). A document the answer leaves out is UPSTREAM_BAD_RESPONSE; whether a document's
 * failure is tried again is the catalog's retryable flag (the batch runner decides).
 */
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { SignspoolError } from '@signspool/shared/errors';
import type { Logger } from '@signspool/shared/logger';
import type { Spool } from '@signspool/shared/spool/spool';
import { Base64FileSink } from '../../streams/base64-file-sink.js';
import { readJsonStream, type JsonPath } from '../../streams/json-stream.js';
import type { BatchDocument, DocumentResult, SignBatch } from '../../signer.js';
import { signedOutput } from '../signed-output.js';
import { mapFailure } from './failure.js';

/** One entry of documentList while it is being read. */
interface Entry {
  externalReference?: string;
  errorCode?: string;
  errorMessage?: string;
  status?: number;
  sink?: Base64FileSink;
  signed?: { size: number; sha256: string };
}

const isDocField = (p: JsonPath, field: string): boolean => p.length === 3 && p[0] === 'documentList' && typeof p[1] === 'number' && p[2] === field;
const isDocEntry = (p: JsonPath): boolean => p.length === 2 && p[0] === 'documentList';

export class SignedListDecoder {
  private readonly byRef: Map<string, BatchDocument>;
  private readonly results = new Map<string, DocumentResult>();
  /** Files written and not (yet) in place: removed when the answer ends or fails. */
  private readonly tmpFiles = new Set<string>();
  private readonly commits: Promise<void>[] = [];
  /** Results renamed into place, by directory: not durable until `syncDirs` has fsynced it. */
  private readonly renamed = new Map<string, string[]>();
  private entry: Entry = {};

  constructor(
    private readonly batch: SignBatch,
    docs: readonly BatchDocument[],
    private readonly spool: Spool,
    private readonly logger: Logger,
  ) {
    this.byRef = new Map(docs.map((d) => [d.docId, d]));
  }

  /** Reads the whole answer; one result per document of the batch. Throws a SignspoolError or the abort reason. */
  async read(body: Readable, signal: AbortSignal): Promise<DocumentResult[]> {
    try {
      await readJsonStream(body, {
        streamString: (p) => isDocField(p, 'signedContent'),
        onStringChunk: async (_p, chunk) => {
          if (signal.aborted) throw signal.reason;
          await this.local(async () => (await this.sink()).push(chunk));
        },
        // An empty signedContent gives an empty file.
        onStringEnd: async () => void (this.entry.signed = await this.local(async () => (await this.sink()).finish())),
        onValue: (p, v) => {
          if (isDocField(p, 'externalReference') && typeof v === 'string') this.entry.externalReference = v;
          else if (isDocField(p, 'errorCode') && typeof v === 'string') this.entry.errorCode = v;
          else if ((isDocField(p, 'errorMessage') || isDocField(p, 'message')) && typeof v === 'string') this.entry.errorMessage = v;
          else if (isDocField(p, 'status') && typeof v === 'number') this.entry.status = v;
        },
        onObjectEnd: async (p) => {
          if (isDocEntry(p)) await this.endEntry();
        },
      });
      await Promise.all(this.commits);
      await this.syncDirs();
    } catch (err) {
      await Promise.allSettled(this.commits);
      await this.entry.sink?.abort();
      await this.removeTmp();
      if (signal.aborted) throw signal.reason;
      if (err instanceof SignspoolError) throw err;
      if (err instanceof Error && err.name === 'JsonStreamError')
        throw new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: `Sign'Stash answered with malformed JSON (${err.message})` });
      throw err;
    }
    await this.removeTmp();
    return [...this.byRef.values()].map(
      (d) =>
        this.results.get(d.docId) ?? {
          ok: false,
          docId: d.docId,
          error: new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: "Sign'Stash's answer did not include this document" }),
        },
    );
  }

  /**
   * Runs a write into the spool: whatever it throws is ours (disk full: SPOOL_FULL, the document
   * stays queued), classified by where it failed, never mistaken for the upstream's network.
   */
  private async local<T>(write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      throw localStorageError(err);
    }
  }

  private async sink(): Promise<Base64FileSink> {
    if (!this.entry.sink) {
      const tmp = await this.spool.takeTmp('signed');
      this.entry.sink = await Base64FileSink.open(tmp.path, tmp.flags);
      this.tmpFiles.add(this.entry.sink.path);
    }
    return this.entry.sink;
  }

  private async endEntry(): Promise<void> {
    const done = this.entry;
    this.entry = {};
    const doc = done.externalReference === undefined ? undefined : this.byRef.get(done.externalReference);
    if (!doc || this.results.has(doc.docId)) {
      await done.sink?.abort();
      this.logger.warn({ batchId: this.batch.batchId }, "Sign'Stash answered a document this batch did not send; ignored");
      return;
    }
    if (done.errorCode !== undefined || (!done.signed && done.errorMessage !== undefined)) {
      // The upstream's own answer for this document: the same table as a request-level failure.
      await done.sink?.abort();
      this.results.set(doc.docId, {
        ok: false,
        docId: doc.docId,
        error: mapFailure({
          status: done.status,
          retryAfterMs: undefined,
          errorCode: done.errorCode,
          message: done.errorMessage,
          externalReference: done.externalReference,
        }),
      });
      return;
    }
    if (!done.signed || !done.sink) {
      await done.sink?.abort();
      this.results.set(doc.docId, {
        ok: false,
        docId: doc.docId,
        error: new SignspoolError('UPSTREAM_BAD_RESPONSE', { detail: "Sign'Stash returned no signed content for this document" }),
      });
      return;
    }
    const sink = done.sink;
    this.results.set(doc.docId, {
      ok: true,
      docId: doc.docId,
      path: doc.resultPath,
      size: done.signed.size,
      sha256: done.signed.sha256,
      ...signedOutput(this.batch.signatureType, doc.name),
    });
    // fsync, rename and directory fsync run while the rest of the answer streams in.
    this.commits.push(
      (async () => {
        await sink.close({ sync: true });
        const dirs = new Set<string>();
        await this.spool.commit(sink.path, doc.resultPath, { synced: true, dirs });
        this.tmpFiles.delete(sink.path);
        for (const dir of dirs) {
          const docIds = this.renamed.get(dir);
          if (docIds) docIds.push(doc.docId);
          else this.renamed.set(dir, [doc.docId]);
        }
      })().catch((err: unknown) => {
        this.logger.error(
          { err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, docId: doc.docId },
          'could not store a signed document',
        );
        this.results.set(doc.docId, { ok: false, docId: doc.docId, error: localStorageError(err) });
      }),
    );
  }

  /** fsyncs each directory results were renamed into; a directory that fails fails its results. */
  private async syncDirs(): Promise<void> {
    await Promise.all(
      [...this.renamed].map(async ([dir, docIds]) => {
        try {
          await this.spool.syncDir(dir);
        } catch (err) {
          this.logger.error(
            { err: { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code }, docIds },
            'could not store signed documents',
          );
          for (const docId of docIds) this.results.set(docId, { ok: false, docId, error: localStorageError(err) });
        }
      }),
    );
    this.renamed.clear();
  }

  private async removeTmp(): Promise<void> {
    await Promise.all([...this.tmpFiles].map((f) => rm(f, { force: true })));
    this.tmpFiles.clear();
  }
}

/** A local write that failed: SPOOL_FULL when the disk is full (the document is retried later), else INTERNAL. */
export const localStorageError = (err: unknown): SignspoolError => {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT'
    ? new SignspoolError('SPOOL_FULL', { detail: 'the worker could not store the signed result: its spool is full' })
    : new SignspoolError('INTERNAL', { detail: 'the signed document could not be stored in the spool' });
};
