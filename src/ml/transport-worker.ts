// The worker-thread side of thread-transport.ts: the lean HTTP/2 transport (h2-transport.ts) in an
// isolate of its own. Requests and answers cross as transferred bytes; nothing else is shared.
import { parentPort, workerData } from 'node:worker_threads';
import { createH2Transport, GrpcCode, GrpcStatusError } from './h2-transport.js';
import { ownedBytes, type TransportReply, type TransportRequest } from './thread-wire.js';

const port = parentPort;
if (!port) throw new Error('transport-worker runs as a worker thread of thread-transport');
const transport = createH2Transport((workerData as { address: string }).address);

let inFlight = 0;
let closing = false;
/** After close, the connection and the port close (and the worker exits) once the calls in flight have answered. */
const finish = (): void => {
  transport.close();
  port.close();
};
const done = (): void => {
  inFlight--;
  if (closing && inFlight === 0) finish();
};

port.on('message', (req: TransportRequest) => {
  if (req.t === 'close') {
    closing = true;
    if (inFlight === 0) finish();
    return;
  }
  inFlight++;
  transport
    .unary(req.path, Buffer.from(req.framed), req.timeoutMs)
    .then((answer) => {
      const bytes = ownedBytes(answer);
      port.postMessage({ t: 'ok', id: req.id, bytes } satisfies TransportReply, [bytes]);
    })
    .catch((err: unknown) => {
      const e = err instanceof GrpcStatusError ? err : new GrpcStatusError(GrpcCode.INTERNAL, String(err));
      port.postMessage({ t: 'err', id: req.id, code: e.code, details: e.details } satisfies TransportReply);
    })
    .finally(done);
});
port.postMessage({ t: 'ready' } satisfies TransportReply);
