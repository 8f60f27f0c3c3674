/**
 * Signing identities: who signs a document. An identity is one Sign'Stash client service (its
 * clientId is the issuer) or one local certificate, with its signature defaults and its own limits.
 * `SigningIdentities` is one immutable snapshot of them and of which tenant may use which; the
 * SignerRegistry (registry.ts) swaps snapshots on reload. Without SIGNERS_FILE the snapshot holds
 * one identity, `default`, built from SIGNER / SIGNSTASH_* / LOCAL_SIGNER_*, allowed to every
 * tenant: behaviour identical to a deployment from before identities existed.
 */
import { createHash } from 'node:crypto';
import type { Config } from '../config.js';
import type { SignatureType } from '../queue.js';

/** The name of the identity built from the environment (and of jobs queued before identities existed). */
export const DEFAULT_SIGNER = 'default';

/** Identity names become metric labels: short, lower-case, no spaces. */
export const SIGNER_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** The Sign'Stash adapter's settings (worker/signers/signstash/adapter.ts). */
export interface SignstashSettings {
  url: string;
  authUrl: string;
  clientId: string;
  clientSecret: string;
  tokenSkewMs: number;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  applyTimestamp: boolean;
  reason: string | undefined;
  location: string | undefined;
  caFile?: string;
  clientCertFile?: string;
  clientKeyFile?: string;
}

/** The local signer's settings (worker/signers/local/local.ts), without the process-wide dataDir. */
export interface LocalSignerSettings {
  keyFile: string | undefined;
  certFile: string | undefined;
  p12File: string | undefined;
  p12Password: string | undefined;
  cadesAttached: boolean;
  tsa: { url: string; timeoutMs: number; concurrency: number } | undefined;
}

/** What an identity writes into a signature unless the submission says otherwise. */
export interface SignatureDefaults {
  type: SignatureType;
  reason: string | undefined;
  location: string | undefined;
  applyTimestamp: boolean;
}

/** An identity's own bounds (a Sign'Stash proxy instance has its own memory and disk budget). */
export interface IdentityLimits {
  /** Upstream calls in flight for this identity, inside the global UPSTREAM_CONCURRENCY. */
  upstreamConcurrency: number;
  batchMaxDocs: number;
  batchMaxBytes: number;
}

interface IdentityBase {
  name: string;
  signature: SignatureDefaults;
  limits: IdentityLimits;
  /**
   * sha256 over everything that defines the identity (secrets and the referenced files' bytes
   * included): it changes exactly when the identity changed. Internal: never shown.
   */
  fingerprint: string;
}

export interface SignstashIdentity extends IdentityBase {
  kind: 'signstash';
  signstash: SignstashSettings;
}

export interface LocalIdentity extends IdentityBase {
  kind: 'local';
  local: LocalSignerSettings;
}

export type SigningIdentity = SignstashIdentity | LocalIdentity;

/** The identities a tenant may use, and the one used when a submission names none. */
export interface TenantSigners {
  allowed: readonly string[];
  default: string;
}

/** An identity as /v1/admin/signers and `signspool signers` may show it: no secret. */
export interface SignerPublicView {
  kind: SigningIdentity['kind'];
  /** Tenants listed with it in the file ('*': every tenant not listed). */
  tenants: string[];
  signature: SignatureDefaults;
  limits: IdentityLimits;
  /** signstash */
  clientId?: string;
  url?: string;
  /** local: the certificate (or PKCS#12) file. */
  certFile?: string;
}

export interface SigningIdentitiesPublicView {
  /** Where the identities come from: the SIGNERS_FILE path, or the environment. */
  source: string;
  signers: Record<string, SignerPublicView>;
  tenants: Record<string, TenantSigners>;
}

/** The fingerprint of an identity: its settings (secrets included) and the bytes of its files. */
export const fingerprintOf = (settings: unknown, files: readonly Buffer[] = []): string => {
  const h = createHash('sha256').update(JSON.stringify(settings));
  for (const f of files) h.update(createHash('sha256').update(f).digest());
  return h.digest('hex');
};

