/**
 * A fake Sign'Stash Proxy Client: a real HTTP server with the OAuth token endpoint and the sign
 * endpoint of docs/signers.md, a latency model (fixed time per request + time per byte), failure
 * injection for every case the client must handle, and a record of every request it served.
 * Requests are parsed as streams (documents are decoded into memory up to 32 MiB per request, then
 * into temp files) and answers are streamed back, so it can be sent 1 GB requests.
 *
 * Signed content, by default: original bytes + "\n%%SIGNSTASH-FAKE-SIGNATURE <type> <sha256 of original>\n"
 * (cheap: the benchmarks measure signspool, not signing). With `signatures: 'real'` (the standalone
 * fake's default, for demos) it signs with the local signer's code (worker/signers/local/document-signer.ts)
 * and a development certificate (GET /_fake/certificate), so the files it returns pass pdfsig,
 * xmlsec1 and openssl; a document that cannot take its signature type is rejected (400).
 *
 * It serves several client services (`clients`), as Sign'Stash does: each has its clientId and
 * secret (OAuth Basic), its own certificate in 'real' mode (GET /_fake/certificate?client=<id>),
 * a state (`inactive` answers "client service not active", `no-certificate` "digital certificate
 * not provisioned") and counters; `setClient` changes a secret or a state at runtime. A token
 * belongs to the client it was issued to. Without `clients`, one client from `clientId`/`clientSecret`.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, openSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Config } from '@signspool/shared/config';
import { isSignspoolError } from '@signspool/shared/errors';
import { silentLogger } from '@signspool/shared/logger';
import type { SignatureType } from '@signspool/shared/queue';
import { writeAll } from '@signspool/shared/spool/file-io';
import { base64Encode } from '@signspool/worker/streams/base64-stream';
import { readJsonStream } from '@signspool/worker/streams/json-stream';
import { DocumentSigner } from '@signspool/worker/signers/local/document-signer';
import { loadOrCreateSigningIdentity, type SigningIdentity } from '@signspool/worker/signers/local/cert';
import { SpillSink } from './spill-sink.js';

export type FaultKind =
  | 'oauth_invalid_client'
  | 'token_invalid'
  | 'service_inactive'
  | 'certificate_not_provisioned'
  | 'rate_limit'
  | 'server_error'
  | 'reset'
  | 'slow'
  // 200 answers that are not whole (chaos suite):
  | 'omit_document'
  | 'document_error'
  | 'truncated'
  | 'stall_body';

export interface Fault {
  kind: FaultKind;
  /** Only requests of this client service (default: any). */
  clientId?: string;
  /** How many requests it applies to (default 1). */
  times?: number;
  retryAfterS?: number;
  status?: number;
  /** 'slow': before the headers; 'stall_body': after the headers and part of the body, then the connection is closed. */
  delayMs?: number;
  /** 'document_error': the per-document errorCode (default 'UNAVAILABLE'). */
  errorCode?: string;
}

/**
 * Faults answered with a 200 whose body is not whole, applied to the request's first document:
 * - omit_document: the documentList leaves it out;
 * - document_error: its entry carries `errorCode` / `errorMessage` instead of signedContent;
 * - truncated: the body ends cleanly in the middle of its signedContent (malformed JSON);
 * - stall_body: the body stops in the middle of its signedContent for `delayMs`, then the connection is closed.
 */
const PARTIAL_FAULTS: FaultKind[] = ['omit_document', 'document_error', 'truncated', 'stall_body'];

/** A time-bounded outage (chaos suite): every sign request fails this way until `until`. */
export interface Outage {
  until: number;
  kind: 'server_error' | 'rate_limit' | 'reset';
  status: number;
}

export interface RequestDocRecord {
  externalReference: string;
  name: string;
  size: number;
  sha256In: string;
  /** What was returned whole for it ('' when nothing was: see `fault`). */
  sha256Out: string;
  /** A partial answer's fault that hit this document (PARTIAL_FAULTS). */
  fault?: FaultKind;
  /** document_error: the errorCode it was answered with. */
  errorCode?: string;
}

export interface RequestRecord {
  id: number;
  /** The client service whose token the request carried ('' when the token was unknown). */
  clientId: string;
  /** When the request arrived (ms epoch). */
  at: number;
  externalReference: string;
  documents: number;
  /** Decoded document bytes. */
  bytes: number;
  outcome: 'ok' | FaultKind | 'rejected' | 'unauthorized' | 'bad_request' | 'aborted';
  status: number;
  durationMs: number;
  docs: RequestDocRecord[];
}

