// The sending end of `novacron transfer`: reads a file once, cuts it into content-defined chunks,
// asks the receiver which chunks it already holds (pipelined have-queries), encodes the rest as
// HDE records and streams them over an AMST session; ends with a whole-file SHA-256 the receiver
// checks before renaming the file into place. Memory is bounded by the AMST window and the
// query pipeline depth, not by the file size.
import { createReadStream, statSync } from 'node:fs';
import { basename } from 'node:path';
import { ProtocolError, ValidationError, ensureNovaCronError } from '../errors.js';
import { CdcChunker, DEFAULT_CDC, type CdcParams, type Chunk } from './encoding/chunker.js';
import { chooseCodec, type CodecChoice } from './encoding/codec.js';
import { hashBlock, isZeroBlock } from './encoding/hash.js';
import { FileRecordKind, encodeFileRecord, type BlockClass } from './encoding/record.js';
import {
  MATCH_CHECK_BYTES,
  MIN_PATCH_CHUNK,
  SUB_BLOCK,
  bitmapCount,
  encodeSimilarityQuery,
  matchCheck,
  subBlockCount,
  subBlockHashes,
  unmatchedSubBlocks,
  type SimilarityEntry,
} from './encoding/patch.js';
import {
  KNOWN_RUN_MAX_PARTS,
  encodeHeldRun,
  encodeKnownRun,
  type KnownRunPart,
} from './encoding/known-run.js';
import { BUNDLE_TARGET_BYTES, packBundle, sealBundle } from './encoding/bundle.js';
import { CompressPool } from './encoding/compress-pool.js';
import { HAVE_PREFIX_BYTES } from './chunk-index.js';
import { AmstSender } from './transport/sender.js';
import type { ConnectionSecurity, DwcpConnection } from './transport/connection.js';
import type { CongestionControlSetting } from './transport/congestion.js';
import { FILE_PROTOCOL_VERSION, checkFileName } from './file-receiver.js';

export interface SendProgress {
  /** Logical bytes of the file encoded and handed to the transport. */
  readonly bytes: number;
  readonly total: number;
  /** Bytes written to sockets so far. */
  readonly wireBytes: number;
  readonly streams: number;
}

export interface SendFileOptions {
  readonly host: string;
  readonly port: number;
  readonly security: ConnectionSecurity;
  /** Name at the receiver (default: the file's base name). */
  readonly name?: string;
  /** Initial stream count; `adaptive` lets AMST change it within [minStreams, maxStreams]. */
  readonly streams: number;
  readonly adaptive?: boolean;
  readonly minStreams?: number;
  readonly maxStreams?: number;
  /** Codec and level from the mode profile. */
  readonly codec: CodecChoice;
  readonly cdc?: CdcParams;
  readonly windowBytes?: number;
  /** TCP congestion control per stream (profile `congestion_control`). */
  readonly congestionControl?: CongestionControlSetting;
  /** Send changed chunks as patches against the receiver's old bytes (sub-chunk delta). Default true. */
  readonly patches?: boolean;
  /** Worker threads compressing bundles (default: cores − 1, 1…2; 0: on the main thread). */
  readonly compressThreads?: number;
  readonly onProgress?: (p: SendProgress) => void;
  /** Test hook: each AMST stream once established. */
  readonly onStream?: (index: number, conn: DwcpConnection) => void;
}

export interface TransferSummary {
  readonly name: string;
  readonly bytes: number;
  readonly wireBytes: number;
  readonly seconds: number;
  readonly streams: number;
  readonly chunks: Record<BlockClass, number>;
  readonly resentFrames: number;
  readonly resentBytes: number;
  readonly reconnects: number;
  readonly congestionControl: string | undefined;
  readonly sha256: string;
}

const BATCH_CHUNKS = 512;
/** Bundles compressing or waiting to be queued at once (memory: this × 256 KiB). */
const BUNDLES_IN_FLIGHT = 4;
const QUERY_DEPTH = 4;
const SESSION_DEDUP_MAX = 1 << 20;

/** What the receiver said about a batch: have-bits (one per hashed chunk) and patch bitmaps by chunk index. */
interface BatchReply {
  readonly bits: Buffer;
  readonly patches: Map<number, PatchPlan>;
}

/** The receiver's answer for one chunk: which sub-blocks of the grid with this phase it holds. */
interface PatchPlan {
  readonly bits: Buffer;
  readonly phase: number;
}

interface Batch {
  readonly chunks: Chunk[];
  readonly hashes: (Buffer | undefined)[];
  /** Session-wide ordinal of the batch's first hashed chunk (the others follow in order). */
  readonly firstOrdinal: number;
  held: Promise<BatchReply>;
}

