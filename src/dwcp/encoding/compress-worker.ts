// Worker thread of CompressPool: compresses bundle bodies with compressBlock and hands the result
// back (transferred, not copied); the first worker also keeps the sender's whole-file SHA-256.
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { compressBlock, type CodecName } from './codec.js';

interface Job {
  readonly id: number;
  readonly raw: Uint8Array;
  readonly codec: CodecName;
  readonly level: number;
}

/** A running whole-file hash: `update` messages in order, then `digest` answers with the hex. */
type HashMessage =
  { readonly hash: 'update'; readonly data: Uint8Array } | { readonly hash: 'digest'; readonly id: number };

const port = parentPort;
if (!port) throw new Error('compress-worker.ts runs as a worker thread');
let running = createHash('sha256');
port.on('message', (m: Job | HashMessage) => {
  if ('hash' in m) {
    if (m.hash === 'update') running.update(m.data);
    else {
      port.postMessage({ id: m.id, digest: running.digest('hex') });
      running = createHash('sha256');
    }
    return;
  }
  try {
    const t0 = process.hrtime.bigint();
    const c = compressBlock(m.raw, { codec: m.codec, level: m.level });
    const ns = Number(process.hrtime.bigint() - t0);
    // The compressor's output may live outside the V8 heap: copy it into a transferable buffer.
    const out = c.data === m.raw ? m.raw : new Uint8Array(c.data);
    port.postMessage({ id: m.id, codec: c.codec, data: out, ns }, [out.buffer as ArrayBuffer]);
  } catch (err) {
    port.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
});
