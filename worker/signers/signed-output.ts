/**
 * Media type and download name of a signed result, by signature type (every signer agrees on
 * them). A PAdES or XAdES result is the document itself, signed: its name gains `.signed` before
 * the extension (`invoice.pdf` → `invoice.signed.pdf`), so a download never overwrites the original
 * in the folder that holds it; a CAdES signature is a file of its own (`invoice.pdf.p7s`, or `.p7m`
 * with the document inside).
 */
import type { SignatureType } from '@signspool/shared/queue';

/** `invoice.pdf` → `invoice.signed.pdf`; a name without an extension gets `.signed` appended. */
export const signedName = (name: string): string => {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}.signed${name.slice(dot)}` : `${name}.signed`;
};

export const signedOutput = (signatureType: SignatureType, name: string, opts: { cadesAttached?: boolean } = {}): { contentType: string; fileName: string } => {
  switch (signatureType) {
    case 'PAdES':
      return { contentType: 'application/pdf', fileName: signedName(name) };
    case 'XAdES':
      return { contentType: 'application/xml', fileName: signedName(name) };
    case 'CAdES':
      return opts.cadesAttached
        ? { contentType: 'application/pkcs7-mime', fileName: `${name}.p7m` }
        : { contentType: 'application/pkcs7-signature', fileName: `${name}.p7s` };
  }
};
