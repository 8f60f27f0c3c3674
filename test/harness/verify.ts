/**
 * The independent judges of a signature, run as the tools themselves: openssl cms (CAdES, and the
 * CMS of a PAdES signature), pdfsig (PAdES) and xmlsec1 (XAdES). Each answers the tool's exit
 * status and what it printed, so a test can assert success against one issuer and failure against
 * another.
 */
import { spawnSync } from 'node:child_process';

export interface ToolResult {
  status: number | null;
  out: string;
}

export const tool = (cmd: string, args: string[]): ToolResult => {
  const r = spawnSync(cmd, args);
  return { status: r.status, out: `${r.stdout.toString()}${r.stderr.toString()}` };
};

/** `openssl cms -verify` of a DER CMS (`content`: the detached content) against the CA file `ca`. */
export const cmsVerify = (sig: string, ca: string, content?: string): ToolResult =>
  tool('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', sig, ...(content ? ['-content', content] : []), '-CAfile', ca, '-out', '/dev/null']);

/** pdfsig without certificate checks: is the PDF's signature valid over the whole file. */
export const pdfsig = (file: string): ToolResult => tool('pdfsig', ['-nocert', file]);

/** xmlsec1 on an enveloped XAdES signature, trusting the PEM certificate `cert` (a CA or the signer's own). */
export const xmlsecVerify = (file: string, cert: string): ToolResult =>
  tool('xmlsec1', [
    '--verify',
    '--enabled-reference-uris',
    'empty,same-doc',
    '--id-attr:Id',
    'http://uri.etsi.org/01903/v1.3.2#:SignedProperties',
    '--trusted-pem',
    cert,
    file,
  ]);

/** The signed bytes of a PAdES signature (the two ranges of /ByteRange) and its CMS (from /Contents, without the zero padding). */
export const padesParts = (pdf: Buffer): { content: Buffer; cms: Buffer } => {
  const text = pdf.toString('latin1');
  const br = /\/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*\]/.exec(text);
  if (!br) throw new Error('no /ByteRange in the signed PDF');
  const [a, b, c, d] = br.slice(1, 5).map(Number) as [number, number, number, number];
  // /Contents is the CMS in hex, zero-padded: keep the DER SEQUENCE's own length.
  const padded = Buffer.from(text.slice(a + b, c).replace(/[<>\s]/g, ''), 'hex');
  const first = padded[1] ?? 0;
  const lengthBytes = first & 0x80 ? first & 0x7f : 0;
  const length = lengthBytes === 0 ? first : padded.subarray(2, 2 + lengthBytes).reduce((n, byte) => n * 256 + byte, 0);
  return { content: Buffer.concat([pdf.subarray(a, a + b), pdf.subarray(c, c + d)]), cms: padded.subarray(0, 2 + lengthBytes + length) };
};
