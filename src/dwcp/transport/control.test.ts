// Control messages: plain JSON without binary fields; binary fields as raw bytes in an envelope,
// given back as Buffers; malformed envelopes and stray field references rejected.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ProtocolError } from '../../errors.js';
import { decodeControl, encodeControl } from './control.js';

describe('control messages', () => {
  it('stays plain JSON without binary fields', () => {
    const enc = encodeControl({ t: 'req', id: 3, body: { t: 'open', name: 'a', size: 1 } });
    assert.deepEqual(JSON.parse(enc.toString()), {
      t: 'req',
      id: 3,
      body: { t: 'open', name: 'a', size: 1 },
    });
    assert.deepEqual(decodeControl(enc), { t: 'req', id: 3, body: { t: 'open', name: 'a', size: 1 } });
  });

  it('carries binary fields as raw bytes, nested too, and gives them back as Buffers', () => {
    const h = randomBytes(12 * 512);
    const bits = new Uint8Array([1, 2, 3]);
    const enc = encodeControl({ t: 'res', id: 9, body: { bits, deep: [{ h }], empty: Buffer.alloc(0) } });
    assert.ok(enc.length < h.length + 3 + 160, `${enc.length} bytes for ${h.length} bytes of hashes`);
    const dec = decodeControl(enc) as { body: { bits: Buffer; deep: { h: Buffer }[]; empty: Buffer } };
    assert.ok(Buffer.isBuffer(dec.body.bits) && dec.body.bits.equals(Buffer.from(bits)));
    assert.ok(dec.body.deep[0]!.h.equals(h));
    assert.equal(dec.body.empty.length, 0);
  });

  it('rejects malformed envelopes and bad field references', () => {
    const enc = encodeControl({ t: 'req', id: 1, body: { h: randomBytes(100) } });
    assert.throws(() => decodeControl(enc.subarray(0, enc.length - 1)), ProtocolError);
    assert.throws(() => decodeControl(enc.subarray(0, 3)), ProtocolError);
    const bigJson = Buffer.from(enc);
    bigJson.writeUInt32BE(enc.length, 1);
    assert.throws(() => decodeControl(bigJson), ProtocolError);
    // A reference to a field that is not there, and a field nothing refers to.
    const json = (s: string, fields: Buffer[]) => {
      const head = Buffer.from(s);
      const parts: Buffer[] = [Buffer.from([0]), Buffer.alloc(4), head];
      parts[1]!.writeUInt32BE(head.length);
      for (const f of fields) {
        const l = Buffer.alloc(4);
        l.writeUInt32BE(f.length);
        parts.push(l, f);
      }
      return Buffer.concat(parts);
    };
    assert.throws(
      () => decodeControl(json('{"t":"req","id":1,"body":{"$bin":1}}', [Buffer.alloc(1)])),
      ProtocolError,
    );
    assert.throws(
      () => decodeControl(json('{"t":"req","id":1,"body":{}}', [Buffer.alloc(1)])),
      ProtocolError,
    );
    assert.throws(
      () => decodeControl(json('{"t":"req","id":1,"body":[{"$bin":0},{"$bin":0}]}', [Buffer.alloc(1)])),
      ProtocolError,
    );
    assert.throws(
      () => decodeControl(json('{"t":"req","id":1,"body":{"$bin":0,"x":1}}', [Buffer.alloc(1)])),
      ProtocolError,
    );
    assert.deepEqual(decodeControl(json('{"t":"req","id":1,"body":{"$bin":0}}', [Buffer.from('ab')])), {
      t: 'req',
      id: 1,
      body: Buffer.from('ab'),
    });
  });
});
