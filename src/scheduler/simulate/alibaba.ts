// Parser for the Alibaba openb GPU cluster trace (Weng et al., ATC 2023): the node list as a host
// pool and a pod list as a trace, CPU and memory only. Pure: text in, trace out.
import { ValidationError } from '../../errors.js';
import type { HostPool, PlacementTrace } from './trace.js';

function csv(
  text: string,
  what: string,
  required: readonly string[],
): { cols: Map<string, number>; rows: string[][] } {
  const all = text.split('\n').filter((l) => l.trim().length > 0);
  const header = (all[0] ?? '').trim().split(',');
  const cols = new Map(header.map((h, i) => [h, i]));
  for (const r of required) if (!cols.has(r)) throw new ValidationError(`${what}: missing column ${r}`);
  return { cols, rows: all.slice(1).map((l) => l.trim().split(',')) };
}

function int(v: string | undefined, what: string): number {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n) || n < 0)
    throw new ValidationError(`${what}: bad number ${v}`);
  return Math.round(n);
}

/** Parses `openb_node_list_*.csv` (`sn,cpu_milli,memory_mib,…`) into a fixed host pool. */
export function parseOpenbNodes(text: string): HostPool {
  const { cols, rows } = csv(text, 'node list', ['cpu_milli', 'memory_mib']);
  const c = cols.get('cpu_milli')!;
  const m = cols.get('memory_mib')!;
  return {
    kind: 'list',
    cpuMilli: Int32Array.from(rows, (r, i) => int(r[c], `node row ${i + 1} cpu_milli`)),
    memoryMib: Int32Array.from(rows, (r, i) => int(r[m], `node row ${i + 1} memory_mib`)),
  };
}

/**
 * Parses `openb_pod_list_*.csv`. Pods arrive at `creation_time` and leave at `deletion_time`
 * (sorted by creation time, ties in file order). Lists without time columns (the `multigpu*`
 * variants) arrive in file order and never leave.
 */
export function parseOpenbPods(source: string, text: string): PlacementTrace {
  const { cols, rows } = csv(text, source, ['cpu_milli', 'memory_mib']);
  const c = cols.get('cpu_milli')!;
  const m = cols.get('memory_mib')!;
  const ct = cols.get('creation_time');
  const dt = cols.get('deletion_time');
  const n = rows.length;
  const created = new Float64Array(n);
  const deleted = new Float64Array(n).fill(Infinity);
  rows.forEach((r, i) => {
    created[i] = ct === undefined ? i : int(r[ct], `${source} row ${i + 1} creation_time`);
    const d = dt === undefined ? '' : (r[dt] ?? '');
    if (d !== '') deleted[i] = Math.max(created[i]!, int(d, `${source} row ${i + 1} deletion_time`));
  });
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => created[a]! - created[b]! || a - b);
  const t: PlacementTrace = {
    source,
    count: n,
    arrival: new Float64Array(n),
    departure: new Float64Array(n),
    cpuMilli: new Int32Array(n),
    memoryMib: new Int32Array(n),
    lifetime: new Int8Array(n),
  };
  order.forEach((src, k) => {
    const r = rows[src]!;
    t.arrival[k] = created[src]!;
    t.departure[k] = deleted[src]!;
    t.cpuMilli[k] = int(r[c], `${source} row ${src + 1} cpu_milli`);
    t.memoryMib[k] = int(r[m], `${source} row ${src + 1} memory_mib`);
  });
  return t;
}
