// Compression off the main thread. The file sender's main thread reads, chunks, hashes and
// encrypts; compressing the bundles (the largest single cost on compressible data) runs on worker
// threads meanwhile, so a sender uses a second core. Jobs resolve independently; the caller keeps
// the order. Without worker threads (or with `threads: 0`) it compresses inline.
import { createHash, type Hash } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { ErrorCode, NovaCronError } from '../../errors.js';
import { compressBlock, type CodecChoice, type CodecId } from './codec.js';
import { startModuleWorker } from '../../util/module-worker.js';

export interface Compressed {
  readonly codec: CodecId;
  readonly data: Uint8Array;
  /** Time the compressor took, ns (for the codec policy). */
  readonly ns: number;
}

interface Reply {
  readonly id: number;
  readonly digest?: string;
  readonly codec?: CodecId;
  readonly data?: Uint8Array;
  readonly ns?: number;
  readonly error?: string;
}

interface Slot {
  readonly worker: Worker;
  busy: number;
}

export class CompressPool {
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<number, { resolve: (c: Compressed) => void; reject: (e: Error) => void }>();
  private readonly digests = new Map<
    number,
    { resolve: (hex: string) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private failed: Error | undefined;
  /** Whole-file hash kept on the main thread when there are no workers. */
  private inlineHash: Hash | undefined;

  /** `threads` workers (default: one less than the cores, at least 1, at most 2). */
  constructor(threads = Math.max(1, Math.min(2, availableParallelism() - 1))) {
    for (let i = 0; i < threads; i++) {
      const worker = startModuleWorker(import.meta.url, './compress-worker');
      worker.unref();
      const slot: Slot = { worker, busy: 0 };
      worker.on('message', (r: Reply) => {
        if (r.digest !== undefined) {
          const d = this.digests.get(r.id);
          this.digests.delete(r.id);
          d?.resolve(r.digest);
          return;
        }
        slot.busy--;
        const j = this.jobs.get(r.id);
        if (!j) return;
        this.jobs.delete(r.id);
        if (r.error !== undefined || r.data === undefined || r.codec === undefined)
          j.reject(new NovaCronError(ErrorCode.Internal, `compression failed: ${r.error ?? 'no data'}`));
        else j.resolve({ codec: r.codec, data: r.data, ns: r.ns ?? 0 });
      });
      worker.on('error', (err) => this.fail(err));
      this.slots.push(slot);
    }
  }

  /** Compresses `raw` (which is handed over to the worker: do not use it afterwards). */
  compress(raw: Uint8Array, choice: CodecChoice): Promise<Compressed> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.slots.length === 0 || choice.codec === 'none') {
      const t0 = process.hrtime.bigint();
      const c = compressBlock(raw, choice);
      return Promise.resolve({ ...c, ns: Number(process.hrtime.bigint() - t0) });
    }
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.busy < slot.busy) slot = s;
    const id = this.nextId++;
    // A buffer that owns its whole ArrayBuffer is moved; a view of a shared one is copied first.
    const own = raw.byteOffset === 0 && raw.byteLength === raw.buffer.byteLength ? raw : new Uint8Array(raw);
    return new Promise<Compressed>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject });
      slot.busy++;
      slot.worker.postMessage({ id, raw: own, codec: choice.codec, level: choice.level }, [
        own.buffer as ArrayBuffer,
      ]);
    });
  }

  /**
   * Feeds the running SHA-256 (on the first worker, in call order). `data` is copied, so the caller
   * may reuse it.
   */
  hashUpdate(data: Uint8Array): void {
    const w = this.slots[0]?.worker;
    if (!w) {
      (this.inlineHash ??= createHash('sha256')).update(data);
      return;
    }
    const copy = new Uint8Array(data);
    w.postMessage({ hash: 'update', data: copy }, [copy.buffer]);
  }

  /** Hex SHA-256 of everything fed to `hashUpdate` since the last digest. */
  hashDigest(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    const w = this.slots[0]?.worker;
    if (!w) {
      const hex = (this.inlineHash ?? createHash('sha256')).digest('hex');
      this.inlineHash = undefined;
      return Promise.resolve(hex);
    }
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      this.digests.set(id, { resolve, reject });
      w.postMessage({ hash: 'digest', id });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
    this.fail(new NovaCronError(ErrorCode.Internal, 'compression pool closed'));
  }

  private fail(err: Error): void {
    this.failed ??= err;
    for (const j of this.jobs.values()) j.reject(this.failed);
    this.jobs.clear();
    for (const d of this.digests.values()) d.reject(this.failed);
    this.digests.clear();
  }
}
