// `npm run bench:wan`: validates the WAN emulator on the links the DWCP issue names. For each link
// it measures the idle RTT (ping and a UDP echo) against the configured RTT, and single-stream TCP
// goodput (Node sender/receiver; iperf3 too when installed) against the configured rate, under bbr
// and cubic. The "unlimited" row is the forwarder's own ceiling on this machine.
// Writes bench/wan/results/latest.json and the `## wan` section of BENCHMARKS.md.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  idleRttMs,
  startWanLink,
  type CongestionControl,
  type WanLink,
  type WanLinkOptions,
} from './link.js';
import {
  measurePingRtt,
  measureTcpTransfer,
  measureUdpRtt,
  pingAvailable,
  type RttSummary,
} from './measure.js';

interface LinkCase {
  readonly name: string;
  readonly options: WanLinkOptions;
  readonly seconds: number;
}

const CASES: readonly LinkCase[] = [
  { name: 'unlimited, 0 ms (forwarder ceiling)', options: {}, seconds: 5 },
  { name: '1 Gbit/s, 2 ms RTT', options: { rateMbit: 1000, delayMs: 1 }, seconds: 8 },
  {
    name: '100 Mbit/s, 40 ms RTT, 0.1% loss',
    options: { rateMbit: 100, delayMs: 20, lossPct: 0.1 },
    seconds: 10,
  },
  { name: '20 Mbit/s, 150 ms RTT', options: { rateMbit: 20, delayMs: 75 }, seconds: 15 },
];
const CCS: readonly CongestionControl[] = ['bbr', 'cubic'];

interface Row {
  link: string;
  cc: CongestionControl;
  configuredRttMs: number;
  pingRttMs: RttSummary | null;
  udpRttMs: RttSummary;
  configuredMbit: number | null;
  goodputMbit: number;
  steadyMbit: number;
  iperf3Mbit: number | null;
  /** Packets the link dropped on A->B during the transfer, as a share of those it received. */
  lossDropPct: number;
  queueDropPct: number;
  maxQueueDelayMs: number;
  /** Packets the kernel dropped at a TUN device because the forwarder read late (host overload, not the link). */
  hostDrops: number;
  scheduling: string;
}

function iperf3Available(): boolean {
  const r = spawnSync('iperf3', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

async function iperf3(link: WanLink, seconds: number, cc: CongestionControl): Promise<number> {
  // --forceflush: otherwise the "listening" line sits in stdio's buffer on a pipe.
  const server = link.spawnIn('b', 'iperf3', ['-s', '-1', '-p', '5201', '--forceflush'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    if (!server.stdout) throw new Error('iperf3 server has no stdout');
    const lines = createInterface({ input: server.stdout });
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (l) => {
        if (/listening/i.test(l)) resolve();
      });
      server.on('exit', () => reject(new Error('iperf3 server exited')));
    });
    const r = await link.exec(
      'a',
      'iperf3',
      ['-c', link.addrB, '-p', '5201', '-t', String(seconds), '-C', cc, '-J'],
      {
        timeoutMs: (seconds + 30) * 1000,
      },
    );
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    server.kill('SIGKILL');
  }
}

const f = (n: number | null | undefined, d = 1): string =>
  n === null || n === undefined || Number.isNaN(n) ? '—' : n.toFixed(d);

