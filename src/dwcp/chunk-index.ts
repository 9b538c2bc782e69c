// The receiver's chunk index: where each chunk it holds lives (file, offset, length), keyed by a
// 12-byte SHA-256 prefix (HAVE_PREFIX_BYTES), loaded from the manifests of files it received
// earlier and extended as a transfer writes. Manifests are binary: 44-byte entries (offset u64, length u32, SHA-256).
import { closeSync, openSync, readSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { HASH_BYTES } from './encoding/hash.js';

export const MANIFEST_ENTRY_BYTES = 8 + 4 + HASH_BYTES;
/** Bytes of SHA-256 naming a chunk in have-queries and keying the index (96 bits; see docs/dwcp.md). */
export const HAVE_PREFIX_BYTES = 12;

export interface ChunkLocation {
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

/** Manifest header: JSON line with the file's size and mtime, so a file edited in place is not trusted. */
export interface ManifestHeader {
  readonly name: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256: string;
}

export function encodeManifestEntry(offset: number, length: number, hash: Buffer): Buffer {
  const b = Buffer.allocUnsafe(MANIFEST_ENTRY_BYTES);
  b.writeBigUInt64BE(BigInt(offset), 0);
  b.writeUInt32BE(length, 8);
  hash.copy(b, 12);
  return b;
}

export function manifestBytes(header: ManifestHeader, entries: Buffer): Buffer {
  return Buffer.concat([Buffer.from(JSON.stringify(header) + '\n'), entries]);
}

/** Most other places kept per chunk whose content occurs several times (patch bases are tried at each). */
const MAX_OTHER_PLACES = 7;

export class ChunkIndex {
  private readonly map = new Map<string, ChunkLocation>();
  /** Other places of chunks held more than once (identical files, repeated blocks). */
  private readonly others = new Map<string, ChunkLocation[]>();
  private readonly fds = new Map<string, number>();

  get size(): number {
    return this.map.size;
  }

  /**
   * Records where a chunk lives. With `keepExisting` a chunk already located elsewhere keeps that
   * location: a transfer writing a new version adds its part file this way, so the old version's
   * places stay known (patches line up on them) until the new version replaces it.
   */
  add(hash: Buffer, loc: ChunkLocation, keepExisting = false): void {
    const k = hash.toString('hex', 0, HAVE_PREFIX_BYTES);
    const had = this.map.get(k);
    if (had && !keepExisting) this.map.set(k, loc);
    else if (!had) this.map.set(k, loc);
    if (had && (had.file !== loc.file || had.offset !== loc.offset)) {
      const o = this.others.get(k) ?? [];
      const other = keepExisting ? loc : had;
      if (o.length < MAX_OTHER_PLACES && !o.some((x) => x.file === other.file && x.offset === other.offset)) {
        o.push(other);
        this.others.set(k, o);
      }
    }
  }

  /** Every place the chunk whose hash starts with `prefix` is held (the one `locate` gives first). */
  locateAll(prefix: Buffer): ChunkLocation[] {
    const k = prefix.toString('hex', 0, HAVE_PREFIX_BYTES);
    const first = this.map.get(k);
    return first ? [first, ...(this.others.get(k) ?? [])] : [];
  }

  /** Where the chunk whose hash starts with `prefix` (at least HAVE_PREFIX_BYTES) lives. */
  locate(prefix: Buffer): ChunkLocation | undefined {
    return this.map.get(prefix.toString('hex', 0, HAVE_PREFIX_BYTES));
  }

  /** Reads up to `length` bytes of `file` at `offset` (fewer at its end); undefined if unreadable. */
  readAt(file: string, offset: number, length: number): Buffer | undefined {
    try {
      const buf = Buffer.allocUnsafe(length);
      const n = readSync(this.fd(file), buf, 0, length, offset);
      return buf.subarray(0, n);
    } catch {
      return undefined;
    }
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r');
      this.fds.set(file, fd);
    }
    return fd;
  }

  /** Forgets every chunk located in `file` (it was replaced or deleted). */
  removeFile(file: string): void {
    for (const [k, o] of this.others) {
      const keep = o.filter((l) => l.file !== file);
      if (keep.length === o.length) continue;
      if (keep.length > 0) this.others.set(k, keep);
      else this.others.delete(k);
    }
    for (const [k, loc] of this.map) {
      if (loc.file !== file) continue;
      // Another place of the same content takes over.
      const o = this.others.get(k);
      const next = o?.shift();
      if (next) {
        this.map.set(k, next);
        if (o!.length === 0) this.others.delete(k);
      } else this.map.delete(k);
    }
    const fd = this.fds.get(file);
    if (fd !== undefined) {
      closeSync(fd);
      this.fds.delete(file);
    }
  }

  hasPrefix(prefixHex: string): boolean {
    return this.map.has(prefixHex);
  }

  /** Reads the chunk whose hash starts like `hash` (the caller verifies the full hash). */
  read(hash: Buffer, length: number): Buffer | undefined {
    const loc = this.map.get(hash.toString('hex', 0, HAVE_PREFIX_BYTES));
    if (!loc || loc.length !== length) return undefined;
    let fd = this.fds.get(loc.file);
    try {
      if (fd === undefined) {
        fd = openSync(loc.file, 'r');
        this.fds.set(loc.file, fd);
      }
      const buf = Buffer.allocUnsafe(length);
      const n = readSync(fd, buf, 0, length, loc.offset);
      return n === length ? buf : undefined;
    } catch {
      return undefined;
    }
  }

  /** Closes the files opened by `read` (call after a transfer). */
  closeFiles(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }

  /** Loads every manifest in `manifestDir` whose file in `dir` is unchanged since it was written. */
  static load(dir: string, manifestDir: string): ChunkIndex {
    const idx = new ChunkIndex();
    let names: string[];
    try {
      names = readdirSync(manifestDir).filter((n) => n.endsWith('.manifest'));
    } catch {
      return idx;
    }
    for (const n of names) {
      try {
        idx.loadManifest(dir, readFileSync(join(manifestDir, n)));
      } catch {
        // A damaged manifest only costs dedup; the file itself is untouched.
      }
    }
    return idx;
  }

  loadManifest(dir: string, bytes: Buffer): void {
    const nl = bytes.indexOf(0x0a);
    if (nl < 0) return;
    const header = JSON.parse(bytes.subarray(0, nl).toString('utf8')) as ManifestHeader;
    const file = join(dir, header.name);
    const st = statSync(file);
    if (st.size !== header.size || Math.abs(st.mtimeMs - header.mtimeMs) > 1) return;
    for (let p = nl + 1; p + MANIFEST_ENTRY_BYTES <= bytes.length; p += MANIFEST_ENTRY_BYTES) {
      const offset = Number(bytes.readBigUInt64BE(p));
      const length = bytes.readUInt32BE(p + 8);
      this.add(bytes.subarray(p + 12, p + 12 + HASH_BYTES), { file, offset, length });
    }
  }
}
