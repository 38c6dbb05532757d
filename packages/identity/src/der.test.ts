/** The DER writer and reader, tables both ways. */
import { describe, expect, it } from '@jest/globals';
import { DerError, children, integer, oid, readBits, readOid, readOne, readTlv, seq, splitPem, pem, tlv, unpem, time } from './der.js';

describe('DER writing', () => {
  it.each([
    // columns: integer input, expected hex
    [0, '020100'],
    [127, '02017f'],
    [128, '02020080'],
    [256, '02020100'],
    [Buffer.from([0, 0, 5]), '020105'],
    [Buffer.from([0xff]), '020200ff'],
  ])('integer(%p) = %s', (input, hex) => expect(integer(input).toString('hex')).toBe(hex));

  it.each([
    // columns: dotted OID, expected hex (X.690 8.19)
    ['2.5.29.17', '0603551d11'],
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302'],
    ['1.3.6.1.5.5.7.3.2', '06082b06010505070302'],
  ])('oid(%s) = %s and reads back', (dotted, hex) => {
    expect(oid(dotted).toString('hex')).toBe(hex);
    expect(readOid(readOne(oid(dotted), 0x06, 'x'), 'x')).toBe(dotted);
  });

  it.each([
    // columns: content length, header hex (short form < 128, long form after)
    [0, '0400'],
    [127, '047f'],
    [128, '048180'],
    [300, '0482012c'],
    [70000, '0483011170'],
  ])('length %i is written as %s and read back', (n, head) => {
    const node = tlv(0x04, Buffer.alloc(n));
    expect(node.subarray(0, head.length / 2).toString('hex')).toBe(head);
    expect(readOne(node, 0x04, 'x').content.length).toBe(n);
  });

  it.each([
    // columns: date, encoded text (UTCTime before 2050, GeneralizedTime after)
    ['2026-12-06T17:00:01.999Z', '17', '261206170001Z'],
    ['2049-12-31T23:59:59Z', '17', '491231235959Z'],
    ['2050-01-01T00:00:00Z', '18', '20500101000000Z'],
  ])('time(%s)', (d, tag, text) => {
    const t = time(new Date(d));
    expect(t[0]!.toString(16)).toBe(tag);
    expect(t.subarray(2).toString('ascii')).toBe(text);
  });

  it('PEM round trip, and splitting a bundle', () => {
    const der = seq(integer(1), oid('1.2.3'));
    const p = pem('CERTIFICATE', der);
    expect(unpem('CERTIFICATE', p)).toEqual(der);
    expect(splitPem('CERTIFICATE', `junk\n${p}${p}`)).toEqual([p, p]);
    expect(unpem('CERTIFICATE', 'nothing')).toBeUndefined();
  });
});

describe('DER reading rejects what is not DER, saying where', () => {
  it.each([
    // columns: hex bytes, expected message part
    ['30', 'truncated'],
    ['3080', 'indefinite length'],
    ['3005020101', 'runs past the end'],
    ['3085ffffffffff', 'too large'],
    ['1f0100', 'multi-byte tag'],
  ])('%s → %s', (hex, message) => {
    expect(() => readTlv(Buffer.from(hex, 'hex'), 0, 'csr.info')).toThrow(message);
    expect(() => readTlv(Buffer.from(hex, 'hex'), 0, 'csr.info')).toThrow(DerError);
  });

  it('names the path of a wrong tag, trailing bytes, and a BIT STRING with unused bits', () => {
    expect(() => readOne(Buffer.from('020100', 'hex'), 0x30, 'csr')).toThrow('csr: expected tag 0x30, found 0x2');
    expect(() => readOne(Buffer.from('300000', 'hex'), 0x30, 'csr')).toThrow('csr: 1 trailing bytes');
    expect(() => readBits(readOne(Buffer.from('03020101', 'hex'), 0x03, 's'), 'csr.signature')).toThrow('csr.signature: BIT STRING with unused bits');
    const s = readOne(seq(integer(1), integer(2)), 0x30, 'x');
    expect(children(s, 'x').map((c) => c.content[0])).toEqual([1, 2]);
  });
});
