/**
 * Which signing identity signs a submission: the `signer` field if the request has one, else the
 * tenant's default, checked against the identities the tenant may use in one snapshot of the
 * registry (taken per request, so a reload applies to the next submission). The field must come
 * before the file parts: the route checks it when the first file part arrives, before any byte of
 * it is stored, and refuses a `signer` field that arrives after a file (by then documents are on
 * disk under a choice the request had not made).
 */
import { SignspoolError } from '@signspool/shared/errors';
import type { SigningIdentities, SigningIdentity } from '@signspool/shared/signers/identities';

/** The identity for `tenant` (`requested`: the request's `signer` field); throws SIGNER_UNKNOWN or SIGNER_NOT_ALLOWED (422). */
export const chooseSigner = (identities: SigningIdentities, tenant: string, requested: string | undefined): SigningIdentity => {
  const access = identities.forTenant(tenant);
  if (requested === undefined) {
    const chosen = access === undefined ? undefined : identities.get(access.default);
    if (!chosen)
      throw new SignspoolError('SIGNER_NOT_ALLOWED', { detail: 'this tenant may use no signing identity: ask the operator to list it in SIGNERS_FILE' });
    return chosen;
  }
  const chosen = identities.get(requested);
  // The name is echoed quoted and cut: it is the caller's own text.
  if (!chosen) throw new SignspoolError('SIGNER_UNKNOWN', { detail: `no signing identity is named ${JSON.stringify(requested.slice(0, 64))}` });
  if (!access?.allowed.includes(requested)) {
    throw new SignspoolError('SIGNER_NOT_ALLOWED', { detail: `this tenant may not use the signing identity ${JSON.stringify(requested)}` });
  }
  return chosen;
};

/** The `signer` field among the fields parsed so far: a string, undefined, or a refusal (sent twice, or not text). */
export const signerField = (fields: unknown): string | undefined => {
  const value = (fields as Record<string, unknown> | undefined)?.['signer'];
  if (value === undefined || typeof value === 'string') return value;
  throw new SignspoolError('VALIDATION_FAILED', { detail: 'signer: send the field once, as text' });
};
