/**
 * Webhook signing secrets (Standard Webhooks `whsec_` keys), per tenant, newest first: the
 * WEBHOOK_SECRETS syntax, and the secret a new user gets. Without WEBHOOK_SECRETS (and without
 * API_KEYS, i.e. the generated tenant `default`), the api keeps one for `default` in
 * `<DATA_DIR>/webhook-secrets`, generated on first start and printed once, so webhooks work from
 * the first try. Unlike an API key the secret itself is kept (it signs every delivery): the file
 * is written with mode 0600.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface WebhookSecretEntry {
  tenant: string;
  /** Newest first; during rotation every secret signs. */
  secrets: string[];
}

const SECRET = /^whsec_[A-Za-z0-9+/]{16,}={0,2}$/;
const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

/** `tenant:whsec_…[|whsec_…],…`; a message (never echoing a secret) when malformed. */
export const parseWebhookSecretList = (raw: string): WebhookSecretEntry[] | string => {
  const out: WebhookSecretEntry[] = [];
  for (const part of raw.split(/[,\s]+/).filter(Boolean)) {
    const [tenant, list] = part.split(':');
    const secrets = (list ?? '').split('|').filter(Boolean);
    if (!tenant || !TENANT.test(tenant) || secrets.length === 0 || !secrets.every((s) => SECRET.test(s))) {
      return 'entries must be tenant:whsec_<base64>[|whsec_<base64>], separated by commas';
    }
    out.push({ tenant, secrets });
  }
  return out;
};

export const generateWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`;

export interface ResolvedWebhookSecrets {
  entries: WebhookSecretEntry[];
  /** Set only when this call generated the secret: print it once, never log it. */
  generated?: { tenant: string; secret: string; file: string };
}

/**
 * WEBHOOK_SECRETS when configured; else the secrets kept in `<dataDir>/webhook-secrets`; else, when
 * `generate` (the api with generated API keys), a new secret for tenant `default`, kept there.
 * Two processes starting at once on one data directory keep the same secret (exclusive create).
 */
export const resolveWebhookSecrets = async (configured: WebhookSecretEntry[], dataDir: string, generate: boolean): Promise<ResolvedWebhookSecrets> => {
  if (configured.length > 0) return { entries: configured };
  const file = path.join(dataDir, 'webhook-secrets');
  const read = async (): Promise<WebhookSecretEntry[] | undefined> => {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const lines = text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const entries = parseWebhookSecretList(lines.join(','));
    if (typeof entries === 'string') throw new Error(`${file}: ${entries}`);
    return entries;
  };
  const kept = await read();
  if (kept !== undefined || !generate) return { entries: kept ?? [] };
  const secret = generateWebhookSecret();
  await mkdir(dataDir, { recursive: true });
  try {
    await writeFile(file, `# tenant:whsec_… (newest first) — generated on first start; WEBHOOK_SECRETS replaces this file\ndefault:${secret}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { entries: (await read()) ?? [] };
  }
  return { entries: [{ tenant: 'default', secrets: [secret] }], generated: { tenant: 'default', secret, file } };
};
