// Public API of DWCP: file transfer (sendFile / createReceiver), the AMST session layer that other
// subsystems (live migration) build on, and the pure HDE encoding pieces. Internals are not exported.
export { sendFile, type SendFileOptions, type SendProgress, type TransferSummary } from './file-sender.js';
export { createReceiver, checkFileName, type ReceiverOptions, type FileReceiver } from './file-receiver.js';
export { AmstSender, type AmstSenderOptions, type AmstStats } from './transport/sender.js';
export { AmstServer, type AmstServerOptions, type SessionHandler } from './transport/server.js';
export type { ConnectionSecurity } from './transport/connection.js';
export {
  StreamCountController,
  type StreamCountBounds,
  type StreamCountTuning,
} from './transport/stream-count.js';
export { FrameParser, FrameType, encodeFrame, MAX_FRAME_PAYLOAD, type Frame } from './encoding/frame.js';
export {
  CdcChunker,
  FixedChunker,
  PAGE_SIZE,
  DEFAULT_CDC,
  type Chunk,
  type Chunker,
  type CdcParams,
} from './encoding/chunker.js';
export { PageEncoder, PageDecoder, PageCache, type PageEncoderOptions } from './encoding/pages.js';
export {
  encodeBlock,
  decodeRecord,
  materialize,
  BlockKind,
  type BlockClass,
  type ChunkRecord,
  type ClassifyContext,
} from './encoding/record.js';
export {
  chooseCodec,
  compressBlock,
  decompressBlock,
  type CodecChoice,
  type CodecName,
} from './encoding/codec.js';
