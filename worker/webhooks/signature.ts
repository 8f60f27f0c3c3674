/**
 * Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256(secret, id.timestamp.body)>`,
 * one `v1,` entry per active secret (space-separated) so receivers keep verifying during rotation.
 * Secrets are `whsec_` + base64 of the key bytes.
 */
import { createHmac } from 'node:crypto';

export const secretKey = (secret: string): Buffer => Buffer.from(secret.replace(/^whsec_/, ''), 'base64');

export const signPayload = (secret: string, id: string, timestampSeconds: number, body: string): string =>
  createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64');

export const webhookHeaders = (secrets: readonly string[], id: string, timestampSeconds: number, body: string): Record<string, string> => ({
  'webhook-id': id,
  'webhook-timestamp': String(timestampSeconds),
  'webhook-signature': secrets.map((s) => `v1,${signPayload(s, id, timestampSeconds, body)}`).join(' '),
});