/** A client service's state: what the upstream answers its sign requests. */
export type ClientState = 'active' | 'inactive' | 'no-certificate';

export interface FakeClientOptions {
  clientId: string;
  clientSecret: string;
  state?: ClientState;
  /** 'real' mode: the key and certificate (PEM) it signs with; default: a development certificate of its own. */
  keyFile?: string;
  certFile?: string;
}

/** What a client service has been asked (the secret is not part of it). */
export interface FakeClientView {
  clientId: string;
  state: ClientState;
  tokenRequests: number;
  /** Sign requests answered with signed documents, and the documents per such request. */
  calls: number;
  documentsPerCall: number[];
  /** Sign requests refused (state, faults, token). */
  refused: number;
}

interface FakeClient extends FakeClientView {
  clientSecret: string;
  keyFile: string | undefined;
  certFile: string | undefined;
  signer: { identity: SigningIdentity; documents: DocumentSigner } | undefined;
}

export interface FakeSignstashOptions {
  host?: string;
  port?: number;
  /** The single client service when `clients` is not given. */
  clientId?: string;
  clientSecret?: string;
  /** Several client services; the first is the one `clientEnv()`/`signerConfig()` point at. */
  clients?: FakeClientOptions[];
  /** Fixed time per sign request (ms). */
  perRequestMs?: number;
  /** Time per decoded byte: bytes per second. */
  bytesPerSec?: number;
  tokenTtlS?: number;
  /** Serve HTTPS with this key and certificate (and `requestCert`/`ca` to require client certificates). */
  tls?: https.ServerOptions;
  /** 'trailer' (default): original + a text trailer; 'real': PAdES/XAdES/CAdES signatures. */
  signatures?: 'trailer' | 'real';
  /** Where the 'real' mode keeps its development certificate (default: a temp dir). */
  certificateDir?: string;
}

export const fakeTrailer = (signatureType: string, sha256: string): Buffer => Buffer.from(`\n%%SIGNSTASH-FAKE-SIGNATURE ${signatureType} ${sha256}\n`);

/** sha256 of what the fake returns for `original`. */
export const expectedSignedSha256 = (original: Buffer, signatureType: string): string =>
  createHash('sha256')
    .update(original)
    .update(fakeTrailer(signatureType, createHash('sha256').update(original).digest('hex')))
    .digest('hex');

const TOKEN_PATH = '/oauth2/authorization-server/oauth/token';
const SIGN_PATH = '/signstash/einvoice-integration-client-ws/api/v0/document/sign/base64';

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
};

/** Decoded bytes a request may keep in memory; beyond that its documents go to temp files. */
const REQUEST_MEMORY_BUDGET = 32 * 1024 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface IncomingDoc {
  externalReference: string;
  name: string;
  contentType: string;
  signatureType: string;
  content: SpillSink;
  size: number;
  sha256: string;
  /** 'real' mode: the signed document, in the request's temp dir. */
  signedFile?: string;
}

export class FakeSignstash {
  private server: http.Server | undefined;
  private readonly opts: Required<Omit<FakeSignstashOptions, 'host' | 'port' | 'tls' | 'certificateDir' | 'clients'>> & {
    host: string;
    port: number;
    tls: https.ServerOptions | undefined;
    certificateDir: string | undefined;
  };
  /** The client services by clientId, in declaration order. */
  private readonly clients = new Map<string, FakeClient>();
  /** True when built from `clients` (each keeps its development certificate in a directory of its own). */
  private readonly multiClient: boolean;
  private readonly faults: (Fault & { left: number })[] = [];
  /** Token → its expiry and the client it was issued to. */
  private readonly tokens = new Map<string, { expiresAt: number; clientId: string }>();
  private readonly records: RequestRecord[] = [];
  private rejectNames = new Set<string>();
  private rejectUnnamed = false;
  private outage: Outage | undefined;
  private tmpDir = '';
  private nextId = 1;
  private stopPromise: Promise<void> | undefined;
  tokenRequests = 0;
  /** Sign requests being handled now. */
  signing = 0;
  url = '';

