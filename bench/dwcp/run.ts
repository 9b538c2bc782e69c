// bench/dwcp: DWCP against its baselines on the same data in the same run.
//   1. Delta size of a second version: DWCP (wire bytes of the second send), rsync, xdelta3, zstd --patch-from.
//   2. Transfers over loopback and emulated WAN links (bench/wan): single plain TCP stream,
//      `zstd -3` piped over one TCP stream, DWCP; effective throughput, wire bytes, CPU time.
// Data (in $DWCP_BENCH_DIR, default /tmp/dwcp-bench, not committed): the test guest's RAM saved twice
// with QEMU (capture-guest-ram.sh), an ext4 disk image of /usr/share/doc and a second version with 5 %
// of its blocks rewritten and a few inserts, and incompressible random data.
//   npm run bench:dwcp                 everything (a few minutes)
//   npm run bench:dwcp -- --quick      loopback only
//   node --import tsx bench/dwcp/run.ts --resume-only   a send killed part-way and run again, 100 Mbit/s link
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  openSync,
  readSync,
  closeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { startWanLink, wanUnsupportedReason, type WanLink, type WanLinkOptions } from '../wan/link.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PEER = join(HERE, 'peer.ts');
const DATA = process.env.DWCP_BENCH_DIR ?? '/tmp/dwcp-bench';
const quick = process.argv.includes('--quick');
/** `--wan-only`: skip delta sizes and loopback, run the 100 Mbit/s link only (a focused re-run). */
const wanOnly = process.argv.includes('--wan-only');
/** `--delta-only`: only the second-version sizes (DWCP, rsync, xdelta3, zstd --patch-from). */
const deltaOnly = process.argv.includes('--delta-only');
/** `--only=NAME[,NAME]` data sets, `--methods=tcp,dwcp`, `--cc=bbr|cubic`: narrow a --wan-only run further. */
const argList = (k: string): string[] | undefined =>
  process.argv
    .find((a) => a.startsWith(`--${k}=`))
    ?.slice(k.length + 3)
    .split(',');
/** `--resume-only`: a DWCP send killed part-way and run again, against a full send, on the 100 Mbit/s link. */
const resumeOnly = process.argv.includes('--resume-only');
const onlyData = argList('only') ?? (resumeOnly ? ['random.bin'] : undefined);
const onlyMethods = argList('methods');
const onlyCc = argList('cc');

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// ---------- data ----------
function prepareData(): Record<string, string> {
  mkdirSync(DATA, { recursive: true });
  const f = (n: string) => join(DATA, n);
  const want = (n: string) => !onlyData || onlyData.includes(n);
  if (
    (want('mem-v1.img') || want('mem-v2.img')) &&
    (!existsSync(f('mem-v1.img')) || !existsSync(f('mem-v2.img')))
  ) {
    process.stderr.write('capturing the test guest RAM with QEMU …\n');
    sh('sh', [join(HERE, 'capture-guest-ram.sh'), DATA, '256']);
  }
  if (want('disk-v1.img') && !existsSync(f('disk-v1.img'))) {
    sh('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-d', '/usr/share/doc', f('disk-v1.img'), '256M']);
  }
  if (want('disk-v1.img') && !existsSync(f('disk-v2.img'))) {
    // 5 % of the 4 KiB blocks rewritten at seeded positions, then 16 inserts of 1000 bytes.
    const v1 = readFileSync(f('disk-v1.img'));
    const blocks = v1.length / 4096;
    let x = 12345;
    const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0), x);
    const v2 = Buffer.from(v1);
    for (let i = 0; i < Math.round(blocks * 0.05); i++) randomBytes(4096).copy(v2, (rnd() % blocks) * 4096);
    const parts: Buffer[] = [];
    let pos = 0;
    const cuts = Array.from({ length: 16 }, () => rnd() % v2.length).sort((a, b) => a - b);
    for (const c of cuts) {
      parts.push(v2.subarray(pos, c), randomBytes(1000));
      pos = c;
    }
    parts.push(v2.subarray(pos));
    writeFileSync(f('disk-v2.img'), Buffer.concat(parts));
  }
  if (!existsSync(f('random.bin'))) writeFileSync(f('random.bin'), randomBytes(64 << 20));
  // The goodput bar on the 100 Mbit/s link: long enough (about 23 s) that set-up and slow start do
  // not dominate, as they do for 64 MiB (about 6 s).
  if (want('random-256.bin') && !existsSync(f('random-256.bin'))) {
    const big = Buffer.allocUnsafe(256 << 20);
    for (let off = 0; off < big.length; off += 1 << 20) randomBytes(1 << 20).copy(big, off);
    writeFileSync(f('random-256.bin'), big);
  }
  return {
    mem1: f('mem-v1.img'),
    mem2: f('mem-v2.img'),
    disk1: f('disk-v1.img'),
    disk2: f('disk-v2.img'),
    random: f('random.bin'),
    random256: f('random-256.bin'),
  };
}

