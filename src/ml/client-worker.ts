// The worker-thread side of thread-client.ts: runs the ordinary MlClient (client.ts) in its own
// V8 isolate, with a small young generation, and answers the caller thread's calls by message.
import { parentPort, workerData } from 'node:worker_threads';
import { createMlClient, type MlClient, type MlClientLogger, type MlHealth } from './client.js';
import { errorMessage, NovaCronError } from '../errors.js';
import type { ThreadCall, ThreadRequest, ThreadReply, ThreadWorkerData } from './thread-protocol.js';

const port = parentPort;
if (!port) throw new Error('client-worker runs as a worker thread of thread-client');
const data = workerData as ThreadWorkerData;

const post = (m: ThreadReply): void => port.postMessage(m);
const logger: MlClientLogger = {
  info: (obj, msg) => post({ t: 'log', level: 'info', obj, msg }),
  warn: (obj, msg) => post({ t: 'log', level: 'warn', obj, msg }),
};

const client: MlClient = createMlClient(data.config, logger, {
  backgroundHealth: data.backgroundHealth,
  transport: data.transport,
  ...(data.channelOptions ? { channelOptions: data.channelOptions } : {}),
});

/** The last health posted to the caller thread. */
let posted: MlHealth | undefined;
let statsTimer: NodeJS.Timeout | undefined;
/** Only moved counters are sent at most every STATS_POST_MS; a change of status, breaker or detail goes at once. */
const STATS_POST_MS = 250;

function postHealth(): void {
  const h = client.health();
  if (posted && posted.status === h.status && posted.breaker === h.breaker && posted.detail === h.detail) {
    if (posted.stats.calls !== h.stats.calls) statsTimer ??= setTimeout(postStats, STATS_POST_MS);
    return;
  }
  posted = h;
  post({ t: 'health', h });
}

function postStats(): void {
  statsTimer = undefined;
  posted = client.health();
  post({ t: 'health', h: posted });
}

function run(req: ThreadCall): Promise<unknown> {
  switch (req.m) {
    case 'predictBandwidth':
      return client.predictBandwidth(req.a[0], req.a[1]);
    case 'predictBandwidthBatch':
      return client.predictBandwidthBatch(req.a[0], req.a[1]);
    case 'optimizePlacement':
      return client.optimizePlacement(req.a[0]);
    case 'predictLifetime':
      return client.predictLifetime(req.a[0]);
    case 'checkHealth':
      return client.checkHealth();
    case 'ready':
      return client.ready();
  }
}

port.on('message', (req: ThreadRequest) => {
  if (req.t === 'close') {
    if (statsTimer) clearTimeout(statsTimer);
    client.close();
    port.close();
    return;
  }
  run(req).then(
    (r) => {
      // the health first: a caller that reads health() right after its answer sees the new state
      postHealth();
      post({ t: 'ok', id: req.id, r });
    },
    (err: unknown) => {
      postHealth();
      post({
        t: 'err',
        id: req.id,
        message: errorMessage(err),
        ...(err instanceof NovaCronError && err.hint ? { hint: err.hint } : {}),
      });
    },
  );
});

void client.ready().then(postHealth);
