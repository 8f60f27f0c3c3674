/** JSON answers written directly (api/http/json.ts): what res.json sends, and conditional requests left to it. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Request, Response } from 'express';
import { describe, expect, it, vi } from 'vitest';
import { sendJson } from '@signspool/api/http/json';

const body = { id: 'op_1', name: 'résumé ✓', documents: [{ n: 1 }], none: null };

describe('sendJson', () => {
  it("answers 200 with res.json's type (charset included), the length in bytes and the JSON", async () => {
    const server = http.createServer((req, res) => sendJson(req as Request, res as Response, body));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      const text = await r.text();
      expect(r.status).toBe(200);
      expect(r.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(JSON.stringify(body))));
      expect(text).toBe(JSON.stringify(body));
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it.each([
    { method: 'GET', headers: { 'if-none-match': '*' } },
    { method: 'GET', headers: { 'if-modified-since': 'Mon, 07 Dec 2026 12:00:00 GMT' } },
    { method: 'HEAD', headers: {} },
  ])('leaves a conditional request or a HEAD to res.json (%o)', (req) => {
    const json = vi.fn();
    const end = vi.fn();
    sendJson(req as unknown as Request, { json, end, setHeader: vi.fn() } as unknown as Response, body);
    expect(json).toHaveBeenCalledWith(body);
    expect(end).not.toHaveBeenCalled();
  });
});
