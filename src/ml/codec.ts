// Hand-written protobuf encoders and decoders for novacron.ml.v1 (proto/novacron/ml/v1/ml_service.proto),
// with a small reader and writer of their own: what `pbjs -t static` would generate, without
// proto-loader's reflection on every call. grpc-js takes them as the serialize/deserialize functions of each method.
//
// Encoders accept partial objects (a missing field is its proto3 default) and omit default values;
// decoders return every field, with defaults for absent ones (what proto-loader gives with
// keepCase, longs: Number, defaults, arrays), a missing sub-message as null, and skip unknown
// fields, so peers with a newer contract still interoperate. codec.test.ts checks every message
// against protobufjs's reflection of the .proto, both ways.
import type {
  WireBandwidthRequest,
  WireBandwidthResponse,
  WireHealthResponse,
  WireLifetimePrediction,
  WireLifetimeResponse,
  WireModelVersion,
  WireNodeInfo,
  WireNodeScore,
  WirePlacementRequest,
  WirePlacementResponse,
  WireResourceRequirement,
  WireVmFeatures,
} from './proto.js';

/** Reads protobuf wire data from one buffer; every read checks bounds and throws RangeError past the end. */
export class Reader {
  pos = 0;
  readonly len: number;
  constructor(readonly buf: Buffer) {
    this.len = buf.length;
  }
  private byte(): number {
    if (this.pos >= this.len) throw new RangeError(`protobuf: read past the end (${this.len} bytes)`);
    return this.buf[this.pos++]!;
  }
  /** A varint's low 32 bits, unsigned (tags, lengths, uint32). */
  uint32(): number {
    let b = this.byte();
    if (b < 0x80) return b;
    let v = b & 0x7f;
    let shift = 7;
    do {
      b = this.byte();
      if (shift < 32) v |= (b & 0x7f) << shift;
      shift += 7;
      if (shift > 70) throw new RangeError('protobuf: varint longer than 10 bytes');
    } while (b >= 0x80);
    return v >>> 0;
  }
  int32(): number {
    return this.uint32() | 0;
  }
  /** int64 as a number (exact up to 2^53; the ML contract's int64 fields are times). */
  int64(): number {
    let v = 0n;
    let shift = 0n;
    let b: number;
    do {
      b = this.byte();
      v |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if (shift > 70n) throw new RangeError('protobuf: varint longer than 10 bytes');
    } while (b >= 0x80);
    return Number(BigInt.asIntN(64, v));
  }
  double(): number {
    if (this.pos + 8 > this.len) throw new RangeError(`protobuf: read past the end (${this.len} bytes)`);
    const v = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.uint32() !== 0;
  }
  string(): string {
    const n = this.uint32();
    const end = this.pos + n;
    if (end > this.len) throw new RangeError(`protobuf: string past the end (${this.len} bytes)`);
    const v = this.buf.toString('utf8', this.pos, end);
    this.pos = end;
    return v;
  }
  /** Skips one field's value of the given wire type (unknown fields). */
  skipType(wire: number): void {
    switch (wire) {
      case 0:
        this.uint32();
        return;
      case 1:
        this.skip(8);
        return;
      case 2:
        this.skip(this.uint32());
        return;
      case 3: {
        let t: number;
        while ((t = this.uint32() & 7) !== 4) this.skipType(t);
        return;
      }
      case 5:
        this.skip(4);
        return;
      default:
        throw new RangeError(`protobuf: invalid wire type ${wire} at offset ${this.pos}`);
    }
  }
  private skip(n: number): void {
    if (this.pos + n > this.len) throw new RangeError(`protobuf: read past the end (${this.len} bytes)`);
    this.pos += n;
  }
}

/**
 * The writer the encoders write to. An encoder runs twice: once on a Measure, which adds up the
 * bytes and records every string's and sub-message's length in order, then on a Emit into one
 * buffer of exactly that size, which takes those lengths back in the same order. No per-field
 * objects (protobufjs's Writer allocates one per field), no copying at the end.
 */
export interface Writer {
  uint32(v: number): Writer;
  int32(v: number): Writer;
  int64(v: number): Writer;
  double(v: number): Writer;
  bool(v: boolean): Writer;
  string(v: string): Writer;
  /** Starts a length-delimited sub-message (after its tag). */
  fork(): Writer;
  /** Ends the sub-message started by the matching fork(). */
  ldelim(): Writer;
}

