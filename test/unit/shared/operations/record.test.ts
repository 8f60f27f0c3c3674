/** Stored operation records (shared/operations/record.ts): what operationFields writes, parseOperation reads back. */
import { describe, expect, it } from 'vitest';
import { newOperationRecord, operationFields, parseOperation, type NewOperation } from '@signspool/shared/operations/record';

const op: NewOperation = {
  id: 'op_1',
  tenant: 't',
  signer: 'default',
  signatureType: 'CAdES',
  externalReference: 'ref',
  webhookUrl: undefined,
  createdAt: 1_765_000_000_000,
  documents: [
    { id: 'doc_a', name: 'a.pdf', contentType: 'application/pdf', size: 10, sha256: 'aa' },
    { id: 'doc_b', name: 'b.pdf', contentType: 'application/pdf', size: 20, sha256: 'bb' },
  ],
};

describe('parseOperation', () => {
  it('reads back the record a new operation is written as, documents in submission order', () => {
    expect(parseOperation(operationFields(op))).toEqual(newOperationRecord(op));
  });

  it('reads a document stored before attempts were counted as 0 attempts, and keeps what the scripts added', () => {
    const fields = operationFields(op);
    const stored = JSON.parse(fields['doc:doc_b'] ?? '{}') as Record<string, unknown>;
    delete stored['attempts'];
    fields['doc:doc_b'] = JSON.stringify({ ...stored, status: 'failed', error: { code: 'UPSTREAM_REJECTED', message: 'no' } });
    const [, b] = parseOperation(fields).documents;
    expect(b).toMatchObject({ attempts: 0, status: 'failed', error: { code: 'UPSTREAM_REJECTED', message: 'no' } });
  });

  it('refuses a record whose signature type is not one it knows', () => {
    expect(() => parseOperation({ ...operationFields(op), signatureType: 'JAdES' })).toThrow(/signatureType/);
  });
});
