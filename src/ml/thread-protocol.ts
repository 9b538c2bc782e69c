// Messages between thread-client.ts (the caller's thread) and client-worker.ts (the worker thread
// that runs the ordinary MlClient). Everything here crosses by structured clone: plain data only.
import type { MlClient, MlConfig, MlHealth, MlTransport } from './client.js';

/** The MlClient methods the worker runs for the caller (health() and close() are local). */
export type ThreadMethod =
  | 'predictBandwidth'
  | 'predictBandwidthBatch'
  | 'optimizePlacement'
  | 'predictLifetime'
  | 'checkHealth'
  | 'ready';

/** One call: `m` and its arguments, typed from MlClient so both sides agree. */
export type ThreadCall = {
  [M in ThreadMethod]: {
    readonly t: 'call';
    readonly id: number;
    readonly m: M;
    readonly a: Parameters<MlClient[M]>;
  };
}[ThreadMethod];

export type ThreadRequest = ThreadCall | { readonly t: 'close' };

export type ThreadReply =
  | { readonly t: 'ok'; readonly id: number; readonly r: unknown }
  | { readonly t: 'err'; readonly id: number; readonly message: string; readonly hint?: string }
  | { readonly t: 'health'; readonly h: MlHealth }
  | {
      readonly t: 'log';
      readonly level: 'info' | 'warn';
      readonly obj: object;
      readonly msg: string | undefined;
    };

export interface ThreadWorkerData {
  readonly config: MlConfig;
  readonly backgroundHealth: boolean;
  readonly transport: MlTransport;
  /** grpc-js channel options (MlClientOptions.channelOptions). */
  readonly channelOptions?: Readonly<Record<string, string | number>>;
}