function changedPages(a: string, b: string): number {
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  const ba = Buffer.alloc(4096);
  const bb = Buffer.alloc(4096);
  let changed = 0;
  let total = 0;
  for (let off = 0; ; off += 4096) {
    const na = readSync(fa, ba, 0, 4096, off);
    const nb = readSync(fb, bb, 0, 4096, off);
    if (na === 0 && nb === 0) break;
    total++;
    if (na !== nb || !ba.equals(bb)) changed++;
  }
  closeSync(fa);
  closeSync(fb);
  return changed / total;
}

// ---------- processes ----------
interface PeerResult {
  seconds?: number;
  bytes?: number;
  wireBytes?: number;
  cpuSeconds: number;
  streams?: number;
  chunks?: Record<string, number>;
}

type Spawner = (side: 'a' | 'b', args: string[]) => ReturnType<typeof spawn>;

function localSpawner(): Spawner {
  return (_side, args) =>
    spawn(process.execPath, ['--import', 'tsx', PEER, ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
}

function wanSpawner(link: WanLink): Spawner {
  return (side, args) => link.nodeIn(side, PEER, args, { stdio: ['ignore', 'pipe', 'inherit'] });
}

function lines(child: ReturnType<typeof spawn>): AsyncIterator<string> {
  return createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
}

async function pair(
  spawnP: Spawner,
  recvArgs: string[],
  sendArgs: string[],
): Promise<{ send: PeerResult; recv: PeerResult }> {
  const rx = spawnP('b', recvArgs);
  const rxLines = lines(rx);
  const ready = await rxLines.next();
  if (ready.done || ready.value !== 'ready')
    throw new Error(`receiver did not start: ${String(ready.value)}`);
  const tx = spawnP('a', sendArgs);
  const txLines = lines(tx);
  // A sender that fails leaves the receiver waiting: stop it and report.
  const failed = new Promise<never>((_, reject) =>
    tx.once('exit', (code) => {
      if (code !== 0) {
        rx.kill();
        reject(new Error(`sender exited with ${String(code)}: ${sendArgs.join(' ')}`));
      }
    }),
  );
  failed.catch(() => {});
  const [s, r] = await Promise.race([Promise.all([txLines.next(), rxLines.next()]), failed]);
  if (s.done || r.done) throw new Error('a peer exited without a result');
  return { send: JSON.parse(s.value) as PeerResult, recv: JSON.parse(r.value) as PeerResult };
}

interface Row {
  link: string;
  cc: string;
  data: string;
  method: string;
  bytes: number;
  wireBytes: number;
  seconds: number;
  mbps: number;
  wireMbps: number;
  cpuSeconds: number;
  streams?: number;
}

async function transfer(
  spawnP: Spawner,
  addr: string,
  link: string,
  cc: string,
  name: string,
  file: string,
  method: string,
  port: number,
): Promise<Row> {
  const out = join(DATA, 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const bytes = statSync(file).size;
  let res: { send: PeerResult; recv: PeerResult };
  let seconds: number;
  let wire: number;
  let streams: number | undefined;
  const hp = `${addr}:${port}`;
  if (method === 'tcp' || method === 'zstd-3') {
    const z = method === 'zstd-3' ? ['zstd'] : [];
    res = await pair(spawnP, ['tcp-recv', hp, join(out, name), ...z], ['tcp-send', file, hp, ...z]);
    // From the receiver's accept to the last byte written: process start-up is not counted.
    seconds = res.recv.seconds ?? 0;
    wire = res.recv.wireBytes ?? 0;
  } else {
    // dwcp: adaptive streams, BBR per socket where the kernel has it (the product default);
    // dwcp-host: adaptive streams on the namespace's default congestion control; dwcp-1: one stream.
    const fixed = /^dwcp-(\d+)$/.exec(method)?.[1];
    const streamsArg = fixed ?? 'auto';
    const dwcpCc = method === 'dwcp-host' ? 'host' : 'auto';
    res = await pair(
      spawnP,
      ['dwcp-recv', hp, out],
      ['dwcp-send', file, hp, name, streamsArg, 'zstd', '3', dwcpCc],
    );
    seconds = res.send.seconds ?? 0;
    wire = res.send.wireBytes ?? 0;
    streams = res.send.streams;
  }
  const got = statSync(join(out, name)).size;
  if (got !== bytes) throw new Error(`${method} ${name}: received ${got} of ${bytes} bytes`);
  const row: Row = {
    link,
    cc,
    data: name,
    method,
    bytes,
    wireBytes: wire,
    seconds: round(seconds, 3),
    mbps: round((bytes * 8) / seconds / 1e6, 1),
    wireMbps: round((wire * 8) / seconds / 1e6, 1),
    cpuSeconds: round(res.send.cpuSeconds + res.recv.cpuSeconds, 2),
    ...(streams !== undefined ? { streams } : {}),
  };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

const round = (v: number, d: number) => Math.round(v * 10 ** d) / 10 ** d;

/**
 * A DWCP send killed with SIGKILL once the receiver has `killAt` of the file on disk, then the
 * same send started again: the receiver keeps what the first one wrote (file-receiver.ts,
 * keepPartial) and the second sends the rest. The row is the second send's time and wire bytes.
 */
async function resumedTransfer(
  spawnP: Spawner,
  addr: string,
  link: string,
  cc: string,
  name: string,
  file: string,
  port: number,
  killAt: number,
): Promise<Row & { writtenBeforeKill: number }> {
  const out = join(DATA, 'out');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const bytes = statSync(file).size;
  const hp = `${addr}:${port}`;
  const rx = spawnP('b', ['dwcp-recv', hp, out]);
  const rxLines = lines(rx);
  const ready = await rxLines.next();
  if (ready.done || ready.value !== 'ready')
    throw new Error(`receiver did not start: ${String(ready.value)}`);
  const sendArgs = ['dwcp-send', file, hp, name, 'auto', 'zstd', '3', 'auto'];
  const first = spawnP('a', sendArgs);
  first.stdout?.resume();
  const firstExit = new Promise<void>((r) => first.once('exit', () => r()));
  let written = 0;
  const until = Date.now() + 300_000;
  while (written < killAt * bytes && first.exitCode === null && Date.now() < until) {
    const part = readdirSync(out).find((n) => n.endsWith('.dwcp-part'));
    written = part ? statSync(join(out, part)).blocks * 512 : 0;
    await new Promise((r) => setTimeout(r, 5));
  }
  if (first.exitCode !== null) throw new Error(`${name}: the first sender ended before it could be killed`);
  first.kill('SIGKILL');
  await firstExit;
  const [s, r] = await Promise.all([lines(spawnP('a', sendArgs)).next(), rxLines.next()]);
  if (s.done || r.done) throw new Error('a peer exited without a result');
  const send = JSON.parse(s.value) as PeerResult;
  const recv = JSON.parse(r.value) as PeerResult;
  const got = statSync(join(out, name)).size;
  if (got !== bytes) throw new Error(`resumed ${name}: received ${got} of ${bytes} bytes`);
  const seconds = send.seconds ?? 0;
  const wire = send.wireBytes ?? 0;
  const row = {
    link,
    cc,
    data: name,
    method: `dwcp, sent again after a kill at ${Math.round((100 * written) / bytes)} %`,
    bytes,
    wireBytes: wire,
    seconds: round(seconds, 3),
    mbps: round((bytes * 8) / seconds / 1e6, 1),
    wireMbps: round((wire * 8) / seconds / 1e6, 1),
    cpuSeconds: round(send.cpuSeconds + recv.cpuSeconds, 2),
    ...(send.streams !== undefined ? { streams: send.streams } : {}),
    writtenBeforeKill: written,
  };
  process.stderr.write(`${JSON.stringify(row)}\n`);
  return row;
}

// ---------- delta sizes ----------
async function deltaSizes(d: Record<string, string>): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  for (const [label, v1, v2] of [
    ['memory', d.mem1!, d.mem2!],
    ['disk', d.disk1!, d.disk2!],
  ] as const) {
    const tmp = join(DATA, 'delta');
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(join(tmp, 'rx'), { recursive: true });
    // DWCP: send v1, then v2 under the same name; the second send's wire bytes in both directions
    // (the sender's records and queries, the receiver's answers and acks) are the delta cost.
    const spawnP = localSpawner();
    await pair(
      spawnP,
      ['dwcp-recv', '127.0.0.1:17301', join(tmp, 'rx')],
      ['dwcp-send', v1, '127.0.0.1:17301', 'img', '4', 'zstd', '3'],
    );
    const second = await pair(
      spawnP,
      ['dwcp-recv', '127.0.0.1:17302', join(tmp, 'rx')],
      ['dwcp-send', v2, '127.0.0.1:17302', 'img', '4', 'zstd', '3'],
    );
    // rsync delta transfer (local, but with the delta algorithm forced on): bytes sent + received.
    sh('cp', [v1, join(tmp, 'rsync-dest')]);
    const rs = sh('rsync', ['--no-whole-file', '--inplace', '--stats', v2, join(tmp, 'rsync-dest')]);
    const sent = Number(/Total bytes sent: ([\d,]+)/.exec(rs)?.[1]?.replace(/,/g, '') ?? NaN);
    const recv = Number(/Total bytes received: ([\d,]+)/.exec(rs)?.[1]?.replace(/,/g, '') ?? NaN);
    sh('xdelta3', ['-e', '-f', '-3', '-B', String(512 << 20), '-s', v1, v2, join(tmp, 'x.vcdiff')]);
    sh('zstd', ['-q', '-f', '-3', '--long=30', `--patch-from=${v1}`, v2, '-o', join(tmp, 'z.patch')]);
    const row = {
      data: label,
      changedPages: round(changedPages(v1, v2), 4),
      dwcpWire: (second.send.wireBytes ?? NaN) + (second.recv.wireBytes ?? NaN),
      dwcpSent: second.send.wireBytes,
      dwcpAnswers: second.recv.wireBytes,
      dwcpChunks: second.send.chunks,
      rsync: sent + recv,
      xdelta3: statSync(join(tmp, 'x.vcdiff')).size,
      zstdPatchFrom: statSync(join(tmp, 'z.patch')).size,
    };
    process.stderr.write(`${JSON.stringify(row)}\n`);
    rows.push(row);
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

// ---------- main ----------
async function main(): Promise<void> {
  const d = prepareData();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
  };
  results.delta = wanOnly || resumeOnly ? [] : await deltaSizes(d);
  if (deltaOnly) {
    mkdirSync(join(HERE, 'results'), { recursive: true });
    writeFileSync(join(HERE, 'results', 'delta.json'), JSON.stringify(results, null, 2) + '\n');
    for (const r of results.delta as Record<string, unknown>[])
      process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const rows: Row[] = [];
  if (resumeOnly) {
    const why = wanUnsupportedReason();
    if (why !== undefined) throw new Error(`--resume-only needs the WAN emulator: ${why}`);
    const link = await startWanLink({
      rateMbit: 100,
      delayMs: 20,
      lossPct: 0.1,
      congestionControl: 'bbr',
      seed: 7,
    });
    try {
      let port = 17700;
      // the baseline: the same send whole (what a second send cost before the receiver kept partial files)
      rows.push(
        await transfer(
          wanSpawner(link),
          link.addrB,
          '100M-40ms-0.1%',
          'bbr',
          'random.bin',
          d.random!,
          'dwcp',
          port++,
        ),
      );
      for (const killAt of [0.25, 0.5, 0.75])
        rows.push(
          await resumedTransfer(
            wanSpawner(link),
            link.addrB,
            '100M-40ms-0.1%',
            'bbr',
            'random.bin',
            d.random!,
            port++,
            killAt,
          ),
        );
    } finally {
      await link.stop();
    }
    results.transfers = rows;
    mkdirSync(join(HERE, 'results'), { recursive: true });
    writeFileSync(join(HERE, 'results', 'resume.json'), JSON.stringify(results, null, 2) + '\n');
    for (const r of rows) process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const sets: [string, string][] = [
    ['mem-v1.img', d.mem1!],
    ['disk-v1.img', d.disk1!],
    ['random.bin', d.random!],
  ];
  let port = 17400;
  for (const [name, file] of wanOnly ? [] : sets) {
    for (const m of ['tcp', 'zstd-3', 'dwcp-1', 'dwcp'])
      rows.push(await transfer(localSpawner(), '127.0.0.1', 'loopback', 'host', name, file, m, port++));
  }
  const why = wanUnsupportedReason();
  if (!quick && why === undefined) {
    const links: [string, WanLinkOptions, ('bbr' | 'cubic')[], [string, string][]][] = [
      [
        '100M-40ms-0.1%',
        { rateMbit: 100, delayMs: 20, lossPct: 0.1 },
        ['bbr', 'cubic'],
        sets.slice(0, 1).concat([
          ['random.bin', d.random!],
          ['random-256.bin', d.random256!],
        ]),
      ],
      ['1G-2ms', { rateMbit: 1000, delayMs: 1 }, ['bbr'], sets.slice(0, 1)],
      ['20M-150ms', { rateMbit: 20, delayMs: 75 }, ['bbr'], [['random.bin', d.random!]]],
    ];
    for (const [label, opts, ccs, data] of wanOnly ? links.slice(0, 1) : links) {
      for (const cc of ccs.filter((c) => !onlyCc || onlyCc.includes(c))) {
        const link = await startWanLink({ ...opts, congestionControl: cc, seed: 7 });
        try {
          for (const [name, file] of data) {
            if (wanOnly && cc === 'cubic' && !name.startsWith('random')) continue; // keep the re-run short
            if (onlyData && !onlyData.includes(name)) continue;
            // 256 MiB random: DWCP against plain TCP only, and no 3-minute plain cubic baseline
            // (the 64 MiB file gives that ratio).
            const big = name === 'random-256.bin';
            // On cubic, also DWCP left on cubic: what more streams alone buy.
            for (const m of (cc === 'cubic'
              ? ['tcp', 'zstd-3', 'dwcp-host', 'dwcp']
              : ['tcp', 'zstd-3', 'dwcp']
            )
              .concat(onlyMethods?.filter((x) => /^dwcp-\d+$/.test(x)) ?? [])
              .filter((x) => !onlyMethods || onlyMethods.includes(x))
              .filter((x) => !big || (x !== 'zstd-3' && !(cc === 'cubic' && x === 'tcp'))))
              rows.push(await transfer(wanSpawner(link), link.addrB, label, cc, name, file, m, port++));
          }
        } finally {
          await link.stop();
        }
      }
    }
  } else if (why !== undefined) {
    results.wanSkipped = why;
  }
  results.transfers = rows;
  mkdirSync(join(HERE, 'results'), { recursive: true });
  writeFileSync(
    join(
      HERE,
      'results',
      quick
        ? 'quick.json'
        : onlyData || onlyMethods || onlyCc
          ? 'scratch.json.tmp'
          : wanOnly
            ? 'wan-100m.json'
            : 'latest.json',
    ),
    JSON.stringify(results, null, 2) + '\n',
  );
  // Table
  const head = [
    'link',
    'cc',
    'data',
    'method',
    'MB',
    'wire MB',
    's',
    'Mbit/s eff',
    'Mbit/s wire',
    'CPU s',
    'x tcp',
  ];
  const out = [head.join(' | ')];
  for (const r of rows) {
    const base = rows.find(
      (b) => b.link === r.link && b.cc === r.cc && b.data === r.data && b.method === 'tcp',
    );
    out.push(
      [
        r.link,
        r.cc,
        r.data,
        r.method + (r.streams ? `(${r.streams})` : ''),
        (r.bytes / 1e6).toFixed(1),
        (r.wireBytes / 1e6).toFixed(1),
        r.seconds,
        r.mbps,
        r.wireMbps,
        r.cpuSeconds,
        base ? (base.seconds / r.seconds).toFixed(2) : '-',
      ].join(' | '),
    );
  }
  process.stdout.write(out.join('\n') + '\n\n');
  for (const r of results.delta as Record<string, unknown>[]) process.stdout.write(JSON.stringify(r) + '\n');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