  constructor(opts: FakeSignstashOptions = {}) {
    this.opts = {
      host: opts.host ?? '127.0.0.1',
      port: opts.port ?? 0,
      clientId: opts.clientId ?? 'signspool',
      clientSecret: opts.clientSecret ?? 'signspool-secret',
      perRequestMs: opts.perRequestMs ?? 100,
      bytesPerSec: opts.bytesPerSec ?? 50e6,
      tokenTtlS: opts.tokenTtlS ?? 86399,
      tls: opts.tls,
      signatures: opts.signatures ?? 'trailer',
      certificateDir: opts.certificateDir,
    };
    this.multiClient = opts.clients !== undefined;
    const declared = opts.clients ?? [{ clientId: this.opts.clientId, clientSecret: this.opts.clientSecret }];
    if (declared.length === 0) throw new Error("the fake Sign'Stash needs at least one client service");
    for (const c of declared) this.addClient(c);
    const first = declared[0];
    if (first) {
      this.opts.clientId = first.clientId;
      this.opts.clientSecret = first.clientSecret;
    }
  }

  private addClient(c: FakeClientOptions): FakeClient {
    const client: FakeClient = {
      clientId: c.clientId,
      clientSecret: c.clientSecret,
      state: c.state ?? 'active',
      keyFile: c.keyFile,
      certFile: c.certFile,
      signer: undefined,
      tokenRequests: 0,
      calls: 0,
      documentsPerCall: [],
      refused: 0,
    };
    this.clients.set(c.clientId, client);
    return client;
  }

  /** 'real' mode: loads (or generates) the certificate `client` signs with. */
  private async loadSigner(client: FakeClient): Promise<void> {
    if (this.opts.signatures !== 'real' || client.signer) return;
    const base = this.opts.certificateDir ?? this.tmpDir;
    const identity = await loadOrCreateSigningIdentity({
      dataDir: this.multiClient ? path.join(base, 'clients', encodeURIComponent(client.clientId)) : base,
      keyFile: client.keyFile,
      certFile: client.certFile,
      logger: silentLogger(),
    });
    client.signer = { identity, documents: new DocumentSigner(identity, { cadesAttached: false }) };
  }

  /**
   * Adds a client service or changes one (rotate its secret, make it inactive or uncertified).
   * Tokens already issued stay valid until they expire, as with a real authorization server.
   */
  async setClient(clientId: string, change: { secret?: string; state?: ClientState; keyFile?: string; certFile?: string }): Promise<void> {
    let client = this.clients.get(clientId);
    if (!client) {
      if (change.secret === undefined) throw new Error(`fake Sign'Stash: a new client service (${clientId}) needs a secret`);
      client = this.addClient({ clientId, clientSecret: change.secret });
    }
    if (change.secret !== undefined) client.clientSecret = change.secret;
    if (change.state !== undefined) client.state = change.state;
    if (change.keyFile !== undefined || change.certFile !== undefined) {
      client.keyFile = change.keyFile;
      client.certFile = change.certFile;
      client.signer = undefined;
    }
    if (this.tmpDir) await this.loadSigner(client);
  }

  /** Each client service's state and counters (no secret). */
  clientViews(): FakeClientView[] {
    return [...this.clients.values()].map((c) => ({
      clientId: c.clientId,
      state: c.state,
      tokenRequests: c.tokenRequests,
      calls: c.calls,
      documentsPerCall: [...c.documentsPerCall],
      refused: c.refused,
    }));
  }

  /** The state and counters of one client service. */
  client(clientId: string): FakeClientView {
    const view = this.clientViews().find((c) => c.clientId === clientId);
    if (!view) throw new Error(`fake Sign'Stash: no client service ${clientId}`);
    return view;
  }

  /** 'real' mode: the certificate (PEM) a client service signs with (default: the first). */
  certificatePem(clientId = this.opts.clientId): string {
    const pem = this.clients.get(clientId)?.signer?.identity.certificatePem;
    if (!pem) throw new Error(`fake Sign'Stash: no certificate for ${clientId} (real signatures only)`);
    return pem;
  }

  get authUrl(): string {
    return `${this.url}/oauth2/authorization-server`;
  }

  get businessUrl(): string {
    return `${this.url}/signstash/einvoice-integration-client-ws`;
  }

