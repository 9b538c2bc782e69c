// The receiving end of `novacron transfer`: one AMST server writing each incoming file into DIR
// under a temporary name, reusing chunks from every file it already holds (by its chunk index),
// verifying each chunk and then the whole file before an atomic rename, and keeping a manifest of
// the file's chunks for later transfers.
import { mkdirSync, readdirSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join, relative } from 'node:path';
import {
  ErrorCode,
  IntegrityError,
  InvalidStateError,
  NovaCronError,
  ProtocolError,
  ValidationError,
} from '../errors.js';
import {
  BlockKind,
  FileRecordKind,
  decodeFileRecord,
  decodeRecord,
  isFileRecord,
  materialize,
  verifyFileChunk,
  type FileRecord,
} from './encoding/record.js';
import { decodeBundle } from './encoding/bundle.js';
import {
  decodeHeldRun,
  decodeKnownRun,
  isHeldRun,
  isKnownRun,
  materializeHeldRun,
  materializeKnownRun,
} from './encoding/known-run.js';
import {
  SUB_BLOCK,
  applySubBlocks,
  bitmapCount,
  matchCheck,
  decodeSimilarityQuery,
  matchSubBlocks,
  subBlockCount,
} from './encoding/patch.js';
import {
  ChunkIndex,
  HAVE_PREFIX_BYTES,
  encodeManifestEntry,
  manifestBytes,
  type ChunkLocation,
} from './chunk-index.js';
import { AmstServer, type SessionHandler } from './transport/server.js';
import type { ConnectionSecurity } from './transport/connection.js';
import type { DwcpConnection } from './transport/connection.js';

export interface ReceiverOptions {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly security: ConnectionSecurity;
  /** Reported after each file is verified and renamed into place. */
  readonly onFile?: (info: { name: string; bytes: number; path: string }) => void;
  readonly onError?: (err: NovaCronError) => void;
  /** Test hook: every accepted stream. */
  readonly onStream?: (conn: DwcpConnection) => void;
  readonly syncBytes?: number;
  /** A session whose streams all closed is abandoned after this long (AmstServer's default: 30 s). */
  readonly idleTimeoutMs?: number;
}

export interface FileReceiver {
  readonly address: { host: string; port: number };
  /** Stops listening; transfers in progress get up to `graceMs` to finish. */
  close(graceMs?: number): Promise<void>;
}

const MAX_HAVE_QUERY = 65536;
/**
 * Version of the file-transfer protocol (the open/have/sim/end requests and the records they
 * imply). Sender and receiver exchange it in `open` and refuse a peer speaking another one.
 * 2: binary control bodies, have-queries by 12-byte prefix and ordinal, held runs, anchors by ordinal.
 */
export const FILE_PROTOCOL_VERSION = 2;
/** The background whole-file hash runs once at least this much new contiguous data is written. */
const HASH_BEHIND_BYTES = 4 << 20;
/** `end` fails when no more data arrives for this long while bytes are still missing. */
const END_STALL_MS = 60_000;

/** A file name a sender may write: one path component, no leading dot (those are ours). */
export function checkFileName(name: string): string {
  if (!/^[^/\\\0]+$/.test(name) || name.startsWith('.') || name.length > 255) {
    throw new ValidationError(`invalid transfer name ${JSON.stringify(name)}`, {
      hint: 'a plain file name, not starting with "." and without "/"',
    });
  }
  return name;
}

/** Partial files of abandoned transfers are kept this long for a restarted sender to reuse. */
export const PARTIAL_KEEP_MS = 24 * 3600 * 1000;

/** What the sessions of one receiver share. */
interface ReceiverContext {
  readonly index: ChunkIndex;
  readonly manifestDir: string;
  /** Verified chunks of transfers whose sender went away, one file per name (see keepPartial). */
  readonly partialDir: string;
  /** The session writing each name now. */
  readonly writing: Map<string, string>;
  /** Ends a session of the same name that has no stream left, so its chunks can be reused. */
  supersede(sessionId: string, name: string): void;
}

const partialManifest = (ctx: ReceiverContext, name: string): string =>
  join(ctx.manifestDir, `${encodeURIComponent(name)}.partial.manifest`);
const partialPath = (ctx: ReceiverContext, name: string): string =>
  join(ctx.partialDir, encodeURIComponent(name));

