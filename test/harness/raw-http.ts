/**
 * Raw HTTP/1.1 over a TCP socket, for tests that need what fetch and http.request will not do:
 * bodies that stop half-way, half-closed sockets, malformed framing. Also what the api holds in
 * the spool (open descriptors of this process, files under incoming/).
 */
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Parses the first response in a socket's received bytes, given as latin1 (Content-Length bodies; enough for JSON answers). */
export const parseResponse = (raw: string): RawResponse | undefined => {
  const end = raw.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const [statusLine = '', ...lines] = raw.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? NaN);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const length = Number(headers['content-length'] ?? NaN);
  const body = raw.slice(end + 4);
  // `raw` holds bytes as latin1 characters: one character per byte.
  if (Number.isFinite(length) && body.length < length) return undefined;
  const bytes = Buffer.from(body, 'latin1');
  return { status, headers, body: (Number.isFinite(length) ? bytes.subarray(0, length) : bytes).toString('utf8') };
};

export interface RawConnection {
  socket: net.Socket;
  /** The first complete response, or undefined when the server closed without one. */
  response: Promise<RawResponse | undefined>;
  /** Resolves when the socket has closed (either side). */
  closed: Promise<void>;
  /** Resolves when the server has ended its side (FIN) or the socket closed. */
  ended: Promise<void>;
}

/** Opens a connection to `baseUrl` and writes `chunks`; `end` half-closes the socket after them. */
export const rawConnect = (baseUrl: string, chunks: (string | Buffer)[], opts: { end?: boolean } = {}): RawConnection => {
  const url = new URL(baseUrl);
  const socket = net.connect({ host: url.hostname, port: Number(url.port), allowHalfOpen: true });
  let received = '';
  let resolveResponse: (r: RawResponse | undefined) => void = () => undefined;
  const response = new Promise<RawResponse | undefined>((resolve) => (resolveResponse = resolve));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => resolve());
    socket.once('close', () => resolve());
  });
  socket.on('data', (d: Buffer) => {
    received += d.toString('latin1');
    // Interim answers (100 Continue) come before the response.
    for (let m = /^HTTP\/1\.[01] 1\d\d[^\r]*\r\n(?:[^\r]+\r\n)*\r\n/.exec(received); m; m = /^HTTP\/1\.[01] 1\d\d[^\r]*\r\n(?:[^\r]+\r\n)*\r\n/.exec(received))
      received = received.slice(m[0].length);
    const parsed = parseResponse(received);
    if (parsed) resolveResponse(parsed);
  });
  socket.on('error', () => undefined);
  socket.once('close', () => resolveResponse(parseResponse(received)));
  socket.once('connect', () => {
    for (const c of chunks) socket.write(c);
    if (opts.end) socket.end();
  });
  return { socket, response, closed, ended };
};

/** A multipart POST /v1/operations request head for `bodyLength` bytes of body. */
export const uploadHead = (key: string, boundary: string, bodyLength: number | undefined, extra: Record<string, string> = {}): string => {
  const headers: Record<string, string> = {
    host: 'localhost',
    authorization: `Bearer ${key}`,
    'content-type': `multipart/form-data; boundary=${boundary}`,
    ...(bodyLength === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(bodyLength) }),
    ...extra,
  };
  return `POST /v1/operations HTTP/1.1\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
};

/** Regular files under `root` this process holds open (read through /proc/self/fd). */
export const openFilesUnder = (root: string): string[] => {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(root + path.sep) && statSync(`/proc/self/fd/${fd}`).isFile()) out.push(target);
    } catch {
      // closed while we looked
    }
  }
  return out;
};

/** Every file under spool/incoming/ (its shard directories). */
export const incomingFiles = async (spoolDir: string): Promise<string[]> => {
  const root = path.join(spoolDir, 'incoming');
  const files: string[] = [];
  for (const shard of await readdir(root).catch(() => [] as string[])) files.push(...(await readdir(path.join(root, shard)).catch(() => [] as string[])));
  return files;
};

/** One request on a new connection (with `body`: its Content-Length set); the raw answer (head and body) once complete. */
export const rawRequest = (baseUrl: string, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<string> =>
  new Promise((resolve, reject) => {
    const url = new URL(baseUrl);
    const socket = net.connect({ host: url.hostname, port: Number(url.port) });
    let received = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const text = received.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(text)?.[1] ?? NaN);
      if (end !== -1 && received.length >= end + 4 + length) {
        socket.destroy();
        resolve(received.toString('utf8'));
      }
    });
    // A refusal may close the connection while the body is still being sent: what was answered counts, else 'close' rejects.
    socket.on('error', () => undefined);
    socket.once('close', () => reject(new Error(`connection closed before a complete answer: ${received.toString('latin1')}`)));
    const all = body === undefined ? headers : { 'content-length': String(body.length), ...headers };
    const head = Object.entries({ host: url.host, ...all }).map(([k, v]) => `${k}: ${v}\r\n`);
    socket.write(`${method} ${path} HTTP/1.1\r\n${head.join('')}\r\n`);
    if (body !== undefined) socket.write(body);
  });
