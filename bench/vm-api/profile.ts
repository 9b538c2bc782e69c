// Profiles the create path of a real node: starts `novacron start` (sim driver, SQLite) under
// `node --cpu-prof`, drives VM_PROFILE_CREATES creates with VM_PROFILE_CONCURRENCY in flight
// (the load generator of the bench), stops the node and prints the functions with the most self
// time and the server CPU per create. The .cpuprofile stays in VM_PROFILE_DIR (default a temp dir)
// for Chrome DevTools / speedscope. Usage: npx tsx bench/vm-api/profile.ts [file.cpuprofile]
// (VM_PROFILE_WS=1: with a /ws subscriber)
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/helpers/cli.js';
import { freePort } from '../../test/helpers/ports.js';
import { WebSocket } from 'undici';
import { LoadGenerator } from './load.js';

const CREATES = Number(process.env['VM_PROFILE_CREATES'] ?? 5000);
const CONCURRENCY = Number(process.env['VM_PROFILE_CONCURRENCY'] ?? 1000);
const profDir = process.env['VM_PROFILE_DIR'] ?? mkdtempSync(join(tmpdir(), 'nc-prof-'));

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self and inclusive time per function of a .cpuprofile, the busiest first. */
function report(path: string): void {
  const prof = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n: ProfileNode) => {
    const f = n.callFrame;
    const url = f.url.replace(/^.*node_modules\//, '').replace(REPO_ROOT, '');
    return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
  };
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  prof.samples.forEach((id, i) => {
    const n = byId.get(id)!;
    const dt = prof.timeDeltas[i] ?? 0;
    if (n.callFrame.functionName === '(idle)') return;
    total += dt;
    self.set(name(n), (self.get(name(n)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = name(byId.get(cur)!);
      if (!seen.has(k)) incl.set(k, (incl.get(k) ?? 0) + dt);
      seen.add(k);
    }
  });
  console.log(`profile ${path}: ${(total / 1000).toFixed(0)} ms busy`);
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((x, y) => y[1] - x[1])
      .slice(0, n)
      .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  console.log(`-- self time\n${top(self, 35)}\n-- inclusive time\n${top(incl, 60)}`);
}

const given = process.argv[2];
if (given !== undefined && given.endsWith('.cpuprofile')) {
  report(given);
  process.exit(0);
}

const dataDir = mkdtempSync(join(tmpdir(), 'nc-prof-data-'));
const port = await freePort();
const sets = {
  'api.rest_port': port,
  'api.grpc_port': await freePort(),
  'dwcp.listen_port': await freePort(),
  'vm.driver': 'sim',
  'node.capacity.cpus': 100_000_000,
  'node.capacity.memory_mib': 100_000_000_000,
};
const args = ['--cpu-prof', `--cpu-prof-dir=${profDir}`, '--import', 'tsx', 'src/cli/main.ts'];
args.push('start', '--data-dir', dataDir);
for (const [k, v] of Object.entries(sets)) args.push('--set', `${k}=${v}`);
const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
const exited = once(child, 'exit');
let out = '';
await new Promise<void>((resolve, reject) => {
  const on = (b: Buffer) => {
    out += b.toString();
    if (out.includes('"msg":"ready in')) resolve();
  };
  child.stdout.on('data', on);
  child.stderr.on('data', on);
  void exited.then(() => reject(new Error(`node exited:\n${out}`)));
});
const token = readFileSync(join(dataDir, 'admin.token'), 'utf8').trim();
const load = new LoadGenerator(`http://127.0.0.1:${port}`, CONCURRENCY);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
// VM_PROFILE_WS=1: a /ws subscriber (vm. events) is connected during the creates.
const ws =
  process.env['VM_PROFILE_WS'] === '1'
    ? new WebSocket(`ws://127.0.0.1:${port}/ws?types=vm.&token=${encodeURIComponent(token)}`)
    : undefined;
let wsEvents = 0;
if (ws !== undefined) {
  await new Promise((resolve) => ws.addEventListener('open', resolve));
  ws.addEventListener('message', () => wsEvents++);
}
try {
  await load.warm(() => ({ method: 'GET', path: '/health/live' }));
  const r = await load.run(
    CREATES,
    (i) => ({
      method: 'POST',
      path: '/api/v1/vms',
      headers,
      body: JSON.stringify({ name: `p-${i}`, cpus: 1, memoryMib: 64 }),
    }),
    (s) => s === 201,
  );
  console.log(
    `${r.requests} creates, ${r.errors} errors, ${r.perSecond}/s, P50 ${r.p50Ms} ms, P99 ${r.p99Ms} ms`,
  );
  if (ws !== undefined) console.log(`/ws subscriber: ${wsEvents} events so far`);
} finally {
  ws?.close();
  await load.close();
  child.kill('SIGTERM');
  await exited;
  rmSync(dataDir, { recursive: true, force: true });
}
// The main thread's profile is the largest (tsx's loader worker writes a small one too).
const file = readdirSync(profDir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .map((f) => ({ f, size: statSync(join(profDir, f)).size }))
  .sort((a, b) => a.size - b.size)
  .pop()?.f;
if (file === undefined) throw new Error(`no .cpuprofile in ${profDir}`);
report(join(profDir, file));
