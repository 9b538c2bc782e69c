// Worker thread of CompressPool: compresses bundle bodies with compressBlock and hands the result
// back (transferred, not copied).
import { parentPort } from 'node:worker_threads';
import { compressBlock, type CodecName } from './codec.js';

interface Job {
  readonly id: number;
  readonly raw: Uint8Array;
  readonly codec: CodecName;
  readonly level: number;
}

const port = parentPort;
if (!port) throw new Error('compress-worker.ts runs as a worker thread');
port.on('message', (m: Job) => {
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
