// Control messages of an AMST session (JSON in Control frames): stream attachment, request/response
// for the application above (file open, have-queries, end), and their validation.
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

export function encodeControl(msg: ControlMessage): Buffer {
  return Buffer.from(JSON.stringify(msg));
}

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Parses and validates a control message; anything else is a ProtocolError. */
export function decodeControl(payload: Buffer): ControlMessage {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('control frame is not JSON', { cause: err });
  }
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