  /** A Sign'Stash signer configuration pointing at this fake, with short timeouts (tests that build the signer directly). */
  signerConfig(over: Partial<Config['signstash']> = {}, clientId = this.opts.clientId): Config['signstash'] {
    return {
      url: this.businessUrl,
      authUrl: this.authUrl,
      clientId,
      clientSecret: this.secretOf(clientId),
      tokenSkewMs: 1000,
      connectTimeoutMs: 2000,
      headersTimeoutMs: 10_000,
      bodyTimeoutMs: 10_000,
      applyTimestamp: false,
      reason: undefined,
      location: undefined,
      ...over,
    };
  }

  /** The environment that points signspool at this fake (SIGNER=signstash). */
  clientEnv(extra: Record<string, string> = {}, clientId = this.opts.clientId): Record<string, string> {
    return {
      SIGNER: 'signstash',
      SIGNSTASH_URL: this.businessUrl,
      SIGNSTASH_AUTH_URL: this.authUrl,
      SIGNSTASH_CLIENT_ID: clientId,
      SIGNSTASH_CLIENT_SECRET: this.secretOf(clientId),
      ...extra,
    };
  }

  /** The current secret of a client service (tests that write it into a signers file). */
  secretOf(clientId: string): string {
    const client = this.clients.get(clientId);
    if (!client) throw new Error(`fake Sign'Stash: no client service ${clientId}`);
    return client.clientSecret;
  }

