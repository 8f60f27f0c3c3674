/**
 * A JSON answer with the bytes and headers res.json gives it (`application/json; charset=utf-8`,
 * Content-Length), written directly: express's send also sets a charset by parsing the type,
 * weighs an ETag (off in this app) and checks the request's freshness, for every answer. A HEAD
 * or a conditional request (If-None-Match, If-Modified-Since: express may answer it 304) still
 * goes through res.json.
 */
import type { Request, Response } from 'express';

/** The Content-Type res.json gives JSON (the status read's fast path, read/fast-status.ts, writes it too). */
export const JSON_TYPE = 'application/json; charset=utf-8';

export const sendJson = (req: Request, res: Response, body: unknown): void => {
  if (req.method !== 'GET' || req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined) {
    res.json(body);
    return;
  }
  const text = JSON.stringify(body);
  res.setHeader('Content-Type', JSON_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
};
