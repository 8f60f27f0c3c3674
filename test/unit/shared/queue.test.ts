/** The queue contract (unit): the optional trace context and the signing identity of job data, as producer and consumer validate them. */
import { describe, expect, it } from 'vitest';
import { parseJobData } from '@signspool/shared/queue';

const job = {
  opId: 'op_0123456789abcdef0123456789abcdef',
  docId: 'doc_0123456789abcdef0123456789abcdef',
  tenant: 'acme',
  signatureType: 'CAdES',
  name: 'a.txt',
  contentType: 'text/plain',
  size: 3,
  sha256: 'a'.repeat(64),
  acceptedAt: 1_700_000_000_000,
};
const traceparent = `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'00f067aa0ba902b7'}-01`;

describe('job data trace context', () => {
  it('is optional: jobs queued before tracing (or with it off) still parse', () => {
    expect(parseJobData('sign-document', job)).toEqual({ ...job, signer: 'default' });
    expect(parseJobData('deliver-webhook', { opId: job.opId, tenant: 'acme', deliveryId: 'msg_1', reason: 'completed' })).not.toHaveProperty('trace');
  });

  it('carries a W3C traceparent and tracestate', () => {
    const trace = { traceparent, tracestate: 'vendor=abc,other=1' };
    expect(parseJobData('sign-document', { ...job, trace }).trace).toEqual(trace);
    expect(parseJobData('sign-document', { ...job, trace: { traceparent } }).trace).toEqual({ traceparent });
    expect(parseJobData('deliver-webhook', { opId: job.opId, tenant: 'acme', deliveryId: 'msg_1', reason: 'completed', trace: { traceparent } }).trace).toEqual(
      { traceparent },
    );
  });

  it('refuses what is not a valid traceparent, and an oversized tracestate', () => {
    const bad = [
      '',
      'garbage',
      `01-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'00f067aa0ba902b7'}-01`,
      `00-${'0'.repeat(32)}-${'00f067aa0ba902b7'}-01`,
      `00-${'4bf92f3577b34da6a3ce929d0e0e4736'}-${'0'.repeat(16)}-01`,
      `00-${'4BF92F3577B34DA6A3CE929D0E0E4736'}-${'00f067aa0ba902b7'}-01`,
      `${traceparent}-extra`,
      `${traceparent}\n`,
    ];
    for (const tp of bad) expect(() => parseJobData('sign-document', { ...job, trace: { traceparent: tp } }), tp).toThrow();
    expect(() => parseJobData('sign-document', { ...job, trace: { traceparent, tracestate: 'x'.repeat(513) } })).toThrow();
  });
});

describe('job data signing identity', () => {
  it('is read as `default` in a job queued before identities existed', () => {
    expect(parseJobData('sign-document', job).signer).toBe('default');
    expect(parseJobData('sign-document', { ...job, signer: 'acme-pt' }).signer).toBe('acme-pt');
  });

  it('must be an identity name', () => {
    for (const bad of ['', 'Acme', '-x', 'a b', 'x'.repeat(64), 7]) expect(() => parseJobData('sign-document', { ...job, signer: bad }), String(bad)).toThrow();
  });
});
