// In-process create cost (no HTTP): VmService.create with the sim driver on a SQLite file, N creates
// with C in flight; prints CPU µs per create (process.cpuUsage), which other jobs on the machine
// disturb far less than wall time, and bytes written per create (/proc/self/io). Usage: npx tsx bench/vm-api/inproc.ts [N] [C]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { EventBus } from '../../src/boot/events.js';
import { openStore } from '../../src/store/index.js';
import { SimDriver } from '../../src/vm/drivers/sim/driver.js';
import { VmService } from '../../src/vm/service.js';

const N = Number(process.argv[2] ?? 20_000);
const C = Number(process.argv[3] ?? 1000);
const dir = mkdtempSync(join(tmpdir(), 'nc-inproc-'));
const store = await openStore({
  type: 'sqlite',
  path: '',
  dataDir: dir,
  host: '',
  port: 0,
  database: '',
  user: '',
  password: '',
  poolSize: 1,
  ssl: false,
});
const service = new VmService({
  store,
  driver: new SimDriver(),
  events: new EventBus(),
  logger: pino({ level: 'silent' }),
  nodeId: 'n1',
  vmsRoot: join(dir, 'vms'),
  capacity: { cpus: 1e9, memoryMib: 1e12, diskMib: 0 },
  nodeLabels: {},
  scheduler: { strategy: 'balanced' },
  stopGraceMs: 0,
  checkPaths: false,
});
/** Bytes this process has passed to write() so far (/proc/self/io wchar): database pages written. */
const written = () => Number(/wchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? 0);
async function run(prefix: string, n: number): Promise<{ cpuUs: number; wallMs: number; bytes: number }> {
  let next = 0;
  const w0 = written();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (next < n) {
        const i = next++;
        await service.create({ name: `${prefix}-${i}`, cpus: 1, memoryMib: 64 });
      }
    }),
  );
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / n, wallMs: performance.now() - t0, bytes: (written() - w0) / n };
}
await run('warm', 3000);
const r = await run('m', N);
console.log(
  `${N} creates, ${C} in flight: ${r.cpuUs.toFixed(0)} µs CPU and ${(r.bytes / 1024).toFixed(1)} KiB written per create, ${((N / r.wallMs) * 1000).toFixed(0)}/s wall`,
);
await service.close();
await store.close();
rmSync(dir, { recursive: true, force: true });
