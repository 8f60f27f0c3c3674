/**
 * What GET /v1/admin/signers (and `signspool signers`) reports of each signing identity. From the
 * api's current snapshot of the identities: kind, tenants, the tenants it is the default of,
 * clientId and URL or certificate file, signature defaults and limits — never a secret (the
 * snapshot's public view holds none). From what live workers publish (shared/circuit-state.ts):
 * circuit state, OAuth token valid-until, last error, the certificate a local identity signs with.
 * An identity no live worker has reported yet (nothing signed with it since start) says so in
 * `reported`; for a local one with a PEM certificate file the api reads subject and expiry itself.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { readSignerStates, type PublishedCircuitState, type SignerState } from '@signspool/shared/circuit-state';
import type { IdentityLimits, SignatureDefaults, SigningIdentities } from '@signspool/shared/signers/identities';

export interface AdminSignerView {
  name: string;
  kind: 'signstash' | 'local';
  /** Tenants that may use it ('*': every tenant not listed in the file). */
  tenants: string[];
  /** Tenants whose submissions use it when they name none. */
  defaultFor: string[];
  clientId?: string;
  url?: string;
  certFile?: string;
  signature: SignatureDefaults;
  limits: IdentityLimits;
  /** Whether a live worker published its state (else circuit, token and last error are not known yet). */
  reported: boolean;
  circuit: { state: PublishedCircuitState };
  /** Sign'Stash identities: when the OAuth token the workers hold expires (null: none held). */
  token: { validUntil: string | null } | null;
  lastError: { code: string; at: string } | null;
  /** Local identities: the signing certificate. */
  certificate: { subject: string; notAfter: string } | null;
}

export interface AdminSigners {
  generatedAt: string;
  /** The SIGNERS_FILE path, or `environment` (one identity, `default`). */
  source: string;
  signers: AdminSignerView[];
  tenants: Record<string, { allowed: readonly string[]; default: string }>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** Subject and expiry of the first certificate of a PEM file; undefined when it cannot be read. */
const pemCertificate = async (file: string): Promise<{ subject: string; notAfter: string } | undefined> => {
  try {
    const cert = new X509Certificate(await readFile(file));
    return { subject: cert.subject.split('\n').join(', '), notAfter: iso(Date.parse(cert.validTo)) };
  } catch {
    return undefined;
  }
};

export const readAdminSigners = async (identities: SigningIdentities, redis: Redis, prefix: string, now = Date.now()): Promise<AdminSigners> => {
  const view = identities.publicView();
  const states: Record<string, SignerState> = await readSignerStates(redis, prefix, now);
  const signers = await Promise.all(
    Object.entries(view.signers).map(async ([name, s]): Promise<AdminSignerView> => {
      const state = states[name];
      let certificate: AdminSignerView['certificate'] = null;
      if (state?.certificate) certificate = { subject: state.certificate.subject, notAfter: iso(state.certificate.notAfter) };
      // A PKCS#12 file is not read here (it needs its password): the worker's report names its certificate.
      else if (s.kind === 'local' && s.certFile !== undefined) certificate = (await pemCertificate(s.certFile)) ?? null;
      return {
        name,
        kind: s.kind,
        tenants: s.tenants,
        defaultFor: Object.entries(view.tenants)
          .filter(([, t]) => t.default === name)
          .map(([tenant]) => tenant),
        ...(s.clientId === undefined ? {} : { clientId: s.clientId }),
        ...(s.url === undefined ? {} : { url: s.url }),
        ...(s.certFile === undefined ? {} : { certFile: s.certFile }),
        signature: s.signature,
        limits: s.limits,
        reported: state !== undefined,
        circuit: { state: state?.circuit ?? 'closed' },
        token: s.kind === 'signstash' ? { validUntil: state?.tokenValidUntil === undefined ? null : iso(state.tokenValidUntil) } : null,
        lastError: state?.lastError ? { code: state.lastError.code, at: iso(state.lastError.at) } : null,
        certificate: s.kind === 'local' ? certificate : null,
      };
    }),
  );
  return { generatedAt: iso(now), source: view.source, signers, tenants: view.tenants };
};
