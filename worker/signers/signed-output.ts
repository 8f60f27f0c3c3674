/** Media type and download name of a signed result, by signature type (every signer agrees on them). */
import type { SignatureType } from '@signspool/shared/queue';

export const signedOutput = (signatureType: SignatureType, name: string): { contentType: string; fileName: string } => {
  switch (signatureType) {
    case 'PAdES':
      return { contentType: 'application/pdf', fileName: name };
    case 'XAdES':
      return { contentType: 'application/xml', fileName: name };
    case 'CAdES':
      return { contentType: 'application/pkcs7-signature', fileName: `${name}.p7s` };
  }
};
