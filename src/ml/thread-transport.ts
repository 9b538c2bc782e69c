// The ML client's HTTP/2 calls on a worker thread of their own (`ml.transport_thread_young_mb`).
// What a call allocates in Node's HTTP/2 stack (headers, streams, frames, buffers) then lives in a
// separate V8 isolate with a small young generation: its scavenges stay short and never pause the
// caller's thread, and the node's own garbage (API, store, scheduler) does not delay ML answers.
// The client (client.ts) keeps everything else — codec, breaker, deadline, fallback — on the
// caller's thread; only framed bytes cross, transferred rather than copied. Measured in
// BENCHMARKS.md (ml, "transport thread").
//
// Contract (UnaryTransport's): a call resolves with the answer's bytes or rejects with
// GrpcStatusError. If the worker does not answer within the call's timeout plus THREAD_GRACE_MS it
// rejects DEADLINE_EXCEEDED (calls made while a new worker still loads its modules, in the first
// tens of milliseconds, may wait up to WORKER_START_MS longer: the worker's own deadline starts
// when it takes the call); if the worker has exited it rejects UNAVAILABLE at once, and a later
// call (at most one a second) starts a new worker. close() lets calls in flight finish.
import type { Worker } from 'node:worker_threads';
import { GrpcCode, GrpcStatusError, type UnaryTransport } from './h2-transport.js';
import { ownedBytes, type TransportReply, type TransportRequest } from './thread-wire.js';
import { startModuleWorker } from '../util/module-worker.js';

/** How much later than its own timeout a call is given up on when the worker has not answered. */
export const THREAD_GRACE_MS = 25;
/**
 * Extra wait for calls made while the worker is still loading its modules (tens of ms; more on a
 * busy machine), so that the first health check of a new client does not fail on the start-up.
 */
export const WORKER_START_MS = 2000;
/** Shortest pause between starting workers, so a worker that dies at once is not restarted in a loop. */
export const RESTART_AFTER_MS = 1000;

export interface ThreadTransport extends UnaryTransport {
  /** The worker thread, for diagnostics and tests; undefined while there is none. */
  workerThread(): Worker | undefined;
}

interface Pending {
  readonly resolve: (b: Buffer) => void;
  readonly reject: (e: GrpcStatusError) => void;
  readonly timer: NodeJS.Timeout;
}

export interface ThreadTransportOptions {
  /** Young generation of the worker's isolate, MiB. */
  readonly youngGenerationMb: number;
  /** Told when the worker exits unexpectedly (the next call restarts it). */
  readonly onExit?: (reason: string) => void;
}

export function createThreadTransport(address: string, options: ThreadTransportOptions): ThreadTransport {
  const pending = new Map<number, Pending>();
  let worker: Worker | undefined;
  /** Whether `worker` has said it is ready. */
  let ready = false;
  let gone: string | undefined;
  let startedAt = -Infinity;
  let nextId = 1;
  let closed = false;

  function settle(id: number): Pending | undefined {
    const p = pending.get(id);
    if (!p) return undefined; // given up on already (a late answer)
    pending.delete(id);
    clearTimeout(p.timer);
    return p;
  }

  function start(): Worker | undefined {
    if (worker || closed) return worker;
    if (performance.now() - startedAt < RESTART_AFTER_MS) return undefined;
    startedAt = performance.now();
    const w = startModuleWorker(import.meta.url, './transport-worker', {
      workerData: { address },
      resourceLimits: { maxYoungGenerationSizeMb: options.youngGenerationMb },
    });
    w.unref(); // calls in flight keep the process alive through their timers
    w.on('message', (m: TransportReply) => {
      if (m.t === 'ready') {
        if (worker === w) ready = true;
        return;
      }
      const p = settle(m.id);
      if (!p) return;
      if (m.t === 'ok') p.resolve(Buffer.from(m.bytes));
      else p.reject(new GrpcStatusError(m.code, m.details));
    });
    let failure: string | undefined;
    w.on('error', (err) => {
      failure = err.message;
    });
    w.on('exit', (code) => {
      if (worker === w) worker = undefined;
      const why = closed
        ? 'ml transport closed'
        : `ml transport thread exited (code ${code}${failure ? `: ${failure}` : ''})`;
      if (!closed) {
        gone = why;
        options.onExit?.(why);
      }
      for (const id of [...pending.keys()])
        settle(id)?.reject(new GrpcStatusError(GrpcCode.UNAVAILABLE, why));
    });
    worker = w;
    ready = false;
    gone = undefined;
    return w;
  }

  return {
    unary(path, framed, timeoutMs) {
      return new Promise<Buffer>((resolve, reject) => {
        if (closed) {
          reject(new GrpcStatusError(GrpcCode.UNAVAILABLE, 'ml transport closed'));
          return;
        }
        const w = start();
        if (!w) {
          reject(
            new GrpcStatusError(GrpcCode.UNAVAILABLE, `${gone ?? 'ml transport thread gone'}; restarting`),
          );
          return;
        }
        const id = nextId++;
        const wait = timeoutMs + THREAD_GRACE_MS + (ready ? 0 : WORKER_START_MS);
        const timer = setTimeout(() => {
          settle(id)?.reject(
            new GrpcStatusError(
              GrpcCode.DEADLINE_EXCEEDED,
              `the ml transport thread did not answer within ${wait} ms`,
            ),
          );
        }, wait);
        pending.set(id, { resolve, reject, timer });
        const bytes = ownedBytes(framed);
        w.postMessage({ t: 'call', id, path, framed: bytes, timeoutMs } satisfies TransportRequest, [bytes]);
      });
    },
    workerThread: () => worker,
    close() {
      // calls in flight finish (the worker answers them, then exits); later calls fail at once
      if (closed) return;
      closed = true;
      const w = worker;
      if (w) {
        w.postMessage({ t: 'close' } satisfies TransportRequest);
        setTimeout(() => void w.terminate(), 5000).unref();
      }
    },
  };
}
