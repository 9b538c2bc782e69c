// Frame parser tests: byte-by-byte feeding, arbitrary splits, and a list of bad inputs that must throw.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeFrame, FrameParser, FrameType, MAX_FRAME_PAYLOAD, type Frame } from './frame.js';
import { IntegrityError, ProtocolError } from '../../errors.js';

const sample = (): Buffer[] => [
  encodeFrame(FrameType.Control, 0, Buffer.from('{"t":"open"}')),
  encodeFrame(FrameType.Data, 1, Buffer.alloc(0)),
  encodeFrame(FrameType.Data, 2 ** 40, Buffer.from([1, 2, 3, 4, 5])),
  encodeFrame(FrameType.Ack, 7, Buffer.alloc(0)),
];

function feed(parser: FrameParser, bytes: Buffer, cuts: number[]): Frame[] {
  const out: Frame[] = [];
  let pos = 0;
  for (const c of [...cuts.filter((x) => x > 0 && x < bytes.length)].sort((a, b) => a - b)) {
    out.push(...parser.push(bytes.subarray(pos, c)));
    pos = c;
  }
  out.push(...parser.push(bytes.subarray(pos)));
  return out;
}

describe('FrameParser', () => {
  it('parses frames fed one byte at a time', () => {
    const all = Buffer.concat(sample());
    const p = new FrameParser();
    const frames: Frame[] = [];
    for (let i = 0; i < all.length; i++) frames.push(...p.push(all.subarray(i, i + 1)));
    p.end();
    assert.deepEqual(
      frames.map((f) => [f.type, f.seq, f.payload.toString('hex')]),
      [
        [FrameType.Control, 0, Buffer.from('{"t":"open"}').toString('hex')],
        [FrameType.Data, 1, ''],
        [FrameType.Data, 2 ** 40, '0102030405'],
        [FrameType.Ack, 7, ''],
      ],
    );
  });

  it('gives the same frames for any split of the byte stream (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.constantFrom(FrameType.Data, FrameType.Control, FrameType.Ack),
            fc.nat(),
            fc.uint8Array({ maxLength: 300 }),
          ),
          {
            maxLength: 8,
          },
        ),
        fc.array(fc.nat({ max: 4000 }), { maxLength: 20 }),
        (specs, cuts) => {
          const bytes = Buffer.concat(specs.map(([t, s, p]) => encodeFrame(t, s, p)));
          const p = new FrameParser();
          const got = feed(p, bytes, cuts);
          p.end();
          assert.deepEqual(
            got.map((f) => [f.type, f.seq, Buffer.from(f.payload).toString('hex')]),
            specs.map(([t, s, pl]) => [t, s, Buffer.from(pl).toString('hex')]),
          );
        },
      ),
    );
  });

  const good = encodeFrame(FrameType.Data, 3, Buffer.from('hello world'));
  const mutate = (f: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(good);
    f(b);
    return b;
  };
  const bad: [string, Buffer, new (...a: never[]) => Error][] = [
    ['bad first magic byte', mutate((b) => (b[0] = 0x00)), ProtocolError],
    ['bad second magic byte', mutate((b) => (b[1] = 0x00)), ProtocolError],
    ['unknown version', mutate((b) => (b[2] = 9)), ProtocolError],
    ['unknown type 0', mutate((b) => (b[3] = 0)), ProtocolError],
    ['unknown type 200', mutate((b) => (b[3] = 200)), ProtocolError],
    ['seq beyond 2^53', mutate((b) => b.writeUInt32BE(0xffffffff, 4)), ProtocolError],
    ['length over the limit', mutate((b) => b.writeUInt32BE(MAX_FRAME_PAYLOAD + 1, 12)), ProtocolError],
    ['payload byte flipped', mutate((b) => (b[20] = b[20]! ^ 1)), IntegrityError],
    ['CRC byte flipped', mutate((b) => (b[b.length - 1] = b[b.length - 1]! ^ 0x80)), IntegrityError],
    ['seq byte flipped', mutate((b) => (b[11] = b[11]! ^ 1)), IntegrityError],
    ['HTTP request instead of DWCP', Buffer.from('GET / HTTP/1.1\r\n\r\n'), ProtocolError],
    ['TLS client hello', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), ProtocolError],
  ];
  for (const [name, bytes, cls] of bad) {
    it(`rejects: ${name} (whole and byte by byte)`, () => {
      assert.throws(() => new FrameParser().push(bytes), cls);
      const p = new FrameParser();
      assert.throws(() => {
        for (let i = 0; i < bytes.length; i++) p.push(bytes.subarray(i, i + 1));
      }, cls);
      // A failed parser stays failed.
      assert.throws(() => p.push(encodeFrame(FrameType.Ack, 1, Buffer.alloc(0))), cls);
    });
  }

  it('rejects a stream that ends inside a frame (truncation) at every cut point', () => {
    for (let cut = 1; cut < good.length; cut++) {
      const p = new FrameParser();
      assert.deepEqual(p.push(good.subarray(0, cut)), []);
      assert.throws(() => p.end(), ProtocolError);
    }
  });

  it('refuses to encode an oversized payload or a negative seq', () => {
    assert.throws(() => encodeFrame(FrameType.Data, 0, Buffer.alloc(MAX_FRAME_PAYLOAD + 1)), ProtocolError);
    assert.throws(() => encodeFrame(FrameType.Data, -1, Buffer.alloc(1)), ProtocolError);
  });
});
