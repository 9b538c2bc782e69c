// `npm run wan -- --rate 100 --delay 20 --loss 0.1`: brings up an emulated WAN link for a human,
// prints how to run commands on each side, and tears it down on Ctrl-C (or `--cleanup` removes
// namespaces left by crashed runs).
import { parseArgs } from 'node:util';
import { errorMessage, NovaCronError } from '../../src/errors.js';
import {
  cleanupStaleWanLinks,
  idleRttMs,
  startWanLink,
  type CongestionControl,
  type WanLinkOptions,
} from './link.js';

const USAGE = `usage: npm run wan -- [options]
  --rate MBIT          bottleneck rate in Mbit/s (default unlimited)
  --delay MS           one-way delay in ms, both directions (RTT = 2x)
  --loss PCT           random loss in percent, each direction
  --queue-ms MS        drop-tail queue limit as queueing delay (default: one BDP in bytes)
  --queue-bytes BYTES  drop-tail queue limit in bytes
  --trace FILE         bandwidth trace (time_s throughput_Mbps), looped; replaces --rate
  --trace-scale X      multiply the trace's rates by X
  --up-rate MBIT       rate of the B->A direction only (asymmetric links)
  --seed N             seed of the loss generator (default 1)
  --cc bbr|cubic|reno  TCP congestion control inside both namespaces
  --stats-every S      print forwarder counters every S seconds
  --cleanup            only remove namespaces left behind by crashed runs`;

function numberOpt(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string' },
      delay: { type: 'string' },
      loss: { type: 'string' },
      'queue-ms': { type: 'string' },
      'queue-bytes': { type: 'string' },
      trace: { type: 'string' },
      'trace-scale': { type: 'string' },
      'up-rate': { type: 'string' },
      seed: { type: 'string' },
      cc: { type: 'string' },
      'stats-every': { type: 'string' },
      cleanup: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.cleanup) {
    const removed = await cleanupStaleWanLinks();
    console.log(removed.length ? `removed ${removed.join(' ')}` : 'nothing to clean up');
    return;
  }
  const set = <K extends keyof WanLinkOptions>(
    o: Record<string, unknown>,
    k: K,
    v: WanLinkOptions[K] | undefined,
  ) => {
    if (v !== undefined) o[k] = v;
  };
  const opts: Record<string, unknown> = {};
  set(opts, 'rateMbit', numberOpt(values.rate, 'rate'));
  set(opts, 'delayMs', numberOpt(values.delay, 'delay'));
  set(opts, 'lossPct', numberOpt(values.loss, 'loss'));
  set(opts, 'queueMs', numberOpt(values['queue-ms'], 'queue-ms'));
  set(opts, 'queueBytes', numberOpt(values['queue-bytes'], 'queue-bytes'));
  set(opts, 'trace', values.trace);
  set(opts, 'traceScale', numberOpt(values['trace-scale'], 'trace-scale'));
  set(opts, 'seed', numberOpt(values.seed, 'seed'));
  set(opts, 'congestionControl', values.cc as CongestionControl | undefined);
  const upRate = numberOpt(values['up-rate'], 'up-rate');
  if (upRate !== undefined) opts['bToA'] = { rateMbit: upRate };

  const link = await startWanLink(opts as WanLinkOptions);
  let stopping = false;
  let timer: NodeJS.Timeout | undefined;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    const s = await link.stop();
    if (s) console.log(`\nfinal counters:\n${JSON.stringify(s, null, 2)}`);
    clearInterval(timer); // nothing else keeps the process alive: it exits once stdout is flushed
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  const d = (dir: typeof link.config.aToB): string =>
    `${dir.trace ? `trace (mean ${(dir.rateBps / 1e6).toFixed(2)} Mbit/s)` : dir.rateBps ? `${dir.rateBps / 1e6} Mbit/s` : 'unlimited'}, ` +
    `${dir.delayNs / 1e6} ms, ${dir.loss * 100}% loss, queue ${dir.queueBytes ? `${dir.queueBytes} B` : dir.queueNs ? `${dir.queueNs / 1e6} ms` : 'unlimited'}`;
  const cc = await link.congestionControl('a');
  console.log(`WAN link ${link.id} is up (idle RTT ${idleRttMs(link.config).toFixed(2)} ms, TCP congestion control ${cc})
  A -> B: ${d(link.config.aToB)}
  B -> A: ${d(link.config.bToA)}
  side A: ip netns exec ${link.nsA} …   address ${link.addrA}
  side B: ip netns exec ${link.nsB} …   address ${link.addrB}
for example:
  ip netns exec ${link.nsA} ping -c 5 ${link.addrB}
  ip netns exec ${link.nsB} iperf3 -s     # then: ip netns exec ${link.nsA} iperf3 -c ${link.addrB} -C cubic
Ctrl-C tears the link down.`);
  const every = numberOpt(values['stats-every'], 'stats-every');
  if (every !== undefined && every > 0) {
    timer = setInterval(() => {
      link.stats().then(
        (s) =>
          console.log(
            `A->B rx ${s.aToB.rxPackets} tx ${s.aToB.txPackets} lost ${s.aToB.lossDrops} queue-drop ${s.aToB.queueDrops} | ` +
              `B->A rx ${s.bToA.rxPackets} tx ${s.bToA.txPackets} lost ${s.bToA.lossDrops} queue-drop ${s.bToA.queueDrops}`,
          ),
        (err: unknown) => console.error(errorMessage(err)),
      );
    }, every * 1000);
  } else {
    timer = setInterval(() => undefined, 1 << 30); // keep running until a signal
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof NovaCronError ? err.describe() : errorMessage(err));
  process.exit(1);
});