  async start(): Promise<{ url: string }> {
    this.tmpDir = await mkdtemp(path.join(os.tmpdir(), `fake-signstash-${process.pid}-`));
    for (const client of this.clients.values()) await this.loadSigner(client);
    const handler: http.RequestListener = (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) json(res, 500, { errorCode: 'INTERNAL', errorMessage: err instanceof Error ? err.message : 'error' });
        else res.destroy();
      });
    };
    this.server = this.opts.tls ? https.createServer(this.opts.tls, handler) : http.createServer(handler);
    this.server.requestTimeout = 0;
    this.server.keepAliveTimeout = 30_000;
    const server = this.server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const addr = server.address() as AddressInfo;
    this.url = `${this.opts.tls ? 'https' : 'http'}://${this.opts.host === '0.0.0.0' ? '127.0.0.1' : this.opts.host}:${addr.port}`;
    return { url: this.url };
  }

  stop(): Promise<void> {
    this.stopPromise ??= (async () => {
      const server = this.server;
      if (server) {
        await new Promise<void>((r) => {
          server.close(() => r());
          server.closeAllConnections();
        });
      }
      if (this.tmpDir) await rm(this.tmpDir, { recursive: true, force: true });
    })();
    return this.stopPromise;
  }

  requests(): RequestRecord[] {
    return [...this.records];
  }

  injectFault(f: Fault): void {
    this.faults.push({ ...f, left: f.times ?? 1 });
  }

  /** Rejects (400 INVALID_DOCUMENT) every request carrying a document so named; `unnamed`: without saying which one. */
  setRejectDocumentsNamed(names: string[], opts: { unnamed?: boolean } = {}): void {
    this.rejectNames = new Set(names);
    this.rejectUnnamed = opts.unnamed ?? false;
  }

  /** Every token issued so far becomes invalid (as if expired). */
  expireTokens(): void {
    this.tokens.clear();
  }

  setLatency(l: { perRequestMs?: number; bytesPerSec?: number }): void {
    if (l.perRequestMs !== undefined) this.opts.perRequestMs = l.perRequestMs;
    if (l.bytesPerSec !== undefined) this.opts.bytesPerSec = l.bytesPerSec;
  }

  // --- Chaos suite (test/chaos): an outage bounded in time rather than in requests. ---

  /** Every sign request fails with `kind` (server_error: `status`, default 503) for `durationMs`. */
  setOutage(durationMs: number, kind: Outage['kind'] = 'server_error', status = 503): void {
    this.outage = { until: Date.now() + durationMs, kind, status };
  }

  /** Ends the outage now. */
  endOutage(): void {
    this.outage = undefined;
  }

  private outageFault(): Fault | undefined {
    const o = this.outage;
    if (!o) return undefined;
    if (Date.now() >= o.until) {
      this.outage = undefined;
      return undefined;
    }
    return { kind: o.kind, status: o.status, retryAfterS: 1 };
  }

  // --- end of the chaos suite's outage ---

  /** Forgets records and faults (tokens stay valid). */
  reset(): void {
    this.records.length = 0;
    this.faults.length = 0;
    this.outage = undefined;
    this.rejectNames.clear();
  }

  private takeFault(kinds: FaultKind[], clientId: string): Fault | undefined {
    const i = this.faults.findIndex((f) => kinds.includes(f.kind) && (f.clientId === undefined || f.clientId === clientId));
    const f = this.faults[i];
    if (!f) return undefined;
    f.left -= 1;
    if (f.left <= 0) this.faults.splice(i, 1);
    return f;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'POST' && url === TOKEN_PATH) return this.token(req, res);
    if (req.method === 'POST' && url === SIGN_PATH) {
      this.signing += 1;
      return this.sign(req, res).finally(() => (this.signing -= 1));
    }
    if (req.method === 'GET' && url === '/_fake/requests') return json(res, 200, this.records);
    if (req.method === 'POST' && url === '/_fake/sink') {
      // Drains a body of any size: the transport baseline of the benchmarks.
      let bytes = 0;
      for await (const chunk of req) bytes += (chunk as Buffer).length;
      return json(res, 200, { bytes });
    }
    if (req.method === 'GET' && url === '/_fake/certificate') {
      const clientId = new URL(req.url ?? '/', 'http://fake').searchParams.get('client') ?? this.opts.clientId;
      const signer = this.clients.get(clientId)?.signer;
      if (!signer) return json(res, 404, { errorCode: 'NOT_FOUND', errorMessage: 'the fake signs for real only with signatures: real (and a known client)' });
      res.writeHead(200, { 'content-type': 'application/x-pem-file' });
      res.end(signer.identity.certificatePem);
      return;
    }
    if (req.method === 'GET' && url === '/_fake/stats') return json(res, 200, { tokenRequests: this.tokenRequests, signRequests: this.records.length });
    if (req.method === 'GET' && url === '/_fake/clients') return json(res, 200, this.clientViews());
    if (req.method === 'POST' && url.startsWith('/_fake/clients/')) {
      const change = JSON.parse((await readSmallBody(req)) || '{}') as { secret?: string; state?: ClientState };
      await this.setClient(decodeURIComponent(url.slice('/_fake/clients/'.length)), {
        ...(change.secret === undefined ? {} : { secret: change.secret }),
        ...(change.state === undefined ? {} : { state: change.state }),
      });
      return json(res, 200, { ok: true });
    }
    if (req.method === 'POST' && url.startsWith('/_fake/')) {
      const body = await readSmallBody(req);
      if (url === '/_fake/faults') this.injectFault(JSON.parse(body || '{}') as Fault);
      else if (url === '/_fake/reset') this.reset();
      else if (url === '/_fake/tokens/expire') this.expireTokens();
      else if (url === '/_fake/latency') this.setLatency(JSON.parse(body || '{}') as { perRequestMs?: number; bytesPerSec?: number });
      else if (url === '/_fake/reject-documents') this.setRejectDocumentsNamed(JSON.parse(body || '[]') as string[]);
      else return json(res, 404, { errorCode: 'NOT_FOUND' });
      return json(res, 200, { ok: true });
    }
    req.resume();
    json(res, 404, { errorCode: 'NOT_FOUND', errorMessage: `no route ${req.method} ${url}` });
  }

  private async token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.tokenRequests += 1;
    const body = await readSmallBody(req);
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const decoded = basic === undefined ? '' : Buffer.from(basic, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const client = colon < 0 ? undefined : this.clients.get(decoded.slice(0, colon));
    if (client) client.tokenRequests += 1;
    if (this.takeFault(['oauth_invalid_client'], client?.clientId ?? '') || !client || decoded.slice(colon + 1) !== client.clientSecret) {
      return json(res, 401, { error: 'invalid_client', error_description: 'Bad client credentials' });
    }
    if (new URLSearchParams(body).get('grant_type') !== 'client_credentials') {
      return json(res, 400, { error: 'unsupported_grant_type' });
    }
    const token = randomBytes(24).toString('base64url');
    this.tokens.set(token, { expiresAt: Date.now() + this.opts.tokenTtlS * 1000, clientId: client.clientId });
    json(res, 200, { access_token: token, token_type: 'bearer', expires_in: this.opts.tokenTtlS, scope: 'read write', jti: randomUUID() });
  }

  private async sign(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const socket = req.socket;
    const record: RequestRecord = {
      id: this.nextId++,
      clientId: '',
      at: started,
      externalReference: '',
      documents: 0,
      bytes: 0,
      outcome: 'ok',
      status: 200,
      durationMs: 0,
      docs: [],
    };
    const finish = (outcome: RequestRecord['outcome'], status: number): void => {
      record.outcome = outcome;
      record.status = status;
      record.durationMs = Date.now() - started;
      this.records.push(record);
      const client = this.clients.get(record.clientId);
      if (!client) return;
      if (outcome === 'ok') {
        client.calls += 1;
        client.documentsPerCall.push(record.documents);
      } else client.refused += 1;
    };
    const docs: IncomingDoc[] = [];
    const dir = path.join(this.tmpDir, `req-${record.id}`);
    const sinks: SpillSink[] = [];
    const budget = { left: REQUEST_MEMORY_BUDGET };
    try {
      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      const issued = bearer ? this.tokens.get(bearer) : undefined;
      const client = issued ? this.clients.get(issued.clientId) : undefined;
      record.clientId = client?.clientId ?? '';
      // Read (and decode) the whole request first, as the real service would.
      try {
        await this.readSignRequest(req, dir, docs, record, sinks, budget);
      } catch (err) {
        // The client went away (reading the body stops early on a malformed request too, so the
        // request stream being destroyed says nothing; its connection being closed does).
        if (socket.destroyed) {
          finish('aborted', 0);
          return;
        }
        finish('bad_request', 400);
        return json(res, 400, { errorCode: 'INVALID_REQUEST', errorMessage: err instanceof Error ? err.message : 'invalid request' });
      }
      record.documents = docs.length;
      record.bytes = docs.reduce((n, d) => n + d.size, 0);
      if (!issued || !client || issued.expiresAt < Date.now() || this.takeFault(['token_invalid'], client.clientId)) {
        finish('unauthorized', 401);
        return json(res, 401, { errorCode: 'INVALID_TOKEN', errorMessage: 'OAuth token is invalid' });
      }
      // A client service's state answers before any injected fault, as the real service checks it first.
      const fault: Fault | undefined =
        client.state === 'inactive'
          ? { kind: 'service_inactive' }
          : client.state === 'no-certificate'
            ? { kind: 'certificate_not_provisioned' }
            : (this.outageFault() ??
              this.takeFault(
                ['service_inactive', 'certificate_not_provisioned', 'rate_limit', 'server_error', 'reset', 'slow', ...PARTIAL_FAULTS],
                client.clientId,
              ));
      switch (fault?.kind) {
        case 'service_inactive':
          finish(fault.kind, 403);
          return json(res, 403, { errorCode: 'CLIENT_SERVICE_NOT_ACTIVE', errorMessage: 'Client service or issuer is not in active status' });
        case 'certificate_not_provisioned':
          finish(fault.kind, 422);
          return json(res, 422, { errorCode: 'CERTIFICATE_NOT_PROVISIONED', errorMessage: 'Client service has no valid digital certificate' });
        case 'rate_limit':
          finish(fault.kind, 429);
          return json(res, 429, { errorCode: 'TOO_MANY_REQUESTS', errorMessage: 'slow down' }, { 'retry-after': String(fault.retryAfterS ?? 1) });
        case 'server_error':
          finish(fault.kind, fault.status ?? 503);
          return json(res, fault.status ?? 503, { errorCode: 'UNAVAILABLE', errorMessage: 'temporarily unavailable' });
        case 'reset':
          finish(fault.kind, 0);
          req.socket.destroy();
          return;
        case 'slow':
          await sleep(fault.delayMs ?? 5000);
          break;
        default:
          break;
      }
      const rejected = docs.find((d) => this.rejectNames.has(d.name));
      if (rejected) {
        finish('rejected', 400);
        if (this.rejectUnnamed) return json(res, 400, { errorCode: 'INVALID_DOCUMENT', errorMessage: 'A document of the request could not be signed' });
        return json(res, 400, {
          errorCode: 'INVALID_DOCUMENT',
          errorMessage: `Document ${rejected.name} could not be signed`,
          externalReference: rejected.externalReference,
        });
      }
      // The latency model.
      await sleep(this.opts.perRequestMs + (record.bytes / this.opts.bytesPerSec) * 1000);
      if (res.destroyed) {
        finish('aborted', 0);
        return;
      }
      if (client.signer) {
        const bad = await this.signAll(client.signer.documents, docs, dir);
        if (bad) {
          finish('rejected', 400);
          return json(res, 400, {
            errorCode: 'INVALID_DOCUMENT',
            errorMessage: `Document ${bad.name} could not be signed`,
            externalReference: bad.externalReference,
          });
        }
      }
      record.docs = docs.map((d) => ({ externalReference: d.externalReference, name: d.name, size: d.size, sha256In: d.sha256, sha256Out: '' }));
      const partial = fault && PARTIAL_FAULTS.includes(fault.kind) ? fault : undefined;
      const first = record.docs[0];
      if (partial && first) {
        first.fault = partial.kind;
        if (partial.kind === 'document_error') first.errorCode = partial.errorCode ?? 'UNAVAILABLE';
      }
      const completed = await this.respond(res, docs, record, partial).then(
        () => true,
        () => false,
      );
      finish(partial ? partial.kind : completed ? 'ok' : 'aborted', completed ? 200 : 0);
    } finally {
      await Promise.all(sinks.map((s) => s.dispose()));
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async readSignRequest(
    req: http.IncomingMessage,
    dir: string,
    docs: IncomingDoc[],
    record: RequestRecord,
    sinks: SpillSink[],
    budget: { left: number },
  ): Promise<void> {
    interface Cur {
      sink?: SpillSink | undefined;
      decoded?: { size: number; sha256: string };
      externalReference?: string;
      name?: string;
      contentType?: string;
      signatureType?: string;
    }
    let cur: Cur = {};
    const isDoc = (p: readonly (string | number)[]) => p.length >= 2 && p[0] === 'documents' && typeof p[1] === 'number';
    const sinkOf = (c: Cur): SpillSink => {
      if (!c.sink) sinks.push((c.sink = new SpillSink(path.join(dir, `doc-${docs.length}`), budget)));
      return c.sink;
    };
    await readJsonStream(req, {
      streamString: (p) => isDoc(p) && p[2] === 'documentRequest' && p[3] === 'base64Content',
      onStringChunk: async (_p, chunk) => {
        await sinkOf(cur).push(chunk);
      },
      onStringEnd: async () => {
        cur.decoded = await sinkOf(cur).end();
      },
      onValue: (p, v) => {
        if (p.length === 1 && p[0] === 'externalReference' && typeof v === 'string') record.externalReference = v;
        if (!isDoc(p) || typeof v !== 'string') return;
        const field = `${String(p[2])}.${String(p[3])}`;
        if (field === 'documentRequest.externalReference') cur.externalReference = v;
        else if (field === 'documentRequest.name') cur.name = v;
        else if (field === 'documentRequest.contentType') cur.contentType = v;
        else if (field === 'signatureInfo.signatureType') cur.signatureType = v;
      },
      onObjectEnd: (p) => {
        if (!(p.length === 2 && p[0] === 'documents')) return;
        if (
          !cur.sink ||
          !cur.decoded ||
          !cur.externalReference ||
          !cur.name ||
          !cur.signatureType ||
          !['PAdES', 'CAdES', 'XAdES'].includes(cur.signatureType)
        ) {
          throw new Error(`document ${String(p[1])}: base64Content, externalReference, name and signatureInfo.signatureType are required`);
        }
        if (!cur.sink.wellFormed) throw new Error(`document ${String(p[1])}: base64Content is not valid base64`);
        docs.push({
          externalReference: cur.externalReference,
          name: cur.name,
          contentType: cur.contentType ?? 'application/octet-stream',
          signatureType: cur.signatureType,
          content: cur.sink,
          size: cur.decoded.size,
          sha256: cur.decoded.sha256,
        });
        cur = {};
      },
    });
    if (docs.length === 0) throw new Error('documents must not be empty');
  }

  /** 'real' mode: decodes and signs every document into the request's temp dir; returns the first that cannot be signed. */
  private async signAll(signer: DocumentSigner, docs: IncomingDoc[], dir: string): Promise<IncomingDoc | undefined> {
    await mkdir(dir, { recursive: true });
    for (const [i, d] of docs.entries()) {
      const original = path.join(dir, `original-${i}`);
      await pipeline(decodeBase64(d.content.signedBase64(Buffer.alloc(0))), createWriteStream(original));
      try {
        const signedFile = path.join(dir, `signed-${i}`);
        const fd = openSync(signedFile, 'w');
        try {
          await signer.sign(
            d.signatureType as SignatureType,
            { path: original, name: d.name },
            { write: (...chunks) => writeAll(fd, chunks) },
            new AbortController().signal,
          );
        } finally {
          closeSync(fd);
        }
        d.signedFile = signedFile;
      } catch (err) {
        if (isSignspoolError(err) && err.code === 'DOCUMENT_NOT_SIGNABLE') return d;
        throw err;
      }
    }
    return undefined;
  }

  /** Streams {"documentList":[...]} with each signed document base64-encoded on the fly (`partial`: see PARTIAL_FAULTS). */
  private async respond(res: http.ServerResponse, docs: IncomingDoc[], record: RequestRecord, partial?: Fault): Promise<void> {
    res.writeHead(200, { 'content-type': 'application/json' });
    const write = (chunk: Buffer | string): Promise<void> =>
      new Promise((resolve, reject) => {
        if (res.destroyed) return reject(new Error('client gone'));
        if (res.write(chunk)) return resolve();
        const onDrain = (): void => {
          res.off('close', onClose);
          resolve();
        };
        const onClose = (): void => {
          res.off('drain', onDrain);
          reject(new Error('client gone'));
        };
        res.once('drain', onDrain);
        res.once('close', onClose);
      });
    await write('{"documentList":[');
    let sep = '';
    for (const [i, d] of docs.entries()) {
      const trailer = fakeTrailer(d.signatureType, d.sha256);
      const head = `${sep}{"externalReference":${JSON.stringify(d.externalReference)},"name":${JSON.stringify(d.name)}`;
      if (i === 0 && partial?.kind === 'omit_document') continue;
      sep = ',';
      if (i === 0 && partial?.kind === 'document_error') {
        await write(`${head},"errorCode":${JSON.stringify(partial.errorCode ?? 'UNAVAILABLE')},"errorMessage":"the document could not be signed now"}`);
        continue;
      }
      await write(`${head},"signedContent":"`);
      if (i === 0 && (partial?.kind === 'truncated' || partial?.kind === 'stall_body')) {
        // A few whole base64 quads of the content, then the answer breaks off.
        for await (const piece of d.content.signedBase64(trailer)) {
          await write(piece.subarray(0, Math.min(piece.length, 64)));
          break;
        }
        if (partial.kind === 'stall_body') {
          await sleep(partial.delayMs ?? 5000);
          res.destroy();
          return;
        }
        await new Promise<void>((resolve) => res.end(() => resolve()));
        return;
      }
      const rec = record.docs[i];
      if (d.signedFile) {
        const hash = createHash('sha256');
        for await (const piece of base64Encode(hashed(createReadStream(d.signedFile), hash))) await write(piece);
        if (rec) rec.sha256Out = hash.digest('hex');
      } else {
        for await (const piece of d.content.signedBase64(trailer)) await write(piece);
        // The signed output is the content + the trailer: its hash continues the one taken while decoding.
        if (rec) rec.sha256Out = d.content.signedSha256(trailer);
      }
      await write('"}');
    }
    await new Promise<void>((resolve) => res.end(']}', () => resolve()));
  }
}

async function* hashed(source: AsyncIterable<Buffer>, hash: ReturnType<typeof createHash>): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    hash.update(chunk);
    yield chunk;
  }
}

/** Decodes base64 text pieces of any length (carrying the len % 4 rest). */
async function* decodeBase64(text: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let carry = '';
  for await (const piece of text) {
    const all = carry + piece.toString('latin1');
    const usable = all.length - (all.length % 4);
    if (usable > 0) yield Buffer.from(all.slice(0, usable), 'base64');
    carry = all.slice(usable);
  }
  if (carry) yield Buffer.from(carry, 'base64');
}

const readSmallBody = async (req: http.IncomingMessage, limit = 64 * 1024): Promise<string> => {
  let text = '';
  for await (const chunk of req) {
    text += (chunk as Buffer).toString('utf8');
    if (text.length > limit) throw new Error('body too large');
  }
  return text;
};
