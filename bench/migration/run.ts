// `npm run bench:migration`: live migration of the test guest (with a memory-dirtying workload)
// across the emulated WAN link (bench/wan, 100 Mbit/s, 40 ms RTT): NovaCron over DWCP versus QEMU's
// own migration (plain tcp, multifd, multifd+zstd), same run, same link. Needs root (namespaces) and
// QEMU. Prints a table and writes bench/migration/results/latest.json.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { startWanLink, wanUnsupportedReason } from '../wan/link.js';
import type { VariantResult } from './inner.js';

const reason = wanUnsupportedReason();
if (reason) {
  console.error(`bench/migration needs the WAN emulator: ${reason}`);
  process.exit(1);
}
const sizes = (process.env['BENCH_MIGRATION_MIB'] ?? '256').split(',').map(Number);
const variants =
  process.env['BENCH_MIGRATION_VARIANTS'] ?? 'novacron-dwcp,qemu-plain,qemu-multifd,qemu-multifd-zstd';
const link = await startWanLink({ rateMbit: 100, delayMs: 20 });
const load = [loadavg()[0]!.toFixed(2)];
const all: VariantResult[] = [];
try {
  for (const mib of sizes) {
    const out = join(tmpdir(), `nc-bench-mig-${process.pid}-${mib}.json`);
    const child = link.nodeIn(
      'a',
      'bench/migration/inner.ts',
      [link.nsB, link.addrB, String(mib), variants, out],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    await once(child, 'exit');
    all.push(...(JSON.parse(readFileSync(out, 'utf8')) as VariantResult[]));
    load.push(loadavg()[0]!.toFixed(2));
  }
} finally {
  await link.stop();
}
const plain = new Map(all.filter((r) => r.variant === 'qemu-plain').map((r) => [r.memoryMib, r]));
console.log('| guest | variant | total | vs QEMU plain | downtime | on the wire |');
console.log('|---|---|---|---|---|---|');
for (const r of all) {
  const p = plain.get(r.memoryMib);
  const ratio = p && p.totalMs > 0 && r.totalMs > 0 ? `${(r.totalMs / p.totalMs).toFixed(2)}×` : '-';
  console.log(
    r.error
      ? `| ${r.memoryMib} MiB | ${r.variant} | failed: ${r.error} | | | |`
      : `| ${r.memoryMib} MiB | ${r.variant} | ${(r.totalMs / 1000).toFixed(1)} s | ${ratio} | ${r.downtimeMs ?? '?'} ms | ${(r.wireBytes / 2 ** 20).toFixed(1)} MiB |`,
  );
}
console.log(`load average (1 min) during the run: ${load.join(' → ')}`);
mkdirSync('bench/migration/results', { recursive: true });
writeFileSync(
  'bench/migration/results/latest.json',
  JSON.stringify(
    { at: new Date().toISOString(), link: '100 Mbit/s, 20 ms each way', load, results: all },
    null,
    2,
  ),
);