/** Strings up to this length are measured and copied in JS when ASCII (node ids, versions). */
const SHORT = 24;
function isAscii(v: string): boolean {
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Bytes of a non-negative integer as a varint (exact for every safe integer, like Emit.varint). */
function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

/** Lengths recorded by Measure for Emit (strings and sub-messages, in encounter order). */
class Measure implements Writer {
  len = 0;
  readonly lengths: number[] = [];
  private readonly open: number[] = [];
  uint32(v: number): Writer {
    this.len += varintSize(v >>> 0);
    return this;
  }
  int32(v: number): Writer {
    v |= 0; // int32 semantics, as protobufjs
    this.len += v < 0 ? 10 : varintSize(v);
    return this;
  }
  int64(v: number): Writer {
    this.len += v < 0 ? 10 : varintSize(v);
    return this;
  }
  double(): Writer {
    this.len += 8;
    return this;
  }
  bool(): Writer {
    this.len += 1;
    return this;
  }
  string(v: string): Writer {
    const n = v.length <= SHORT && isAscii(v) ? v.length : Buffer.byteLength(v, 'utf8');
    this.lengths.push(n);
    this.len += varintSize(n) + n;
    return this;
  }
  fork(): Writer {
    this.open.push(this.lengths.length, this.len);
    this.lengths.push(0);
    return this;
  }
  ldelim(): Writer {
    const start = this.open.pop()!;
    const slot = this.open.pop()!;
    const n = this.len - start;
    this.lengths[slot] = n;
    this.len += varintSize(n);
    return this;
  }
}

class Emit implements Writer {
  pos = 0;
  private next = 0;
  constructor(
    readonly buf: Buffer,
    private readonly lengths: readonly number[],
  ) {}
  private varint(v: number): void {
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }
  private negative(v: number): void {
    // Two's complement on 64 bits, 10 bytes (proto int32/int64 sign extension).
    let u = BigInt.asUintN(64, BigInt(Math.trunc(v)));
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }
  uint32(v: number): Writer {
    this.varint(v >>> 0);
    return this;
  }
  int32(v: number): Writer {
    v |= 0;
    if (v < 0) this.negative(v);
    else this.varint(v);
    return this;
  }
  int64(v: number): Writer {
    if (v < 0) this.negative(v);
    else this.varint(v);
    return this;
  }
  double(v: number): Writer {
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
    return this;
  }
  bool(v: boolean): Writer {
    this.buf[this.pos++] = v ? 1 : 0;
    return this;
  }
  string(v: string): Writer {
    const n = this.lengths[this.next++]!;
    this.varint(n);
    if (n === v.length && n <= SHORT) {
      // ASCII (as many bytes as UTF-16 units): copy in JS, cheaper than a native call for short strings.
      const b = this.buf;
      for (let i = 0; i < n; i++) b[this.pos++] = v.charCodeAt(i);
    } else if (n > 0) this.pos += this.buf.write(v, this.pos, n, 'utf8');
    return this;
  }
  fork(): Writer {
    this.varint(this.lengths[this.next++]!);
    return this;
  }
  ldelim(): Writer {
    return this;
  }
}

/** Encodes `m` with `enc` into a Buffer of exactly its size. */
export function encodeToBuffer<T>(m: T, enc: (m: T, w: Writer) => void): Buffer {
  const measure = new Measure();
  enc(m, measure);
  const emit = new Emit(Buffer.allocUnsafe(measure.len), measure.lengths);
  enc(m, emit);
  if (emit.pos !== measure.len) throw new Error(`protobuf encoder wrote ${emit.pos} of ${measure.len} bytes`);
  return emit.buf;
}

/**
 * Encodes `m` as one gRPC message: the 5-byte prefix (flag 0: not compressed; the length, big-endian)
 * and the protobuf bytes, in one buffer of exactly that size (what h2-transport.ts sends).
 */
export function encodeFramed<T>(m: T, enc: (m: T, w: Writer) => void): Buffer {
  const measure = new Measure();
  enc(m, measure);
  const buf = Buffer.allocUnsafe(measure.len + 5);
  buf[0] = 0;
  buf.writeUInt32BE(measure.len, 1);
  const emit = new Emit(buf, measure.lengths);
  emit.pos = 5;
  enc(m, emit);
  if (emit.pos !== buf.length)
    throw new Error(`protobuf encoder wrote ${emit.pos - 5} of ${measure.len} bytes`);
  return buf;
}

/** Wire types. */
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;

const tag = (field: number, wire: number) => (field << 3) | wire;

// Field writers that skip proto3 defaults (0, '', false, empty). NaN is written: it is a value.
function str(w: Writer, field: number, v: string | undefined | null): void {
  if (v) w.uint32(tag(field, LEN)).string(v);
}
function dbl(w: Writer, field: number, v: number | undefined | null): void {
  if (v !== 0 && v !== undefined && v !== null) w.uint32(tag(field, FIXED64)).double(v);
}
function i64(w: Writer, field: number, v: number | undefined | null): void {
  if (v) w.uint32(tag(field, VARINT)).int64(Math.trunc(v));
}
function i32(w: Writer, field: number, v: number | undefined | null): void {
  if (v) w.uint32(tag(field, VARINT)).int32(v);
}
function packed(w: Writer, field: number, v: readonly number[] | undefined | null): void {
  if (!v || v.length === 0) return;
  w.uint32(tag(field, LEN)).uint32(v.length * 8);
  for (let i = 0; i < v.length; i++) w.double(v[i]!);
}
function msg<T>(w: Writer, field: number, v: T, enc: (m: T, w: Writer) => void): void {
  enc(v, w.uint32(tag(field, LEN)).fork());
  w.ldelim();
}

/** Reads a repeated double, packed (wire type 2) or one element (wire type 1), onto `out`. */
function readDoubles(r: Reader, t: number, out: number[]): void {
  if ((t & 7) === LEN) {
    const end = r.uint32() + r.pos;
    while (r.pos < end) out.push(r.double());
  } else out.push(r.double());
}
function int64(r: Reader): number {
  return r.int64();
}
/** End position of a sub-message starting at the reader's position (after its tag). */
const sub = (r: Reader) => r.uint32() + r.pos;

// ---- encoders ----

export function encodeBandwidthRequest(m: Partial<WireBandwidthRequest>, w: Writer): void {
  str(w, 1, m.vm_id);
  i64(w, 2, m.timestamp);
  packed(w, 3, m.historical_bandwidth);
  str(w, 4, m.network_type);
  str(w, 5, m.profile);
}
export function encodeBandwidthResponse(m: Partial<WireBandwidthResponse>, w: Writer): void {
  dbl(w, 1, m.predicted_bandwidth);
  dbl(w, 2, m.confidence);
  i64(w, 3, m.prediction_time_us);
  dbl(w, 4, m.lower_bound);
  dbl(w, 5, m.upper_bound);
  str(w, 6, m.model_version);
}
export function encodeBandwidthBatchRequest(
  m: { requests?: readonly Partial<WireBandwidthRequest>[] },
  w: Writer,
): void {
  for (const r of m.requests ?? []) msg(w, 1, r, encodeBandwidthRequest);
}
export function encodeBandwidthBatchResponse(
  m: { responses?: readonly Partial<WireBandwidthResponse>[] },
  w: Writer,
): void {
  for (const r of m.responses ?? []) msg(w, 1, r, encodeBandwidthResponse);
}
function encodeNodeInfo(m: Partial<WireNodeInfo>, w: Writer): void {
  str(w, 1, m.node_id);
  dbl(w, 2, m.cpu_available);
  dbl(w, 3, m.memory_available);
  dbl(w, 4, m.network_bandwidth);
  dbl(w, 5, m.current_load);
  dbl(w, 6, m.cpu_capacity);
  dbl(w, 7, m.memory_capacity);
  packed(w, 8, m.resident_end_times_s);
}
function encodeRequirement(m: Partial<WireResourceRequirement>, w: Writer): void {
  dbl(w, 1, m.cpu_required);
  dbl(w, 2, m.memory_required);
  dbl(w, 3, m.network_required);
}
function encodeVm(m: Partial<WireVmFeatures>, w: Writer): void {
  dbl(w, 1, m.vcpus);
  dbl(w, 2, m.memory_gb);
  str(w, 3, m.flavor);
  i32(w, 4, m.batch_size);
  dbl(w, 5, m.arrival_time_s);
}
export function encodePlacementRequest(m: Partial<WirePlacementRequest>, w: Writer): void {
  str(w, 1, m.task_id);
  for (const n of m.available_nodes ?? []) msg(w, 2, n, encodeNodeInfo);
  for (const r of m.requirements ?? []) msg(w, 3, r, encodeRequirement);
  if (m.vm) msg(w, 4, m.vm, encodeVm);
  dbl(w, 5, m.now_s);
}
function encodeNodeScore(m: Partial<WireNodeScore>, w: Writer): void {
  str(w, 1, m.node_id);
  dbl(w, 2, m.score);
  str(w, 3, m.reason);
}
export function encodePlacementResponse(m: Partial<WirePlacementResponse>, w: Writer): void {
  str(w, 1, m.selected_node_id);
  dbl(w, 2, m.confidence);
  str(w, 3, m.reasoning);
  for (const s of m.scores ?? []) msg(w, 4, s, encodeNodeScore);
  str(w, 5, m.model_version);
  i32(w, 6, m.predicted_lifetime_class);
  dbl(w, 7, m.predicted_lifetime_s);
}
export function encodeLifetimeRequest(m: { vms?: readonly Partial<WireVmFeatures>[] }, w: Writer): void {
  for (const v of m.vms ?? []) msg(w, 1, v, encodeVm);
}
function encodeLifetimePrediction(m: Partial<WireLifetimePrediction>, w: Writer): void {
  i32(w, 1, m.lifetime_class);
  packed(w, 2, m.probabilities);
  dbl(w, 3, m.expected_lifetime_s);
}
export function encodeLifetimeResponse(m: Partial<WireLifetimeResponse>, w: Writer): void {
  for (const p of m.predictions ?? []) msg(w, 1, p, encodeLifetimePrediction);
  str(w, 2, m.model_version);
}
export function encodeHealthRequest(_m: object, _w: Writer): void {}
function encodeModelVersion(m: Partial<WireModelVersion>, w: Writer): void {
  str(w, 1, m.kind);
  str(w, 2, m.version);
  str(w, 3, m.file);
}
export function encodeHealthResponse(m: Partial<WireHealthResponse>, w: Writer): void {
  if (m.healthy) w.uint32(tag(1, VARINT)).bool(true);
  str(w, 2, m.version);
  for (const v of m.models ?? []) msg(w, 3, v, encodeModelVersion);
}

// ---- decoders: (reader, end position) → message ----

export function decodeBandwidthRequest(r: Reader, end: number): WireBandwidthRequest {
  const m: WireBandwidthRequest = {
    vm_id: '',
    timestamp: 0,
    historical_bandwidth: [],
    network_type: '',
    profile: '',
  };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.vm_id = r.string();
        break;
      case 2:
        m.timestamp = int64(r);
        break;
      case 3:
        readDoubles(r, t, m.historical_bandwidth);
        break;
      case 4:
        m.network_type = r.string();
        break;
      case 5:
        m.profile = r.string();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeBandwidthResponse(r: Reader, end: number): WireBandwidthResponse {
  const m: WireBandwidthResponse = {
    predicted_bandwidth: 0,
    confidence: 0,
    prediction_time_us: 0,
    lower_bound: 0,
    upper_bound: 0,
    model_version: '',
  };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.predicted_bandwidth = r.double();
        break;
      case 2:
        m.confidence = r.double();
        break;
      case 3:
        m.prediction_time_us = int64(r);
        break;
      case 4:
        m.lower_bound = r.double();
        break;
      case 5:
        m.upper_bound = r.double();
        break;
      case 6:
        m.model_version = r.string();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeBandwidthBatchRequest(r: Reader, end: number): { requests: WireBandwidthRequest[] } {
  const requests: WireBandwidthRequest[] = [];
  while (r.pos < end) {
    const t = r.uint32();
    if (t >>> 3 === 1) requests.push(decodeBandwidthRequest(r, sub(r)));
    else r.skipType(t & 7);
  }
  return { requests };
}
export function decodeBandwidthBatchResponse(r: Reader, end: number): { responses: WireBandwidthResponse[] } {
  const responses: WireBandwidthResponse[] = [];
  while (r.pos < end) {
    const t = r.uint32();
    if (t >>> 3 === 1) responses.push(decodeBandwidthResponse(r, sub(r)));
    else r.skipType(t & 7);
  }
  return { responses };
}
function decodeNodeInfo(r: Reader, end: number): WireNodeInfo {
  const m: WireNodeInfo = {
    node_id: '',
    cpu_available: 0,
    memory_available: 0,
    network_bandwidth: 0,
    current_load: 0,
    cpu_capacity: 0,
    memory_capacity: 0,
    resident_end_times_s: [],
  };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.node_id = r.string();
        break;
      case 2:
        m.cpu_available = r.double();
        break;
      case 3:
        m.memory_available = r.double();
        break;
      case 4:
        m.network_bandwidth = r.double();
        break;
      case 5:
        m.current_load = r.double();
        break;
      case 6:
        m.cpu_capacity = r.double();
        break;
      case 7:
        m.memory_capacity = r.double();
        break;
      case 8:
        readDoubles(r, t, m.resident_end_times_s);
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
function decodeRequirement(r: Reader, end: number): WireResourceRequirement {
  const m: WireResourceRequirement = { cpu_required: 0, memory_required: 0, network_required: 0 };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.cpu_required = r.double();
        break;
      case 2:
        m.memory_required = r.double();
        break;
      case 3:
        m.network_required = r.double();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
function decodeVm(r: Reader, end: number): WireVmFeatures {
  const m: WireVmFeatures = { vcpus: 0, memory_gb: 0, flavor: '', batch_size: 0, arrival_time_s: 0 };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.vcpus = r.double();
        break;
      case 2:
        m.memory_gb = r.double();
        break;
      case 3:
        m.flavor = r.string();
        break;
      case 4:
        m.batch_size = r.int32();
        break;
      case 5:
        m.arrival_time_s = r.double();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodePlacementRequest(r: Reader, end: number): WirePlacementRequest {
  const m: WirePlacementRequest = {
    task_id: '',
    available_nodes: [],
    requirements: [],
    vm: null,
    now_s: 0,
  };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.task_id = r.string();
        break;
      case 2:
        m.available_nodes.push(decodeNodeInfo(r, sub(r)));
        break;
      case 3:
        m.requirements.push(decodeRequirement(r, sub(r)));
        break;
      case 4:
        m.vm = decodeVm(r, sub(r));
        break;
      case 5:
        m.now_s = r.double();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
function decodeNodeScore(r: Reader, end: number): WireNodeScore {
  const m: WireNodeScore = { node_id: '', score: 0, reason: '' };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.node_id = r.string();
        break;
      case 2:
        m.score = r.double();
        break;
      case 3:
        m.reason = r.string();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodePlacementResponse(r: Reader, end: number): WirePlacementResponse {
  const m: WirePlacementResponse = {
    selected_node_id: '',
    confidence: 0,
    reasoning: '',
    scores: [],
    model_version: '',
    predicted_lifetime_class: 0,
    predicted_lifetime_s: 0,
  };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.selected_node_id = r.string();
        break;
      case 2:
        m.confidence = r.double();
        break;
      case 3:
        m.reasoning = r.string();
        break;
      case 4:
        m.scores.push(decodeNodeScore(r, sub(r)));
        break;
      case 5:
        m.model_version = r.string();
        break;
      case 6:
        m.predicted_lifetime_class = r.int32();
        break;
      case 7:
        m.predicted_lifetime_s = r.double();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeLifetimeRequest(r: Reader, end: number): { vms: WireVmFeatures[] } {
  const vms: WireVmFeatures[] = [];
  while (r.pos < end) {
    const t = r.uint32();
    if (t >>> 3 === 1) vms.push(decodeVm(r, sub(r)));
    else r.skipType(t & 7);
  }
  return { vms };
}
function decodeLifetimePrediction(r: Reader, end: number): WireLifetimePrediction {
  const m: WireLifetimePrediction = { lifetime_class: 0, probabilities: [], expected_lifetime_s: 0 };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.lifetime_class = r.int32();
        break;
      case 2:
        readDoubles(r, t, m.probabilities);
        break;
      case 3:
        m.expected_lifetime_s = r.double();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeLifetimeResponse(r: Reader, end: number): WireLifetimeResponse {
  const m: WireLifetimeResponse = { predictions: [], model_version: '' };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.predictions.push(decodeLifetimePrediction(r, sub(r)));
        break;
      case 2:
        m.model_version = r.string();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeHealthRequest(r: Reader, end: number): Record<string, never> {
  while (r.pos < end) r.skipType(r.uint32() & 7);
  return {};
}
function decodeModelVersion(r: Reader, end: number): WireModelVersion {
  const m: WireModelVersion = { kind: '', version: '', file: '' };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.kind = r.string();
        break;
      case 2:
        m.version = r.string();
        break;
      case 3:
        m.file = r.string();
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}
export function decodeHealthResponse(r: Reader, end: number): WireHealthResponse {
  const m: WireHealthResponse = { healthy: false, version: '', models: [] };
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case 1:
        m.healthy = r.bool();
        break;
      case 2:
        m.version = r.string();
        break;
      case 3:
        m.models.push(decodeModelVersion(r, sub(r)));
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return m;
}

// ---- whole-buffer helpers, in the shape grpc-js wants ----

/** What a method's side writes (`In`, partial objects allowed) and what it reads (`Out`, complete). */
export interface Codec<In, Out = In> {
  readonly serialize: (value: In) => Buffer;
  readonly deserialize: (bytes: Buffer) => Out;
}

/** Pairs an encoder and a decoder into grpc-js serialize/deserialize functions. */
export function codec<In, Out>(
  enc: (m: In, w: Writer) => void,
  dec: (r: Reader, end: number) => Out,
): Codec<In, Out> {
  return {
    serialize: (value: In) => encodeToBuffer(value, enc),
    deserialize: (bytes: Buffer) => {
      const r = new Reader(bytes);
      return dec(r, r.len);
    },
  };
}
