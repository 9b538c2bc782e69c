// AES-256-GCM sealing of frame payloads on one DWCP stream direction. The nonce is a per-direction
// frame counter (never reused: every stream has its own handshake keys); the frame type and seq are
// authenticated as additional data, so a frame cannot be replayed under another seq or type.
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { IntegrityError } from '../../errors.js';

const TAG = 16;

export class FrameSealer {
  private counter = 0n;
  constructor(private readonly key: Buffer) {}

  seal(type: number, seq: number, plain: Uint8Array): Buffer {
    const iv = nonce(this.counter++);
    const c = createCipheriv('aes-256-gcm', this.key, iv);
    c.setAAD(aad(type, seq));
    const body = c.update(plain);
    c.final();
    return Buffer.concat([body, c.getAuthTag()]);
  }
}

export class FrameOpener {
  private counter = 0n;
  constructor(private readonly key: Buffer) {}

  open(type: number, seq: number, sealed: Buffer): Buffer {
    if (sealed.length < TAG) throw new IntegrityError('sealed frame shorter than its tag');
    const iv = nonce(this.counter++);
    const d = createDecipheriv('aes-256-gcm', this.key, iv);
    d.setAAD(aad(type, seq));
    d.setAuthTag(sealed.subarray(sealed.length - TAG));
    const body = d.update(sealed.subarray(0, sealed.length - TAG));
    try {
      d.final();
    } catch (err) {
      throw new IntegrityError('frame fails AES-GCM authentication (wrong key or tampered frame)', {
        cause: err,
      });
    }
    return body;
  }
}

function nonce(counter: bigint): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeBigUInt64BE(counter, 4);
  return iv;
}

function aad(type: number, seq: number): Buffer {
  const b = Buffer.alloc(9);
  b[0] = type;
  b.writeBigUInt64BE(BigInt(seq), 1);
  return b;
}
