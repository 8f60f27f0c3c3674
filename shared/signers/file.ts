/**
 * SIGNERS_FILE: the YAML file (JSON is valid YAML) of signing identities and of the tenants that may
 * use them; see docs/signing-identities.md for every field. `loadSignersFile` parses and validates
 * it, checks that every file it names can be read, reads the secret files (clientSecretFile,
 * p12PasswordFile) and builds a SigningIdentities snapshot. Any problem is thrown as ONE line that
 * names the file, the identity or tenant, and the field — never a value: a secret must not reach
 * a log line or an error.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { parse as parseYaml, YAMLError } from 'yaml';
import type { Config } from '../config.js';
import { signatureTypeSchema } from '../queue.js';
import { parseBytes, parseDuration } from '../units.js';
import {
  fingerprintOf,
  SIGNER_NAME_PATTERN,
  SigningIdentities,
  type IdentityLimits,
  type SignatureDefaults,
  type SigningIdentity,
  type TenantSigners,
} from './identities.js';

const TENANT_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Durations and sizes as in the environment (config.ts): a number, or a string with a unit. */
const duration = () =>
  z.union([z.number().int().min(0), z.string()]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be a duration such as 500ms, 30s, 2m' });
      return z.NEVER;
    }
    return ms;
  });

const size = () =>
  z.union([z.number().int().min(1), z.string()]).transform((v, ctx) => {
    const n = typeof v === 'number' ? v : parseBytes(v);
    if (n === undefined || n < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be a size such as 1048576, 20MiB, 1GB' });
      return z.NEVER;
    }
    return n;
  });

const filePath = z.string('must be a file path').trim().min(1, 'must be a file path');

const httpUrl = z.string('must be an http(s) URL').transform((v, ctx) => {
  try {
    const u = new URL(v.trim());
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    if (u.username !== '' || u.password !== '') throw new Error('credentials');
    return u.toString().replace(/\/$/, '');
  } catch {
    ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL without credentials' });
    return z.NEVER;
  }
});

const text = z.string('must be text').max(512, 'must be at most 512 characters');

const fileSchema = (() => {
  const signature = z
    .object({
      type: signatureTypeSchema.optional(),
      reason: text.optional(),
      location: text.optional(),
      applyTimestamp: z.boolean('must be true or false').optional(),
    })
    .strict();
  const limits = z
    .object({
      upstreamConcurrency: z.number('must be a whole number').int('must be a whole number').min(1).max(256).optional(),
      batchMaxDocs: z.number('must be a whole number').int('must be a whole number').min(1).max(10_000).optional(),
      batchMaxBytes: size().optional(),
    })
    .strict();
  const signstash = z
    .object({
      kind: z.literal('signstash'),
      url: httpUrl,
      authUrl: httpUrl,
      clientId: z.string('must be text').trim().min(1, 'must not be empty').max(255),
      clientSecretFile: filePath,
      caFile: filePath.optional(),
      clientCertFile: filePath.optional(),
      clientKeyFile: filePath.optional(),
      tokenSkew: duration().optional(),
      connectTimeout: duration().optional(),
      headersTimeout: duration().optional(),
      bodyTimeout: duration().optional(),
      signature: signature.optional(),
      limits: limits.optional(),
    })
    .strict()
    .superRefine((s, ctx) => {
      if ((s.clientCertFile === undefined) !== (s.clientKeyFile === undefined))
        ctx.addIssue({ code: 'custom', path: ['clientKeyFile'], message: 'clientCertFile and clientKeyFile go together' });
    });
  const local = z
    .object({
      kind: z.literal('local'),
      keyFile: filePath.optional(),
      certFile: filePath.optional(),
      p12File: filePath.optional(),
      p12PasswordFile: filePath.optional(),
      cadesAttached: z.boolean('must be true or false').optional(),
      /** A time-stamp authority for this identity (else TSA_URL's, if set). */
      tsaUrl: httpUrl.optional(),
      signature: signature.optional(),
      limits: limits.optional(),
    })
    .strict()
    .superRefine((l, ctx) => {
      const pem = l.keyFile !== undefined || l.certFile !== undefined;
      if (pem && l.p12File !== undefined) ctx.addIssue({ code: 'custom', path: ['p12File'], message: 'set either p12File or keyFile/certFile, not both' });
      else if (l.p12File === undefined && (l.keyFile === undefined || l.certFile === undefined))
        ctx.addIssue({ code: 'custom', path: [l.keyFile === undefined ? 'keyFile' : 'certFile'], message: 'keyFile and certFile (or p12File) are required' });
      if (l.p12PasswordFile !== undefined && l.p12File === undefined) ctx.addIssue({ code: 'custom', path: ['p12PasswordFile'], message: 'goes with p12File' });
    });
  const signer = z.discriminatedUnion('kind', [signstash, local], { error: 'kind must be signstash or local' });
  const tenant = z
    .object({
      signers: z.array(z.string('must be identity names'), 'must be a list of identity names').min(1, 'must name at least one identity'),
      default: z.string('must be an identity name').optional(),
    })
    .strict();
  return z
    .object({
      signers: z.record(z.string(), signer, 'must be a map of identity name to identity'),
      tenants: z.record(z.string(), tenant, 'must be a map of tenant to {signers, default}'),
    })
    .strict()
    .superRefine((f, ctx) => {
      for (const name of Object.keys(f.signers))
        if (!SIGNER_NAME_PATTERN.test(name))
          ctx.addIssue({ code: 'custom', path: ['signers', name], message: `identity name must match ${SIGNER_NAME_PATTERN.source}` });
      for (const [name, t] of Object.entries(f.tenants)) {
        if (name !== '*' && !TENANT_PATTERN.test(name))
          ctx.addIssue({ code: 'custom', path: ['tenants', name], message: `tenant must be '*' or match ${TENANT_PATTERN.source}` });
        t.signers.forEach((s, i) => {
          if (!Object.hasOwn(f.signers, s)) ctx.addIssue({ code: 'custom', path: ['tenants', name, 'signers', i], message: `unknown signer ${s}` });
        });
        if (t.default === undefined && t.signers.length > 1)
          ctx.addIssue({ code: 'custom', path: ['tenants', name, 'default'], message: 'is required when a tenant has several signers' });
        if (t.default !== undefined && !t.signers.includes(t.default))
          ctx.addIssue({ code: 'custom', path: ['tenants', name, 'default'], message: `${t.default} is not in the tenant's signers` });
      }
    });
})();

