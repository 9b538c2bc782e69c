// Control messages of an AMST session (JSON in Control frames): stream attachment, request/response
// for the application above (file open, have-queries, end), and their validation.
//
// Binary fields (Buffer / Uint8Array anywhere in a message, e.g. the hash lists of have-queries)
// travel as raw bytes, not as base64 or JSON arrays: such a message is an envelope
//   0x00 | JSON length (u32) | JSON | per binary field: length (u32) | bytes
// where the JSON names each field {"$bin": i} (its index in the list). A message without binary
// fields is plain JSON (it never starts with 0x00). Decoding gives the fields back as Buffers.
import { ErrorCode, ProtocolError } from '../../errors.js';

export type ControlMessage =
  | { readonly t: 'attach'; readonly session: string; readonly stream: number }
  | { readonly t: 'attached'; readonly ack: number }
  | { readonly t: 'req'; readonly id: number; readonly body: unknown }
  | {
      readonly t: 'res';
      readonly id: number;
      readonly body?: unknown;
      readonly error?: { readonly code: ErrorCode; readonly message: string };
    };

const ENVELOPE = 0x00;

export function encodeControl(msg: ControlMessage): Buffer {
  const bins: Uint8Array[] = [];
  // `this[key]` is the value before Buffer#toJSON turned it into {type, data}.
  const json = JSON.stringify(msg, function (this: Record<string, unknown>, key: string, v: unknown) {
    const orig = this[key];
    if (orig instanceof Uint8Array) {
      bins.push(orig);
      return { $bin: bins.length - 1 };
    }
    return v;
  });
  if (bins.length === 0) return Buffer.from(json);
  const head = Buffer.from(json);
  let size = 5 + head.length;
  for (const b of bins) size += 4 + b.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = ENVELOPE;
  out.writeUInt32BE(head.length, 1);
  head.copy(out, 5);
  let p = 5 + head.length;
  for (const b of bins) {
    out.writeUInt32BE(b.length, p);
    out.set(b, p + 4);
    p += 4 + b.length;
  }
  return out;
}

/** Splits an envelope into its JSON text and binary fields (plain JSON: no fields). */
function openEnvelope(payload: Buffer): { json: string; bins: Buffer[] } {
  if (payload.length === 0 || payload[0] !== ENVELOPE) return { json: payload.toString('utf8'), bins: [] };
  if (payload.length < 5) throw new ProtocolError('control envelope truncated');
  const n = payload.readUInt32BE(1);
  if (5 + n > payload.length) throw new ProtocolError('control envelope: JSON overruns the frame');
  const bins: Buffer[] = [];
  let p = 5 + n;
  while (p < payload.length) {
    if (p + 4 > payload.length) throw new ProtocolError('control envelope: truncated field length');
    const len = payload.readUInt32BE(p);
    if (p + 4 + len > payload.length) throw new ProtocolError('control envelope: field overruns the frame');
    bins.push(payload.subarray(p + 4, p + 4 + len));
    p += 4 + len;
  }
  return { json: payload.toString('utf8', 5, 5 + n), bins };
}

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Parses and validates a control message; anything else is a ProtocolError. */
export function decodeControl(payload: Buffer): ControlMessage {
  const { json, bins } = openEnvelope(payload);
  const used = new Set<number>();
  let v: unknown;
  try {
    v = JSON.parse(json, (_k, x: unknown) => {
      if (typeof x !== 'object' || x === null || !('$bin' in x)) return x;
      const i = (x as { $bin: unknown }).$bin;
      if (
        Object.keys(x).length !== 1 ||
        typeof i !== 'number' ||
        !Number.isInteger(i) ||
        !bins[i] ||
        used.has(i)
      )
        throw new ProtocolError(`control envelope: bad binary field reference ${JSON.stringify(x)}`);
      used.add(i);
      return bins[i];
    });
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError('control frame is not JSON', { cause: err });
  }
  if (used.size !== bins.length) throw new ProtocolError('control envelope: unreferenced binary field');
  if (typeof v !== 'object' || v === null) throw new ProtocolError('control frame is not an object');
  const m = v as Record<string, unknown>;
  const int = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  switch (m.t) {
    case 'attach':
      if (typeof m.session === 'string' && /^[0-9a-f]{32}$/.test(m.session) && int(m.stream)) {
        return { t: 'attach', session: m.session, stream: m.stream as number };
      }
      break;
    case 'attached':
      if (int(m.ack)) return { t: 'attached', ack: m.ack as number };
      break;
    case 'req':
      if (int(m.id)) return { t: 'req', id: m.id as number, body: m.body };
      break;
    case 'res': {
      if (!int(m.id)) break;
      const e = m.error as Record<string, unknown> | undefined;
      if (e !== undefined) {
        if (
          typeof e !== 'object' ||
          e === null ||
          typeof e.message !== 'string' ||
          !CODES.has(String(e.code))
        )
          break;
        return { t: 'res', id: m.id as number, error: { code: e.code as ErrorCode, message: e.message } };
      }
      return { t: 'res', id: m.id as number, body: m.body };
    }
    default:
      break;
  }
  throw new ProtocolError(`malformed control message ${JSON.stringify(m).slice(0, 80)}`);
}
