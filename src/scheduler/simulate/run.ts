// Runs one trace through a list of strategies and gathers the results: the shared core of
// `novacron scheduler simulate` and bench/placement. Reads files (through load.ts), no printing.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ValidationError } from '../../errors.js';
import { BASELINES, resolveStrategy } from '../registry.js';
import type { SimulationResult } from './engine.js';
import { simulate } from './engine.js';
import type { LoadedTrace } from './load.js';
import { loadNodes, loadTrace } from './load.js';
import type { HostPool } from './trace.js';

export interface SimulateOptions {
  readonly trace: string;
  readonly flavors?: string;
  readonly durations?: string;
  readonly nodes?: string;
  readonly hostCpus?: number;
  readonly hostMemoryGib?: number;
  readonly hosts?: number;
  readonly strategy: string;
  readonly seed?: number;
  /** Keep every VM until the end (static packing: how much fits, as in the FGD paper's replay). */
  readonly ignoreDepartures?: boolean;
  /** Extra strategies to run besides the chosen one and the baselines. */
  readonly also?: readonly string[];
}

export interface SimulationReport {
  readonly trace: string;
  readonly format: LoadedTrace['format'];
  readonly files: Readonly<Record<string, string>>;
  readonly vms: number;
  readonly pool: string;
  readonly default: string;
  readonly strategies: readonly (SimulationResult & { readonly seconds: number })[];
}

/** Azure's suggested host shape (shared/data/README.md) when none is given. */
export const AZURE_DEFAULT_HOST = { cpus: 48, memoryGib: 384 } as const;

/** Resolves the host pool from flags; Alibaba traces default to the node list beside them. */
export function resolvePool(opts: SimulateOptions, loaded: LoadedTrace): { pool: HostPool; label: string } {
  if (opts.nodes !== undefined && opts.hostCpus !== undefined)
    throw new ValidationError('give either --nodes or --host-cpus/--host-memory-gib, not both');
  if ((opts.hostCpus === undefined) !== (opts.hostMemoryGib === undefined))
    throw new ValidationError('--host-cpus and --host-memory-gib go together');
  let nodesPath = opts.nodes;
  if (nodesPath === undefined && opts.hostCpus === undefined && loaded.format === 'alibaba-openb') {
    const beside = join(dirname(opts.trace), 'openb_node_list_all_node.csv');
    if (existsSync(beside)) nodesPath = beside;
  }
  if (nodesPath !== undefined) {
    const pool = loadNodes(nodesPath);
    if (pool.kind !== 'list') throw new ValidationError('node list expected');
    const n = opts.hosts === undefined ? pool.cpuMilli.length : Math.min(opts.hosts, pool.cpuMilli.length);
    return {
      pool: { kind: 'list', cpuMilli: pool.cpuMilli.slice(0, n), memoryMib: pool.memoryMib.slice(0, n) },
      label: `${n} hosts from ${nodesPath}`,
    };
  }
  const cpus = opts.hostCpus ?? AZURE_DEFAULT_HOST.cpus;
  const gib = opts.hostMemoryGib ?? AZURE_DEFAULT_HOST.memoryGib;
  if (!(cpus > 0) || !(gib > 0)) throw new ValidationError('host capacity must be positive');
  if (opts.hosts !== undefined && !(Number.isInteger(opts.hosts) && opts.hosts > 0))
    throw new ValidationError('--hosts must be a positive integer');
  return {
    pool: {
      kind: 'uniform',
      cpuMilli: Math.round(cpus * 1000),
      memoryMib: Math.round(gib * 1024),
      ...(opts.hosts !== undefined ? { limit: opts.hosts } : {}),
    },
    label: `${opts.hosts ?? 'unbounded'} × ${cpus} vCPU / ${gib} GiB`,
  };
}

/** Loads the trace once and replays it with the chosen strategy, the baselines and `also`. */
export function runSimulation(opts: SimulateOptions): SimulationReport {
  const loaded = loadTrace(opts.trace, {
    ...(opts.flavors !== undefined ? { flavors: opts.flavors } : {}),
    ...(opts.durations !== undefined ? { durations: opts.durations } : {}),
  });
  const { pool, label } = resolvePool(opts, loaded);
  const trace = opts.ignoreDepartures
    ? { ...loaded.trace, departure: new Float64Array(loaded.trace.count).fill(Infinity) }
    : loaded.trace;
  const names = [...new Set([opts.strategy, ...(opts.also ?? []), ...BASELINES])];
  const resolved = names.map((name) => resolveStrategy({ strategy: name, seed: opts.seed ?? 0 }));
  const strategies = resolved.map((s) => {
    const t0 = performance.now();
    const r = simulate(trace, pool, s);
    return { ...r, seconds: (performance.now() - t0) / 1000 };
  });
  return {
    trace: opts.trace,
    format: loaded.format,
    files: loaded.files,
    vms: loaded.trace.count,
    pool: label,
    default: opts.strategy,
    strategies,
  };
}
