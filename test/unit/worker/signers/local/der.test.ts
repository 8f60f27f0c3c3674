/**
 * The hand-written DER of the local signers, judged by an independent encoder/decoder
 * (asn1js, the BER/DER library under @peculiar's packages): what we write parses there, what it writes parses here.
 */
import * as asn1js from 'asn1js';
import { describe, expect, it } from 'vitest';
import { children, derLength, derOid, intOf, oidOf, readElement, tlv, utcTime } from '@signspool/worker/signers/local/der';

/** SEQUENCE { OBJECT IDENTIFIER, INTEGER, OCTET STRING }, written by asn1js. */
const theirSequence = (oid: string, n: number, data: Buffer): Buffer =>
  Buffer.from(
    new asn1js.Sequence({
      value: [new asn1js.ObjectIdentifier({ value: oid }), new asn1js.Integer({ value: n }), new asn1js.OctetString({ valueHex: new Uint8Array(data) })],
    }).toBER(),
  );

/** The same SEQUENCE as asn1js reads it. */
const readTheirs = (der: Buffer): { oid: string; n: number; data: Buffer } => {
  const { result, offset } = asn1js.fromBER(new Uint8Array(der));
  if (offset === -1 || !(result instanceof asn1js.Sequence)) throw new Error('asn1js could not parse it');
  const [oid, n, data] = result.valueBlock.value;
  return {
    oid: (oid as asn1js.ObjectIdentifier).getValue(),
    n: (n as asn1js.Integer).valueBlock.valueDec,
    data: Buffer.from((data as asn1js.OctetString).getValue()),
  };
};

describe('DER', () => {
  it('encodes lengths in short and long form', () => {
    expect(derLength(0x7f)).toEqual(Buffer.from([0x7f]));
    expect(derLength(0x80)).toEqual(Buffer.from([0x81, 0x80]));
    expect(derLength(0x1234)).toEqual(Buffer.from([0x82, 0x12, 0x34]));
    expect(derLength(0x1000000)).toEqual(Buffer.from([0x84, 0x01, 0x00, 0x00, 0x00]));
  });

  it.each(['1.2.840.113549.1.9.16.2.47', '2.5.4.3', '1.3.6.1.4.1.311.60.2.1.3', '2.999.1'])('writes the OID %s as an independent encoder does', (oid) => {
    const theirs = theirSequence(oid, 1, Buffer.alloc(0));
    const [theirOid] = children(readElement(theirs).body);
    expect(derOid(oid)).toEqual(theirOid?.raw);
    expect(oidOf(readElement(derOid(oid)))).toBe(oid);
  });

  it('reads a structure an independent encoder wrote, with a long-form length', () => {
    const data = Buffer.alloc(300, 7);
    const der = theirSequence('1.2.3.4', 65_537, data);
    const seq = readElement(der);
    expect(seq.tag).toBe(0x30);
    expect(seq.raw.length).toBe(der.length);
    const [oid, n, octets] = children(seq.body);
    expect(oidOf(oid)).toBe('1.2.3.4');
    expect(intOf(n)).toBe(65_537);
    expect(octets?.body).toEqual(data);
  });

  it('writes a structure an independent decoder reads', () => {
    const body = Buffer.concat([derOid('1.2.3.4'), tlv(0x02, Buffer.from([0x01, 0x00, 0x01])), tlv(0x04, Buffer.alloc(200, 9))]);
    expect(readTheirs(tlv(0x30, body))).toEqual({ oid: '1.2.3.4', n: 65_537, data: Buffer.alloc(200, 9) });
  });

  it('writes UTCTime as YYMMDDhhmmssZ in UTC', () => {
    expect(
      utcTime(new Date(Date.UTC(2026, 11, 7, 9, 5, 3)))
        .subarray(2)
        .toString('ascii'),
    ).toBe('261207090503Z');
  });

  it('refuses truncated input and the wrong tag', () => {
    expect(() => readElement(Buffer.from([0x30, 0x05, 0x01]))).toThrow(/truncated/);
    expect(() => readElement(Buffer.from([0x30]))).toThrow(/truncated/);
    expect(() => intOf(readElement(derOid('1.2')))).toThrow(/INTEGER/);
    expect(() => oidOf(undefined)).toThrow(/OBJECT IDENTIFIER/);
  });
});