/** Removes partial files older than PARTIAL_KEEP_MS, and manifests whose partial file is gone. */
function prunePartials(partialDir: string, manifestDir: string, now = Date.now()): void {
  for (const f of readdirSync(partialDir)) {
    try {
      if (now - statSync(join(partialDir, f)).mtimeMs > PARTIAL_KEEP_MS) unlinkSync(join(partialDir, f));
    } catch {
      // gone meanwhile
    }
  }
  const kept = new Set(readdirSync(partialDir));
  for (const m of readdirSync(manifestDir)) {
    if (!m.endsWith('.partial.manifest')) continue;
    if (kept.has(m.slice(0, -'.partial.manifest'.length))) continue;
    try {
      unlinkSync(join(manifestDir, m));
    } catch {
      // gone meanwhile
    }
  }
}

/** Starts a DWCP file receiver on host:port writing into `dir`. */
export async function createReceiver(opts: ReceiverOptions): Promise<FileReceiver> {
  const manifestDir = join(opts.dir, '.dwcp', 'manifests');
  const partialDir = join(opts.dir, '.dwcp', 'partial');
  mkdirSync(manifestDir, { recursive: true });
  mkdirSync(partialDir, { recursive: true });
  prunePartials(partialDir, manifestDir);
  let server: AmstServer | undefined = undefined;
  const ctx: ReceiverContext = {
    index: ChunkIndex.load(opts.dir, manifestDir),
    manifestDir,
    partialDir,
    writing: new Map(),
    supersede(sessionId, name) {
      const other = this.writing.get(name);
      if (!other || other === sessionId) return;
      server?.abandonIfIdle(
        other,
        new NovaCronError(
          ErrorCode.Cancelled,
          `DWCP session ${other} superseded: a new transfer of ${name} started while it had no stream`,
        ),
      );
    },
  };
  server = await AmstServer.listen({
    host: opts.host,
    port: opts.port,
    security: opts.security,
    ...(opts.syncBytes !== undefined ? { syncBytes: opts.syncBytes } : {}),
    ...(opts.idleTimeoutMs !== undefined ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    ...(opts.onStream ? { onStream: opts.onStream } : {}),
    ...(opts.onError ? { onStreamError: opts.onError } : {}),
    onSession: (id) => new FileSession(id, opts, ctx),
  });
  const s = server;
  return { address: s.address, close: (graceMs?: number) => s.close(graceMs) };
}

class FileSession implements SessionHandler {
  private fh: FileHandle | undefined;
  private name = '';
  private size = 0;
  private tempPath = '';
  private entries: Buffer[] = [];
  private done = false;
  // Whole-file SHA-256, computed behind the writes: bundles cover consecutive ranges in seq order,
  // so once seqs 1..k are written, [0, end of k) is final and is read back and hashed while the
  // transfer goes on; `end` only hashes the remainder.
  private readonly whole = createHash('sha256');
  private hashedPos = 0;
  private hashTarget = 0;
  private nextHashSeq = 1;
  private readonly seqEnds = new Map<number, number>();
  private hashing: Promise<void> = Promise.resolve();
  private hashError: Error | undefined;
  /** Wakes an `end` that arrived before the last data (the sender does not wait for acks first). */
  private progress: (() => void) | undefined;
  /** Bases of chunks a similarity query matched, by chunk offset, until their patch arrives. */
  private readonly patchBases = new Map<
    number,
    { file: string; offset: number; length: number; phase: number; bits: Buffer }
  >();
  /** Where the last similarity match lay in the old file, relative to the new offset. */
  private lastMatch: { file: string; shift: number } | undefined;
  /**
   * Hash prefixes of the chunks this session's have-answers said are held, by ordinal, until a
   * held run uses them (anchors of similarity queries refer to them too).
   */
  private readonly heldByOrdinal = new Map<number, Buffer>();

  private readonly index: ChunkIndex;
  private readonly manifestDir: string;

  constructor(
    private readonly id: string,
    private readonly opts: ReceiverOptions,
    private readonly ctx: ReceiverContext,
  ) {
    this.index = ctx.index;
    this.manifestDir = ctx.manifestDir;
  }

  async onRequest(body: unknown): Promise<unknown> {
    const b = (body ?? {}) as Record<string, unknown>;
    switch (b.t) {
      case 'open':
        return this.open(b);
      case 'have':
        return this.have(b);
      case 'sim':
        return this.similar(b);
      case 'end':
        return this.end(b);
      default:
        throw new ProtocolError(`unknown request ${String(b.t)}`);
    }
  }

  private async open(b: Record<string, unknown>): Promise<unknown> {
    const v = b.v ?? 1;
    if (v !== FILE_PROTOCOL_VERSION)
      throw new ProtocolError(
        `the sender speaks DWCP file protocol version ${String(v)}, this receiver version ${FILE_PROTOCOL_VERSION}`,
        { hint: 'run the same NovaCron version on both ends' },
      );
    if (this.fh) return { ok: true, held: this.index.size, v: FILE_PROTOCOL_VERSION };
    const name = checkFileName(String(b.name));
    const size = b.size;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
      throw new ProtocolError('open: bad size');
    // A session of the same name whose sender is gone (no stream left) ends now and keeps its
    // chunks as a partial file, which the have-queries of this transfer then find.
    this.ctx.supersede(this.id, name);
    this.ctx.writing.set(name, this.id);
    this.name = name;
    this.size = size;
    this.tempPath = join(this.opts.dir, `.${name}.${this.id.slice(0, 12)}.dwcp-part`);
    this.fh = await open(this.tempPath, 'w+');
    await this.fh.truncate(size); // sparse: zero chunks need no write
    return { ok: true, held: this.index.size, v: FILE_PROTOCOL_VERSION };
  }

  /**
   * Answers a have-query: `h` holds the hash prefixes of chunks with ordinals `o`, `o`+1, …; the
   * answer is a bitmap of the ones held, and for each held chunk next to one that is not (or at
   * either end of the query) its old offset mod SUB_BLOCK (u16): the sender phases the sub-block
   * grids of patches anchored on it with that.
   */
  private have(b: Record<string, unknown>): unknown {
    const raw = b.h;
    const first = b.o;
    if (
      !Buffer.isBuffer(raw) ||
      raw.length % HAVE_PREFIX_BYTES !== 0 ||
      raw.length / HAVE_PREFIX_BYTES > MAX_HAVE_QUERY
    )
      throw new ProtocolError('have: bad hash list');
    // Ordinals name chunks in held runs and anchors; queries may arrive in any order (streams).
    if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0)
      throw new ProtocolError('have: bad first ordinal');
    const n = raw.length / HAVE_PREFIX_BYTES;
    const bits = Buffer.alloc(Math.ceil(n / 8));
    const locs: (ChunkLocation | undefined)[] = [];
    for (let i = 0; i < n; i++) {
      const prefix = raw.subarray(i * HAVE_PREFIX_BYTES, (i + 1) * HAVE_PREFIX_BYTES);
      const loc = this.index.locate(prefix);
      locs.push(loc);
      if (loc) {
        bits[i >> 3]! |= 1 << (i & 7);
        this.heldByOrdinal.set(first + i, Buffer.from(prefix));
      }
    }
    const mods: number[] = [];
    for (let i = 0; i < n; i++) {
      const loc = locs[i];
      if (loc && (i === 0 || i === n - 1 || !locs[i - 1] || !locs[i + 1])) mods.push(loc.offset % SUB_BLOCK);
    }
    const m = Buffer.allocUnsafe(mods.length * 2);
    mods.forEach((v, i) => m.writeUInt16BE(v, i * 2));
    return { bits, m };
  }

  /**
   * Answers a similarity query (see encoding/patch.ts): for each chunk, lines the old file up on
   * the anchor chunk and reports which 2 KiB sub-blocks it already holds there. Remembers the
   * base of each chunk with a match for the patch record that follows.
   */
  private similar(b: Record<string, unknown>): unknown {
    if (!Buffer.isBuffer(b.q)) throw new ProtocolError('sim: no query');
    const entries = decodeSimilarityQuery(b.q, MAX_HAVE_QUERY);
    const out: Buffer[] = [];
    // Per entry with a match: a check over the matched sub-blocks of the base (patch.ts matchCheck).
    const checks: Buffer[] = [];
    for (const e of entries) {
      const n = subBlockCount(e.length, e.phase);
      let best: { bits: Buffer; count: number; file: string; offset: number; base: Buffer } | undefined;
      // Candidate bases: the old file lined up on the anchor, and on the shift of the last chunk
      // that matched.
      const anchor = this.heldByOrdinal.get(e.anchor);
      if (!anchor) throw new ProtocolError(`sim: anchor ${e.anchor} is not a chunk reported held`);
      // Each place the anchor's content is held: identical files line up on any of their copies.
      const candidates: { file: string; offset: number }[] = [];
      for (const loc of this.index.locateAll(anchor))
        if (loc.file !== this.tempPath)
          candidates.push({ file: loc.file, offset: loc.offset + (e.offset - e.anchorOffset) });
      // The old file lined up so the chunk ends where the next chunk begins when the receiver
      // holds that one (a chunk just before an insert lines up on what follows, not on the anchor).
      const after = e.anchor !== e.ordinal + 1 ? this.heldByOrdinal.get(e.ordinal + 1) : undefined;
      if (after)
        for (const loc of this.index.locateAll(after))
          if (loc.file !== this.tempPath && loc.offset >= e.length)
            candidates.push({ file: loc.file, offset: loc.offset - e.length });
      const last = this.lastMatch;
      if (last && !candidates.some((c) => c.file === last.file && c.offset === e.offset + last.shift))
        candidates.push({ file: last.file, offset: e.offset + last.shift });
      if (e.offset + e.length <= this.size) {
        for (const c of candidates) {
          if (c.offset < 0) continue;
          const base = this.index.readAt(c.file, c.offset, e.length);
          if (!base || base.length === 0) continue;
          const bits = matchSubBlocks(e.sub, e.length, base, e.phase);
          const count = bitmapCount(bits, n);
          if (count > 0 && (!best || count > best.count)) best = { bits, count, base, ...c };
          if (best && best.count === n) break;
        }
      }
      if (best) {
        this.patchBases.set(e.offset, {
          file: best.file,
          offset: best.offset,
          length: e.length,
          phase: e.phase,
          bits: best.bits,
        });
        this.lastMatch = { file: best.file, shift: best.offset - e.offset };
      }
      out.push(best ? best.bits : Buffer.alloc(Math.ceil(n / 8)));
      if (best) checks.push(matchCheck(best.base, e.length, best.bits, e.phase));
    }
    // The shift (mod SUB_BLOCK) between new and old offsets at the last match: the sender phases
    // its next sub-block grids with it.
    const m = this.lastMatch;
    return {
      bits: Buffer.concat(out),
      c: Buffer.concat(checks),
      ...(m ? { s: ((m.shift % SUB_BLOCK) + SUB_BLOCK) % SUB_BLOCK } : {}),
    };
  }

  private patchBase(offset: number, length: number): Buffer | undefined {
    const pb = this.patchBases.get(offset);
    if (!pb) return undefined;
    this.patchBases.delete(offset);
    return this.index.readAt(pb.file, pb.offset, length);
  }

  /** Rebuilds the chunk of a file patch record from what the similarity answer for its offset said. */
  private filePatch(rec: FileRecord): { data: Buffer; hash: Buffer } {
    const pb = this.patchBases.get(rec.offset);
    if (!pb) throw new IntegrityError(`patch at offset ${rec.offset} has no base at the receiver`);
    this.patchBases.delete(rec.offset);
    const base = this.index.readAt(pb.file, pb.offset, pb.length);
    if (!base) throw new IntegrityError(`patch at offset ${rec.offset}: its base is no longer readable`);
    let data: Buffer;
    try {
      data = applySubBlocks(rec.payload, pb.length, base, pb.bits, pb.phase);
    } catch (err) {
      throw new IntegrityError(`patch at offset ${rec.offset} is malformed`, { cause: err });
    }
    return { data, hash: verifyFileChunk(data, rec.hash!, rec.offset) };
  }

  /** Writes one bundle: every record verified, contiguous blocks coalesced into one write. */
  async onData(seq: number, payload: Buffer): Promise<void> {
    const fh = this.fh;
    if (!fh || this.done) throw new InvalidStateError('data before open or after end');
    let runStart = -1;
    let runEnd = -1;
    let parts: Buffer[] = [];
    let written: { hash: Buffer; offset: number; length: number }[] = [];
    // Index entries are added only once the bytes are in the file: a have-query answered "yes"
    // may be followed at once by a known record that reads them.
    const flush = async () => {
      if (parts.length === 0) return;
      const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      await fh.write(data, 0, data.length, runStart);
      // A session that ended meanwhile has moved or removed its part file: nothing to index.
      if (this.fh !== fh) return;
      for (const w of written) {
        this.index.add(w.hash, { file: this.tempPath, offset: w.offset, length: w.length }, true);
        this.entries.push(encodeManifestEntry(w.offset, w.length, w.hash));
      }
      parts = [];
      written = [];
    };
    /** A verified block at its offset: joins the pending write when contiguous, else starts one. */
    const append = async (part: { offset: number; data: Buffer; hash: Buffer }): Promise<void> => {
      if (part.offset !== runEnd) {
        await flush();
        runStart = part.offset;
      }
      parts.push(part.data);
      runEnd = part.offset + part.data.length;
      written.push({ hash: part.hash, offset: part.offset, length: part.data.length });
    };
    let lastEnd = -1;
    for (const bytes of decodeBundle(payload)) {
      if (isHeldRun(bytes)) {
        const run = decodeHeldRun(bytes);
        if (run.offset + run.length > this.size)
          throw new IntegrityError(`record ${run.offset}+${run.length} beyond the file size ${this.size}`);
        lastEnd = run.offset + run.length;
        const chunks = materializeHeldRun(run, (ord) => {
          const prefix = this.heldByOrdinal.get(ord);
          if (!prefix) return undefined;
          this.heldByOrdinal.delete(ord);
          const loc = this.index.locate(prefix);
          return { prefix, data: loc ? this.index.read(prefix, loc.length) : undefined };
        });
        for (const part of chunks) {
          await append(part);
        }
        continue;
      }
      if (isKnownRun(bytes)) {
        const run = decodeKnownRun(bytes);
        if (run.offset + run.length > this.size)
          throw new IntegrityError(`record ${run.offset}+${run.length} beyond the file size ${this.size}`);
        lastEnd = run.offset + run.length;
        for (const part of materializeKnownRun(run, (h, len) => this.index.read(h, len))) {
          await append(part);
        }
        continue;
      }
      if (isFileRecord(bytes)) {
        const rec = decodeFileRecord(bytes, Math.max(0, lastEnd));
        let data: Buffer | undefined;
        let hash: Buffer | undefined;
        let length: number;
        if (rec.kind === FileRecordKind.Patch) {
          ({ data, hash } = this.filePatch(rec));
          length = data.length;
        } else if (rec.kind === FileRecordKind.Literal) {
          data = rec.payload;
          hash = verifyFileChunk(data, rec.hash!, rec.offset);
          length = data.length;
        } else length = rec.length!;
        if (rec.offset + length > this.size)
          throw new IntegrityError(`record ${rec.offset}+${length} beyond the file size ${this.size}`);
        lastEnd = rec.offset + length;
        if (!data || !hash) continue; // zeros: the part file is sparse
        await append({ offset: rec.offset, data, hash });
        continue;
      }
      const rec = decodeRecord(bytes);
      if (rec.offset + rec.length > this.size) {
        throw new IntegrityError(`record ${rec.offset}+${rec.length} beyond the file size ${this.size}`);
      }
      lastEnd = rec.offset + rec.length;
      if (rec.kind === BlockKind.Zero) continue;
      const data = materialize(
        rec,
        (h, len) => this.index.read(h, len),
        (off, len) => this.patchBase(off, len),
      );
      await append({ offset: rec.offset, data, hash: rec.hash });
    }
    await flush();
    this.seqEnds.set(seq, lastEnd);
    let advanced = false;
    for (
      let e = this.seqEnds.get(this.nextHashSeq);
      e !== undefined;
      e = this.seqEnds.get(this.nextHashSeq)
    ) {
      this.seqEnds.delete(this.nextHashSeq++);
      if (e > this.hashTarget) {
        this.hashTarget = e;
        advanced = true;
      }
    }
    if (advanced) {
      const p = this.progress;
      this.progress = undefined;
      p?.();
    }
    if (advanced && this.hashTarget - this.hashedPos >= HASH_BEHIND_BYTES) {
      const target = this.hashTarget;
      this.hashing = this.hashing.then(() => this.hashUpTo(target));
    }
  }

  /** Reads [hashedPos, target) back from the part file into the whole-file hash. */
  private async hashUpTo(target: number): Promise<void> {
    const fh = this.fh;
    if (!fh || this.hashError || target <= this.hashedPos) return;
    const buf = Buffer.allocUnsafe(1 << 20);
    try {
      while (this.hashedPos < target) {
        const { bytesRead } = await fh.read(
          buf,
          0,
          Math.min(buf.length, target - this.hashedPos),
          this.hashedPos,
        );
        if (bytesRead <= 0) throw new IntegrityError('received file is shorter than announced');
        this.whole.update(buf.subarray(0, bytesRead));
        this.hashedPos += bytesRead;
      }
    } catch (err) {
      this.hashError = err as Error;
    }
  }

  async sync(): Promise<void> {
    // After `end` the file is synced and closed by end itself.
    if (this.done) return;
    await this.fh?.datasync();
  }

  /** Verifies size and whole-file SHA-256, then renames into place and records the manifest. */
  private async end(b: Record<string, unknown>): Promise<unknown> {
    const fh = this.fh;
    if (!fh) throw new InvalidStateError('end before open');
    if (this.done) return { ok: true };
    const want = String(b.sha256 ?? '');
    // The sender asks as soon as it has queued the last record: wait until every byte is written
    // (records arrive in order of seq; a gap that does not close within END_STALL_MS is an error).
    while (this.hashTarget < this.size) {
      const before = this.hashTarget;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, END_STALL_MS);
        this.progress = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      if (this.hashTarget === before)
        throw new IntegrityError(
          `end: the file is incomplete (${this.hashTarget} of ${this.size} bytes in order after ${END_STALL_MS / 1000} s)`,
        );
    }
    await this.hashing;
    await this.hashUpTo(this.size);
    if (this.hashError) throw this.hashError;
    const got = this.whole.digest('hex');
    if (got !== want)
      throw new IntegrityError(
        `received file fails its SHA-256 check (${got.slice(0, 16)} != ${want.slice(0, 16)})`,
      );
    // Detach the handle first: a periodic sync() of the session must not touch a closing file.
    this.fh = undefined;
    this.done = true;
    try {
      await fh.sync();
      await fh.close();
    } catch (err) {
      this.done = false; // onEnd removes the part file
      await fh.close().catch(() => {});
      throw err;
    }
    const finalPath = join(this.opts.dir, this.name);
    this.index.closeFiles();
    renameSync(this.tempPath, finalPath);
    const st = statSync(finalPath);
    const header = { name: this.name, size: this.size, mtimeMs: st.mtimeMs, sha256: got };
    const entries = Buffer.concat(this.entries);
    writeFileSync(
      join(this.manifestDir, `${encodeURIComponent(this.name)}.manifest`),
      manifestBytes(header, entries),
    );
    // Chunks now live in the final file, not the temporary one; the old version's are gone.
    this.index.removeFile(this.tempPath);
    this.index.removeFile(finalPath);
    this.index.loadManifest(this.opts.dir, manifestBytes(header, entries));
    this.dropPartial();
    if (this.ctx.writing.get(this.name) === this.id) this.ctx.writing.delete(this.name);
    this.entries = [];
    this.patchBases.clear();
    // After the answer to `end` is on its way, so a caller that closes the receiver on this event does not cut it off.
    const info = { name: this.name, bytes: this.size, path: finalPath };
    setImmediate(() => this.opts.onFile?.(info));
    return { ok: true, sha256: got };
  }

  onEnd(err: Error | undefined): void {
    this.index.closeFiles();
    if (this.done) return;
    if (this.ctx.writing.get(this.name) === this.id) this.ctx.writing.delete(this.name);
    const fh = this.fh;
    this.fh = undefined;
    if (this.tempPath) {
      this.index.removeFile(this.tempPath);
      if (!this.keepPartial()) {
        try {
          unlinkSync(this.tempPath);
        } catch {
          // Already gone.
        }
      }
    }
    void fh?.close().catch(() => {});
    if (err)
      this.opts.onError?.(
        err instanceof NovaCronError
          ? err
          : new NovaCronError(ErrorCode.Internal, err.message, { cause: err }),
      );
  }

  /**
   * An abandoned transfer keeps what it wrote: the part file becomes the name's partial file
   * (replacing an older one) with a manifest of the chunks written into it, so a sender started
   * again sends only the rest. Every reuse is verified against the chunk's hash, as for any held
   * chunk. Returns false when there was nothing to keep or it could not be kept.
   */
  private keepPartial(): boolean {
    if (this.entries.length === 0 || !this.name) return false;
    const path = partialPath(this.ctx, this.name);
    try {
      this.index.removeFile(path);
      renameSync(this.tempPath, path);
      const st = statSync(path);
      const header = { name: relative(this.opts.dir, path), size: st.size, mtimeMs: st.mtimeMs, sha256: '' };
      const bytes = manifestBytes(header, Buffer.concat(this.entries));
      writeFileSync(partialManifest(this.ctx, this.name), bytes);
      this.index.loadManifest(this.opts.dir, bytes);
      return true;
    } catch {
      this.dropPartial();
      return false;
    }
  }

  /** Forgets and removes the partial file of this name (its transfer completed). */
  private dropPartial(): void {
    const path = partialPath(this.ctx, this.name);
    this.index.removeFile(path);
    for (const f of [path, partialManifest(this.ctx, this.name)]) {
      try {
        unlinkSync(f);
      } catch {
        // none
      }
    }
  }
}