/** One immutable snapshot of the identities and the tenants' access to them. */
export class SigningIdentities {
  private readonly byName: ReadonlyMap<string, SigningIdentity>;

  constructor(
    /** The SIGNERS_FILE path, or undefined when built from the environment. */
    readonly file: string | undefined,
    identities: readonly SigningIdentity[],
    private readonly tenants: ReadonlyMap<string, TenantSigners>,
    /** Every file this snapshot was read from: SIGNERS_FILE and the files it names (what a watch follows). */
    readonly files: readonly string[] = [],
  ) {
    this.byName = new Map(identities.map((i) => [i.name, i]));
  }

  get(name: string): SigningIdentity | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  all(): SigningIdentity[] {
    return this.names().map((n) => this.byName.get(n) as SigningIdentity);
  }

  /** The tenant's identities: its own entry, else the '*' entry, else none (its submissions are refused). */
  forTenant(tenant: string): TenantSigners | undefined {
    return this.tenants.get(tenant) ?? this.tenants.get('*');
  }

  /** Tenants listed with this identity ('*' included). */
  tenantsOf(name: string): string[] {
    return [...this.tenants].filter(([, t]) => t.allowed.includes(name)).map(([tenant]) => tenant);
  }

  /** Identities added, removed or changed from `previous` to this snapshot. */
  changedFrom(previous: SigningIdentities): string[] {
    const names = new Set([...previous.names(), ...this.names()]);
    return [...names].filter((n) => previous.get(n)?.fingerprint !== this.get(n)?.fingerprint).sort();
  }

  /** Whether the tenants' access differs from `previous`. */
  tenantsChangedFrom(previous: SigningIdentities): boolean {
    const a = JSON.stringify([...previous.tenants].sort(([x], [y]) => x.localeCompare(y)));
    const b = JSON.stringify([...this.tenants].sort(([x], [y]) => x.localeCompare(y)));
    return a !== b;
  }

  publicView(): SigningIdentitiesPublicView {
    const signers: Record<string, SignerPublicView> = {};
    for (const i of this.all()) {
      const base = { kind: i.kind, tenants: this.tenantsOf(i.name), signature: { ...i.signature }, limits: { ...i.limits } };
      if (i.kind === 'signstash') signers[i.name] = { ...base, clientId: i.signstash.clientId, url: i.signstash.url };
      else {
        const certFile = i.local.certFile ?? i.local.p12File;
        signers[i.name] = { ...base, ...(certFile === undefined ? {} : { certFile }) };
      }
    }
    const tenants: Record<string, TenantSigners> = {};
    for (const [tenant, t] of [...this.tenants].sort(([x], [y]) => x.localeCompare(y))) tenants[tenant] = { allowed: [...t.allowed], default: t.default };
    return { source: this.file ?? 'environment', signers, tenants };
  }

  /** The one identity `default` of the environment's SIGNER / SIGNSTASH_* / LOCAL_SIGNER_* settings, for every tenant. */
  static fromEnvironment(config: Config): SigningIdentities {
    const limits: IdentityLimits = {
      upstreamConcurrency: config.upstream.concurrency,
      batchMaxDocs: config.batch.maxDocs,
      batchMaxBytes: config.batch.maxBytes,
    };
    let identity: SigningIdentity;
    if (config.signer === 'signstash') {
      const s = config.signstash;
      const signature = { type: config.defaultSignatureType, reason: s.reason, location: s.location, applyTimestamp: s.applyTimestamp };
      identity = { name: DEFAULT_SIGNER, kind: 'signstash', signature, limits, signstash: s, fingerprint: fingerprintOf({ signature, limits, s }) };
    } else {
      const l = config.localSigner;
      // The local signer writes no reason or location today: the defaults stay empty.
      const signature = { type: config.defaultSignatureType, reason: undefined, location: undefined, applyTimestamp: l.tsa !== undefined };
      identity = { name: DEFAULT_SIGNER, kind: 'local', signature, limits, local: l, fingerprint: fingerprintOf({ signature, limits, l }) };
    }
    return new SigningIdentities(undefined, [identity], new Map([['*', { allowed: [DEFAULT_SIGNER], default: DEFAULT_SIGNER }]]));
  }
}
