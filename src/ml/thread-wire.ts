// Messages between thread-transport.ts and transport-worker.ts, and the one helper both use to
// hand bytes over without copying.

export type TransportRequest =
  | {
      readonly t: 'call';
      readonly id: number;
      readonly path: string;
      /** The framed request (transferred). */
      readonly framed: ArrayBuffer;
      readonly timeoutMs: number;
    }
  | { readonly t: 'close' };

export type TransportReply =
  /** The worker has loaded its modules and takes calls. */
  | { readonly t: 'ready' }
  | { readonly t: 'ok'; readonly id: number; readonly bytes: ArrayBuffer }
  | { readonly t: 'err'; readonly id: number; readonly code: number; readonly details: string };

/**
 * The bytes of `b` as an ArrayBuffer that may be transferred: its own when the view spans all of
 * it, else a copy (small Buffers share Node's 8 KiB pool, which must never be detached).
 */
export function ownedBytes(b: Uint8Array): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer)
    return b.buffer;
  const copy = new Uint8Array(b.byteLength);
  copy.set(b);
  return copy.buffer;
}