async function main(): Promise<void> {
  const withPing = pingAvailable();
  const withIperf = iperf3Available();
  const rows: Row[] = [];
  const started = new Date();
  const loadAtStart = loadavg()[0] ?? 0;
  for (const c of CASES) {
    const link = await startWanLink(c.options);
    try {
      const configuredRttMs = idleRttMs(link.config);
      const udpRttMs = await measureUdpRtt(link, { count: 20, intervalMs: 50 });
      const pingRttMs = withPing ? await measurePingRtt(link, { count: 20, intervalMs: 50 }) : null;
      for (const cc of CCS) {
        await link.setCongestionControl(cc);
        const before = await link.stats();
        const tunBefore = await link.tunDrops();
        const t = await measureTcpTransfer(link, { seconds: c.seconds });
        const after = await link.stats();
        const tunAfter = await link.tunDrops();
        const rx = after.aToB.rxPackets - before.aToB.rxPackets;
        const iperf3Mbit = withIperf ? await iperf3(link, c.seconds, cc) : null;
        const row: Row = {
          link: c.name,
          cc,
          configuredRttMs,
          pingRttMs,
          udpRttMs,
          configuredMbit: link.config.aToB.rateBps ? link.config.aToB.rateBps / 1e6 : null,
          goodputMbit: t.goodputMbit,
          steadyMbit: t.steadyMbit,
          iperf3Mbit,
          lossDropPct: rx ? ((after.aToB.lossDrops - before.aToB.lossDrops) / rx) * 100 : 0,
          queueDropPct: rx ? ((after.aToB.queueDrops - before.aToB.queueDrops) / rx) * 100 : 0,
          maxQueueDelayMs: after.aToB.maxQueueDelayNs / 1e6,
          hostDrops: tunAfter.a - tunBefore.a + (tunAfter.b - tunBefore.b),
          scheduling: link.scheduling,
        };
        rows.push(row);
        console.error(
          `${c.name} ${cc}: rtt ${f(udpRttMs.medianMs, 2)} ms (conf ${f(configuredRttMs, 2)}), goodput ${f(t.goodputMbit)} Mbit/s` +
            (iperf3Mbit === null ? '' : `, iperf3 ${f(iperf3Mbit)}`),
        );
      }
    } finally {
      await link.stop();
    }
  }

  const header =
    '| link | cc | RTT configured ms | RTT ping p50 ms | RTT UDP echo p50 ms | rate configured Mbit/s | Node goodput Mbit/s | goodput / rate | 2nd-half goodput | iperf3 Mbit/s | random drops % | queue drops % | host drops |';
  const sep =
    '|' +
    header
      .split('|')
      .slice(1, -1)
      .map(() => '---')
      .join('|') +
    '|';
  const lines = rows.map((r) =>
    [
      r.link,
      r.cc,
      f(r.configuredRttMs, 2),
      f(r.pingRttMs?.medianMs, 2),
      f(r.udpRttMs.medianMs, 2),
      f(r.configuredMbit, 0),
      f(r.goodputMbit),
      r.configuredMbit ? f(r.goodputMbit / r.configuredMbit, 2) : '—',
      f(r.steadyMbit),
      f(r.iperf3Mbit),
      f(r.lossDropPct, 3),
      f(r.queueDropPct, 3),
      String(r.hostDrops),
    ].join(' | '),
  );
  const table = [header, sep, ...lines.map((l) => `| ${l} |`)].join('\n');
  console.log(table);

  const cpu = cpus();
  const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
  const machine = `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${kernel}, Node ${process.version}`;
  const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(
    `${resultsDir}latest.json`,
    JSON.stringify(
      { date: started.toISOString(), machine, ping: withPing, iperf3: withIperf, rows },
      null,
      2,
    ) + '\n',
  );

  const section = `## wan

WAN link emulator (bench/wan, docs/wan-emulator.md): two network namespaces joined by a userspace
TUN forwarder that delays, drops and paces. Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC
on ${machine}, load average ${loadAtStart.toFixed(1)} at the start (the 2 cores were shared with
other work). Command: \`npm run bench:wan\`.
The baseline of each row is the configured link: RTT measured idle (ping, and a UDP echo between
two Node processes) vs configured; single-stream TCP goodput (payload bytes at the receiver, Node
sender and receiver${withIperf ? ', and iperf3 for comparison' : ''}) vs configured rate. Payload goodput tops out
about 2.7% below the wire rate (TCP/IP headers in a 1500-byte MTU). The default queue is one BDP.
The "unlimited" row is what the forwarder itself passes on this machine. "host drops" counts packets
the kernel dropped at a TUN device because the forwarder read them late (host overload, not the
emulated link); the forwarder ran with scheduling "${rows[0]?.scheduling ?? 'unknown'}".

${table}
`;
  const benchPath = fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
  const current = readFileSync(benchPath, 'utf8');
  const start = current.indexOf('\n## wan\n');
  let next: string;
  if (start < 0) next = current.trimEnd() + '\n\n' + section;
  else {
    const rest = current.indexOf('\n## ', start + 1);
    next = current.slice(0, start + 1) + section + (rest < 0 ? '' : current.slice(rest));
  }
  writeFileSync(benchPath, next);
}

await main();