/** Sends one file to a DWCP receiver; resolves with the summary once the receiver verified and renamed it. */
export async function sendFile(path: string, opts: SendFileOptions): Promise<TransferSummary> {
  const name = checkFileName(opts.name ?? basename(path));
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new ValidationError(`cannot read ${path}`, { cause: err });
  }
  const started = performance.now();
  const amst = await AmstSender.open({
    host: opts.host,
    port: opts.port,
    security: opts.security,
    streams: opts.streams,
    ...(opts.adaptive !== undefined ? { adaptive: opts.adaptive } : {}),
    ...(opts.minStreams !== undefined ? { minStreams: opts.minStreams } : {}),
    ...(opts.maxStreams !== undefined ? { maxStreams: opts.maxStreams } : {}),
    ...(opts.windowBytes !== undefined ? { windowBytes: opts.windowBytes } : {}),
    ...(opts.onStream ? { onStream: opts.onStream } : {}),
    ...(opts.congestionControl ? { congestionControl: opts.congestionControl } : {}),
  });
  const pool = new CompressPool(opts.compressThreads);
  try {
    // The open request travels while the first batch is read and hashed; data waits for its answer.
    // A receiver that holds no chunk at all needs no have-queries.
    const opened = amst.request({ t: 'open', name, size, v: FILE_PROTOCOL_VERSION }).then((r) => {
      const v = (r as { v?: unknown } | null)?.v ?? 1;
      if (v !== FILE_PROTOCOL_VERSION)
        throw new ProtocolError(
          `the receiver speaks DWCP file protocol version ${String(v)}, this sender version ${FILE_PROTOCOL_VERSION}`,
          { hint: 'run the same NovaCron version on both ends' },
        );
      const held = (r as { held?: unknown } | null)?.held;
      return typeof held === 'number' ? held : Number.POSITIVE_INFINITY;
    });
    opened.catch(() => {}); // observed by the first query
    const chunks: Record<BlockClass, number> = { zero: 0, known: 0, delta: 0, literal: 0 };
    // Chunks sent earlier in this session: known to the receiver once their frame is acknowledged.
    const sentInSession = new Map<string, number>();
    let logical = 0;
    let codec = opts.codec;
    let compressNs = 0;
    let compressIn = 0;
    let compressOut = 0;
    const progress = () => {
      const st = amst.stats;
      opts.onProgress?.({ bytes: logical, total: size, wireBytes: st.wireBytes, streams: st.streams });
    };

    // Have-bits, and for each held chunk next to one that is not (the possible anchors of patches)
    // where it lies in the receiver's file (mod SUB_BLOCK): the phase of the sub-block grids of
    // patches anchored on it.
    const haveBits = async (
      b: Omit<Batch, 'held'>,
      heldByReceiver: number,
    ): Promise<{ bits: Buffer; mods: (number | undefined)[] }> => {
      const prefixes = b.hashes.flatMap((h) => (h ? [h.subarray(0, HAVE_PREFIX_BYTES)] : []));
      if (prefixes.length === 0 || heldByReceiver === 0) return { bits: Buffer.alloc(0), mods: [] };
      const r = await amst.request({ t: 'have', o: b.firstOrdinal, h: Buffer.concat(prefixes) });
      const bits = (r as { bits?: unknown } | null)?.bits;
      const m = (r as { m?: unknown } | null)?.m;
      const n = prefixes.length;
      if (!Buffer.isBuffer(bits) || bits.length !== Math.ceil(n / 8) || !Buffer.isBuffer(m))
        throw new ProtocolError('have: malformed reply');
      const has = (q: number) => ((bits[q >> 3] ?? 0) & (1 << (q & 7))) !== 0;
      const mods: (number | undefined)[] = [];
      let k = 0;
      for (let q = 0; q < n; q++) {
        if (has(q) && (q === 0 || q === n - 1 || !has(q - 1) || !has(q + 1))) {
          if (k + 2 > m.length) throw new ProtocolError('have: reply too short');
          mods[q] = m.readUInt16BE(k) % SUB_BLOCK;
          k += 2;
        }
      }
      if (k !== m.length) throw new ProtocolError('have: reply too long');
      return { bits, mods };
    };

    // Shift (mod SUB_BLOCK) between a chunk's offset here and its base in the receiver's old file,
    // from the latest answer: sub-block grids are phased to the old file's SUB_BLOCK multiples.
    let baseShift = 0;
    // Chunks the receiver lacks, next to chunks it holds, are probably changed versions of what it
    // holds there: ask which of their sub-blocks it has (encoding/patch.ts).
    const similar = async (
      b: Omit<Batch, 'held'>,
      held: boolean[],
      heldMod: (number | undefined)[],
      ordinals: number[],
    ): Promise<Map<number, PatchPlan>> => {
      const patches = new Map<number, PatchPlan>();
      if (opts.patches === false) return patches;
      const n = b.chunks.length;
      const prev: number[] = new Array<number>(n).fill(-1);
      const next: number[] = new Array<number>(n).fill(-1);
      for (let i = 0, last = -1; i < n; i++) {
        prev[i] = last;
        if (held[i]) last = i;
      }
      for (let i = n - 1, last = -1; i >= 0; i--) {
        next[i] = last;
        if (held[i]) last = i;
      }
      // Shift (mod SUB_BLOCK) between new and old offsets at each held chunk whose old place the
      // receiver reported. It changes only where bytes were inserted or removed; a chunk whose
      // content the receiver holds at several places may have been reported at another copy, so
      // a shift that disagrees with the ones on both sides of it (which agree) is taken from them.
      const shifts = new Map<number, number>();
      const withMod: number[] = [];
      for (let i = 0; i < n; i++) {
        const m = heldMod[i];
        if (m === undefined) continue;
        shifts.set(i, (((b.chunks[i]!.offset - m) % SUB_BLOCK) + SUB_BLOCK) % SUB_BLOCK);
        withMod.push(i);
      }
      for (let j = 1; j + 1 < withMod.length; j++) {
        const before = shifts.get(withMod[j - 1]!)!;
        if (before === shifts.get(withMod[j + 1]!) && before !== shifts.get(withMod[j]!))
          shifts.set(withMod[j]!, before);
      }
      const entries: SimilarityEntry[] = [];
      const which: number[] = [];
      for (let i = 0; i < n; i++) {
        const c = b.chunks[i]!;
        if (held[i] || !b.hashes[i] || c.data.length < MIN_PATCH_CHUNK) continue;
        // Nearest held neighbour, the previous one first (a chunk after an insert lines up on it).
        const a = prev[i]! >= 0 ? prev[i]! : next[i]!;
        if (a < 0) continue;
        // The anchor's place in the old file fixes the grid; without it, the last reported shift.
        const shift = shifts.get(a);
        const phase =
          shift !== undefined
            ? (((c.offset - shift) % SUB_BLOCK) + SUB_BLOCK) % SUB_BLOCK
            : (((c.offset + baseShift) % SUB_BLOCK) + SUB_BLOCK) % SUB_BLOCK;
        entries.push({
          offset: c.offset,
          length: c.data.length,
          ordinal: ordinals[i]!,
          anchor: ordinals[a]!,
          anchorOffset: b.chunks[a]!.offset,
          phase,
          sub: subBlockHashes(c.data, phase),
        });
        which.push(i);
      }
      if (entries.length === 0) return patches;
      const r = await amst.request({ t: 'sim', q: encodeSimilarityQuery(entries) });
      const all = (r as { bits?: unknown } | null)?.bits;
      if (!Buffer.isBuffer(all)) throw new ProtocolError('sim: reply without bits');
      const shift = (r as { s?: unknown }).s;
      if (typeof shift === 'number' && Number.isInteger(shift) && shift >= 0 && shift < SUB_BLOCK)
        baseShift = shift;
      const checks = (r as { c?: unknown }).c;
      if (!Buffer.isBuffer(checks)) throw new ProtocolError('sim: reply without checks');
      let p = 0;
      let pc = 0;
      for (let k = 0; k < entries.length; k++) {
        const e = entries[k]!;
        const sb = subBlockCount(e.length, e.phase);
        const bm = all.subarray(p, p + Math.ceil(sb / 8));
        p += Math.ceil(sb / 8);
        if (bm.length !== Math.ceil(sb / 8)) throw new ProtocolError('sim: reply too short');
        if (bitmapCount(bm, sb) === 0) continue;
        const check = checks.subarray(pc, pc + MATCH_CHECK_BYTES);
        pc += MATCH_CHECK_BYTES;
        if (check.length !== MATCH_CHECK_BYTES) throw new ProtocolError('sim: reply too short');
        // A sub-block hash that matched falsely: the chunk goes whole instead.
        if (!check.equals(matchCheck(b.chunks[which[k]!]!.data, e.length, bm, e.phase))) continue;
        patches.set(which[k]!, { bits: bm, phase: e.phase });
      }
      if (p !== all.length || pc !== checks.length) throw new ProtocolError('sim: reply too long');
      return patches;
    };

    const query = async (b: Omit<Batch, 'held'>): Promise<BatchReply> => {
      const heldByReceiver = await opened;
      const { bits, mods } = await haveBits(b, heldByReceiver);
      const held: boolean[] = [];
      const heldMod: (number | undefined)[] = [];
      const ordinals: number[] = [];
      let q = 0;
      for (const h of b.hashes) {
        const has = h !== undefined && ((bits[q >> 3] ?? 0) & (1 << (q & 7))) !== 0;
        held.push(has);
        heldMod.push(has ? mods[q] : undefined);
        ordinals.push(h ? b.firstOrdinal + q : -1);
        if (h) q++;
      }
      const patches =
        heldByReceiver === 0 ? new Map<number, PatchPlan>() : await similar(b, held, heldMod, ordinals);
      return { bits, patches };
    };

    // Records wait in a bundle (about 256 KiB raw) that is compressed and sent as one Data frame.
    let bundle: Buffer[] = [];
    let bundleRaw = 0;
    // End of the last record in the bundle: file records give their offset relative to it.
    let bundleEnd = 0;
    let bundleHashes: Buffer[] = [];
    // Bundles are compressed on worker threads (CompressPool) while this thread goes on chunking
    // and hashing; they are sent in order, at most BUNDLES_IN_FLIGHT compressing at a time.
    let sendChain: Promise<void> = Promise.resolve();
    const inFlight: Promise<void>[] = [];
    const sendBundle = async (): Promise<void> => {
      if (bundle.length === 0) return;
      const body = packBundle(bundle);
      const rawLength = body.length;
      const hashes = bundleHashes;
      bundle = [];
      bundleRaw = 0;
      bundleEnd = 0;
      bundleHashes = [];
      const compressed = pool.compress(body, codec);
      const job = Promise.all([compressed, sendChain]).then(async ([c]) => {
        compressNs += c.ns;
        compressIn += rawLength;
        compressOut += c.data.length + 5;
        const seq = await amst.send(sealBundle(rawLength, c.codec, c.data));
        for (const h of hashes)
          if (sentInSession.size < SESSION_DEDUP_MAX) sentInSession.set(h.toString('hex'), seq);
      });
      job.catch(() => {}); // observed through inFlight / sendChain
      sendChain = job;
      inFlight.push(job);
      if (inFlight.length >= BUNDLES_IN_FLIGHT) await inFlight.shift();
    };
    const drainBundles = async (): Promise<void> => {
      await sendBundle();
      await Promise.all(inFlight.splice(0));
      await sendChain;
    };

    const emit = async (b: Batch): Promise<void> => {
      const { bits, patches } = await b.held;
      let q = 0;
      const push = (bytes: Buffer, end: number) => {
        bundle.push(bytes);
        bundleRaw += bytes.length + 4;
        bundleEnd = end;
      };
      // Consecutive chunks the receiver said it holds go as one held-run record, by ordinal; chunks
      // it holds because this session sent them earlier, as a known run by hash prefix
      // (encoding/known-run.ts).
      let held0 = -1;
      let heldCount = 0;
      let heldOffset = 0;
      let heldLength = 0;
      let run: KnownRunPart[] = [];
      let runOffset = 0;
      const flushRun = () => {
        if (heldCount > 0)
          push(
            encodeHeldRun({ offset: heldOffset, length: heldLength, first: held0, count: heldCount }),
            heldOffset + heldLength,
          );
        heldCount = 0;
        if (run.length > 0)
          push(encodeKnownRun(runOffset, run), runOffset + run.reduce((a, r) => a + r.length, 0));
        run = [];
      };
      for (let i = 0; i < b.chunks.length; i++) {
        const c = b.chunks[i]!;
        const h = b.hashes[i];
        let held = false;
        let sessionHeld = false;
        if (h) {
          held = ((bits[q >> 3] ?? 0) & (1 << (q & 7))) !== 0;
          q++;
          const earlier = sentInSession.get(h.toString('hex'));
          if (!held && earlier !== undefined && amst.isAcked(earlier)) sessionHeld = true;
        }
        if (held && h) {
          if (run.length > 0) flushRun();
          if (heldCount === 0) {
            held0 = b.firstOrdinal + q - 1;
            heldOffset = c.offset;
            heldLength = 0;
          }
          heldCount++;
          heldLength += c.data.length;
          chunks.known++;
          logical += c.data.length;
          if (heldCount >= KNOWN_RUN_MAX_PARTS) flushRun();
          continue;
        }
        if (sessionHeld && h) {
          if (heldCount > 0) flushRun();
          if (run.length === 0) runOffset = c.offset;
          run.push({ length: c.data.length, hash: h });
          chunks.known++;
          logical += c.data.length;
          if (run.length >= KNOWN_RUN_MAX_PARTS) flushRun();
          continue;
        }
        flushRun();
        // Blocks go uncompressed into the bundle; the bundle is compressed as a whole.
        const bm = h ? patches.get(i) : undefined;
        let bytes: Buffer;
        if (!h) {
          bytes = encodeFileRecord(FileRecordKind.Zero, c.offset, bundleEnd, { length: c.data.length });
          chunks.zero++;
        } else if (bm) {
          bytes = encodeFileRecord(FileRecordKind.Patch, c.offset, bundleEnd, {
            hash: h,
            payload: unmatchedSubBlocks(c.data, bm.bits, bm.phase),
          });
          chunks.delta++;
        } else {
          bytes = encodeFileRecord(FileRecordKind.Literal, c.offset, bundleEnd, { hash: h, payload: c.data });
          chunks.literal++;
        }
        push(bytes, c.offset + c.data.length);
        if (h) bundleHashes.push(h);
        logical += c.data.length;
        if (bundleRaw >= BUNDLE_TARGET_BYTES) await sendBundle();
      }
      flushRun();
      if (bundleRaw >= BUNDLE_TARGET_BYTES) await sendBundle();
      // Re-pick the codec from what the link and the CPU are doing.
      if (compressNs > 0 && compressIn > 4 << 20) {
        const elapsed = (performance.now() - started) / 1000;
        codec = chooseCodec({
          profile: opts.codec,
          linkBytesPerSec: amst.stats.wireBytes / Math.max(elapsed, 1e-3),
          compressBytesPerSec: compressIn / (compressNs / 1e9),
          ratio: compressIn / Math.max(1, compressOut),
        });
        // Older measurements count half at each decision, so a change in the data shows soon.
        compressNs /= 2;
        compressIn /= 2;
        compressOut /= 2;
      }
      progress();
    };

    const pipeline: Batch[] = [];
    let nextOrdinal = 0;
    let pending: Chunk[] = [];
    const flushBatch = async () => {
      if (pending.length === 0) return;
      const cs = pending;
      pending = [];
      const hashes = cs.map((c) => (isZeroBlock(c.data) ? undefined : hashBlock(c.data)));
      const firstOrdinal = nextOrdinal;
      for (const h of hashes) if (h) nextOrdinal++;
      const b: Batch = {
        chunks: cs,
        hashes,
        firstOrdinal,
        held: Promise.resolve({ bits: Buffer.alloc(0), patches: new Map<number, PatchPlan>() }),
      };
      b.held = query(b);
      b.held.catch(() => {}); // observed in emit; avoid an unhandled rejection meanwhile
      pipeline.push(b);
      if (pipeline.length >= QUERY_DEPTH) await emit(pipeline.shift()!);
    };

    const chunker = new CdcChunker(opts.cdc ?? DEFAULT_CDC);
    for await (const buf of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
      pool.hashUpdate(buf); // whole-file SHA-256 on a worker thread
      for (const c of chunker.push(buf)) {
        pending.push(c);
        if (pending.length >= BATCH_CHUNKS) await flushBatch();
      }
    }
    pending.push(...chunker.end());
    await flushBatch();
    while (pipeline.length > 0) await emit(pipeline.shift()!);
    await drainBundles();
    await opened; // an empty file has no batch that waited for it
    if (logical !== size) throw new ValidationError(`${path} changed size while it was being sent`);
    // No need to wait for the acks first: the receiver answers `end` once every byte is written
    // and the whole file verified and synced, which saves a round trip.
    const sha256 = await pool.hashDigest();
    await amst.request({ t: 'end', sha256 });
    // The file is verified and in place at the receiver: that is the transfer time.
    const seconds = (performance.now() - started) / 1000;
    await amst.flush();
    const st = amst.stats;
    await amst.close();
    progress();
    return {
      name,
      bytes: size,
      wireBytes: amst.stats.wireBytes,
      seconds,
      streams: st.maxStreamsUsed,
      chunks,
      resentFrames: st.resentFrames,
      resentBytes: st.resentBytes,
      reconnects: st.reconnects,
      congestionControl: st.congestionControl,
      sha256,
    };
  } catch (err) {
    amst.abort(ensureNovaCronError(err));
    throw err;
  } finally {
    await pool.close();
  }
}
