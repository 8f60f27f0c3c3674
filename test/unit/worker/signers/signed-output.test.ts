/** Names and media types of signed results: a signed PDF or XML never takes its original's name. */
import { describe, expect, it } from 'vitest';
import { signedName, signedOutput } from '../../../../worker/signers/signed-output.js';

describe('signedOutput', () => {
  it('names a PAdES or XAdES result <stem>.signed.<ext>', () => {
    expect(signedOutput('PAdES', 'invoice.pdf')).toEqual({ contentType: 'application/pdf', fileName: 'invoice.signed.pdf' });
    expect(signedOutput('XAdES', 'invoice-1.xml')).toEqual({ contentType: 'application/xml', fileName: 'invoice-1.signed.xml' });
  });

  it('names a CAdES signature after the whole original name (.p7s detached, .p7m attached)', () => {
    expect(signedOutput('CAdES', 'big.pdf')).toEqual({ contentType: 'application/pkcs7-signature', fileName: 'big.pdf.p7s' });
    expect(signedOutput('CAdES', 'big.pdf', { cadesAttached: true })).toEqual({ contentType: 'application/pkcs7-mime', fileName: 'big.pdf.p7m' });
  });

  it('inserts .signed before the last extension only, and appends it to a name without one', () => {
    expect(signedName('report.2026.pdf')).toBe('report.2026.signed.pdf');
    expect(signedName('scan')).toBe('scan.signed');
    expect(signedName('.hidden')).toBe('.hidden.signed');
  });
});