export type SignersFile = z.output<typeof fileSchema>;

/** The global settings an identity falls back to (from config.ts). */
export type IdentityDefaults = Pick<Config, 'upstream' | 'batch' | 'signstash' | 'localSigner'> & {
  /** DEFAULT_SIGNATURE_TYPE when set; else CAdES for local identities, PAdES for Sign'Stash ones. */
  signatureType: Config['defaultSignatureType'] | undefined;
};

/** A SIGNERS_FILE problem: one line, naming the file, identity and field, never a value. */
export class SignersFileError extends Error {
  constructor(file: string, what: string) {
    super(`SIGNERS_FILE ${file}: ${what}`);
    this.name = 'SignersFileError';
  }
}

const pathOf = (p: readonly PropertyKey[]): string => p.map(String).join('.');

/** Reads a file named by a field; fails naming the field (and the path, which is not a secret). */
const readField = (file: string, field: string, target: string): Buffer => {
  try {
    return readFileSync(target);
  } catch (err) {
    throw new SignersFileError(file, `${field}: cannot read ${target} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
};

const readSecret = (file: string, field: string, target: string): string => {
  const secret = readField(file, field, target).toString('utf8').trim();
  if (secret === '') throw new SignersFileError(file, `${field}: ${target} is empty`);
  return secret;
};

/** Parses and validates the text of a SIGNERS_FILE (the file name only labels errors). */
export const parseSignersFile = (file: string, source: string): SignersFile => {
  let raw: unknown;
  try {
    raw = parseYaml(source);
  } catch (err) {
    // The parser's own message quotes the offending line, which might hold a secret: position only.
    if (err instanceof YAMLError) {
      const at = err.linePos?.[0];
      throw new SignersFileError(file, `not valid YAML${at ? ` at line ${at.line}, column ${at.col}` : ''} (${err.code})`);
    }
    throw new SignersFileError(file, 'not valid YAML');
  }
  const result = fileSchema.safeParse(raw ?? {});
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const keys = 'keys' in issue && Array.isArray(issue.keys) ? ` (${issue.keys.join(', ')})` : '';
      return `${pathOf(issue.path) || 'file'}: ${issue.message}${keys}`;
    });
    throw new SignersFileError(file, lines.join('; '));
  }
  return result.data;
};

/** Builds the snapshot from a validated file: reads secrets, checks the other files can be read. */
export const buildIdentities = (file: string, parsed: SignersFile, defaults: IdentityDefaults): SigningIdentities => {
  const identities: SigningIdentity[] = [];
  const read: string[] = [file];
  for (const [name, s] of Object.entries(parsed.signers)) {
    const field = (f: string): string => `signers.${name}.${f}`;
    const limits: IdentityLimits = {
      upstreamConcurrency: Math.min(s.limits?.upstreamConcurrency ?? defaults.upstream.concurrency, defaults.upstream.concurrency),
      batchMaxDocs: s.limits?.batchMaxDocs ?? defaults.batch.maxDocs,
      batchMaxBytes: s.limits?.batchMaxBytes ?? defaults.batch.maxBytes,
    };
    if (s.kind === 'signstash') {
      const clientSecret = readSecret(file, field('clientSecretFile'), s.clientSecretFile);
      read.push(s.clientSecretFile);
      const files = (['caFile', 'clientCertFile', 'clientKeyFile'] as const).flatMap((f) => {
        const target = s[f];
        if (target === undefined) return [];
        read.push(target);
        return [readField(file, field(f), target)];
      });
      const signature: SignatureDefaults = {
        type: s.signature?.type ?? defaults.signatureType ?? 'PAdES',
        reason: s.signature?.reason,
        location: s.signature?.location,
        applyTimestamp: s.signature?.applyTimestamp ?? false,
      };
      const signstash = {
        url: s.url,
        authUrl: s.authUrl,
        clientId: s.clientId,
        clientSecret,
        tokenSkewMs: s.tokenSkew ?? defaults.signstash.tokenSkewMs,
        connectTimeoutMs: s.connectTimeout ?? defaults.signstash.connectTimeoutMs,
        headersTimeoutMs: s.headersTimeout ?? defaults.signstash.headersTimeoutMs,
        bodyTimeoutMs: s.bodyTimeout ?? defaults.signstash.bodyTimeoutMs,
        applyTimestamp: signature.applyTimestamp,
        reason: signature.reason,
        location: signature.location,
        ...(s.caFile === undefined ? {} : { caFile: s.caFile }),
        ...(s.clientCertFile === undefined ? {} : { clientCertFile: s.clientCertFile }),
        ...(s.clientKeyFile === undefined ? {} : { clientKeyFile: s.clientKeyFile }),
      };
      identities.push({ name, kind: 'signstash', signature, limits, signstash, fingerprint: fingerprintOf({ signature, limits, signstash }, files) });
    } else {
      const p12Password = s.p12PasswordFile === undefined ? undefined : readSecret(file, field('p12PasswordFile'), s.p12PasswordFile);
      if (s.p12PasswordFile !== undefined) read.push(s.p12PasswordFile);
      const files = (['keyFile', 'certFile', 'p12File'] as const).flatMap((f) => {
        const target = s[f];
        if (target === undefined) return [];
        read.push(target);
        return [readField(file, field(f), target)];
      });
      const globalTsa = defaults.localSigner.tsa;
      const tsa = s.tsaUrl === undefined ? globalTsa : { url: s.tsaUrl, timeoutMs: globalTsa?.timeoutMs ?? 10_000, concurrency: globalTsa?.concurrency ?? 4 };
      const signature: SignatureDefaults = {
        type: s.signature?.type ?? defaults.signatureType ?? 'CAdES',
        reason: s.signature?.reason,
        location: s.signature?.location,
        applyTimestamp: s.signature?.applyTimestamp ?? tsa !== undefined,
      };
      if (signature.applyTimestamp && tsa === undefined)
        throw new SignersFileError(file, `${field('signature.applyTimestamp')}: needs a time-stamp authority (tsaUrl, or TSA_URL)`);
      const local = {
        keyFile: s.keyFile,
        certFile: s.certFile,
        p12File: s.p12File,
        p12Password,
        cadesAttached: s.cadesAttached ?? defaults.localSigner.cadesAttached,
        tsa: signature.applyTimestamp ? tsa : undefined,
      };
      identities.push({ name, kind: 'local', signature, limits, local, fingerprint: fingerprintOf({ signature, limits, local }, files) });
    }
  }
  const tenants = new Map<string, TenantSigners>();
  for (const [tenant, t] of Object.entries(parsed.tenants)) {
    const allowed = [...new Set(t.signers)];
    tenants.set(tenant, { allowed, default: t.default ?? (allowed[0] as string) });
  }
  return new SigningIdentities(file, identities, tenants, [...new Set(read.map((f) => path.resolve(f)))]);
};

/** The global settings an identity of `config`'s SIGNERS_FILE falls back to. */
export const identityDefaults = (config: Config): IdentityDefaults => ({ ...config, signatureType: config.explicitSignatureType });

/** Reads, validates and builds SIGNERS_FILE. Throws SignersFileError (one line). */
export const loadSignersFile = (file: string, defaults: IdentityDefaults): SigningIdentities => {
  const source = readField(file, 'file', file).toString('utf8');
  return buildIdentities(file, parseSignersFile(file, source), defaults);
};

/** The identities `config` defines: its SIGNERS_FILE, or the environment's one identity `default`. Throws SignersFileError. */
export const loadSigningIdentities = (config: Config): SigningIdentities =>
  config.signersFile === undefined ? SigningIdentities.fromEnvironment(config) : loadSignersFile(config.signersFile, identityDefaults(config));
