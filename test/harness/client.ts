/** Small HTTP helpers for tests: submit, poll with a deadline, download. */
import { expect } from 'vitest';
import { isTerminal } from '@signspool/shared/operations/states';
import type { OperationView } from '@signspool/shared/operations/view';

export type { OperationView };

export interface UploadFile {
  name: string;
  content: Buffer | string;
  type?: string;
}

export const auth = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

export const submit = async (
  apiUrl: string,
  key: string,
  files: UploadFile[],
  fields: Record<string, string> = {},
): Promise<{ status: number; body: OperationView & Record<string, unknown>; location: string | null; headers: Headers }> => {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  for (const f of files) form.append('file', new Blob([f.content], { type: f.type ?? 'application/octet-stream' }), f.name);
  const res = await fetch(`${apiUrl}/v1/operations`, { method: 'POST', headers: auth(key), body: form });
  const body = (await res.json()) as OperationView & Record<string, unknown>;
  return { status: res.status, body, location: res.headers.get('location'), headers: res.headers };
};

export const getOperation = async (apiUrl: string, key: string, id: string): Promise<{ status: number; body: OperationView & Record<string, unknown> }> => {
  const res = await fetch(`${apiUrl}/v1/operations/${id}`, { headers: auth(key) });
  return { status: res.status, body: (await res.json()) as OperationView & Record<string, unknown> };
};

/** Long-polls (Prefer: wait) until the operation is terminal; fails the test at the deadline. */
export const waitForTerminal = async (apiUrl: string, key: string, id: string, timeoutMs = 30_000): Promise<OperationView> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = Math.max(1, Math.min(20, Math.ceil((deadline - Date.now()) / 1000)));
    const res = await fetch(`${apiUrl}/v1/operations/${id}`, { headers: { ...auth(key), prefer: `wait=${left}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as OperationView;
    if (isTerminal(body.status)) return body;
    if (Date.now() > deadline) throw new Error(`operation ${id} still ${body.status} after ${timeoutMs} ms`);
  }
};

/** Polls `check` until it returns true; throws at the deadline with `what`. */
export const eventually = async (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

export const download = async (apiUrl: string, key: string, opId: string, docId: string): Promise<{ status: number; body: Buffer; headers: Headers }> => {
  const res = await fetch(`${apiUrl}/v1/operations/${opId}/documents/${docId}`, { headers: auth(key) });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
};
