// The simulator's I/O edge: reads trace files from disk and recognises their format. Given an
// Azure flavor trace it finds flav_map.txt, v1.interval_map.txt and the matching duration file
// v1.<split>.c<T>.txt beside it; explicit paths override.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { NotFoundError, ValidationError } from '../../errors.js';
import { parseOpenbNodes, parseOpenbPods } from './alibaba.js';
import { parseAzureTrace, parseFlavorMap, parseIntervalMap } from './azure.js';
import type { HostPool, PlacementTrace } from './trace.js';

export interface LoadTraceOptions {
  /** Flavor map for Azure traces; default: flav_map.txt beside the trace. */
  readonly flavors?: string;
  /** Duration file for Azure traces; default: v1.<split>.c<T>.txt beside the trace, if present. */
  readonly durations?: string;
  /** Interval map; default: v1.interval_map.txt beside the duration file. */
  readonly intervals?: string;
}

/** What was loaded, with the files actually used (for the report). */
export interface LoadedTrace {
  readonly trace: PlacementTrace;
  readonly format: 'azure-v1' | 'alibaba-openb';
  readonly files: Readonly<Record<string, string>>;
}

function read(path: string, what: string): string {
  if (!existsSync(path)) throw new NotFoundError(what, path);
  return readFileSync(path, 'utf8');
}

/** Reads a trace file, detecting the Azure flavor format or the Alibaba pod CSV by content. */
export function loadTrace(path: string, opts: LoadTraceOptions = {}): LoadedTrace {
  const text = read(path, 'trace file');
  const firstLine = text.slice(0, text.indexOf('\n') >>> 0);
  if (firstLine.startsWith('name,') && firstLine.includes('cpu_milli'))
    return { trace: parseOpenbPods(basename(path), text), format: 'alibaba-openb', files: { trace: path } };
  if (!/^\d+ /.test(firstLine))
    throw new ValidationError(`unrecognised trace format: ${path}`, {
      hint: 'expected an Azure V1 flavor trace (v1.<split>.txt) or an Alibaba openb pod list (openb_pod_list_*.csv)',
    });
  const dir = dirname(path);
  const flavPath = opts.flavors ?? join(dir, 'flav_map.txt');
  const flavors = parseFlavorMap(read(flavPath, 'flavor map (pass --flavors)'));
  const files: Record<string, string> = { trace: path, flavors: flavPath };
  const durPath = opts.durations ?? findDurationFile(path);
  let durations;
  if (durPath !== undefined) {
    const m = /\.c(\d+)\.txt$/.exec(durPath);
    if (!m)
      throw new ValidationError(`duration file name must end in .c<T>.txt (T = censoring time): ${durPath}`);
    const intPath = opts.intervals ?? join(dirname(durPath), 'v1.interval_map.txt');
    durations = {
      text: read(durPath, 'duration file'),
      censorTime: Number(m[1]),
      lowerBoundByBin: parseIntervalMap(read(intPath, 'interval map (v1.interval_map.txt)')),
    };
    files.durations = durPath;
    files.intervals = intPath;
  }
  return { trace: parseAzureTrace(basename(path), text, flavors, durations), format: 'azure-v1', files };
}

/** The `v1.<split>.c<T>.txt` beside `v1.<split>.txt`, if exactly one exists. */
export function findDurationFile(tracePath: string): string | undefined {
  const m = /^(.*)\.txt$/.exec(basename(tracePath));
  if (!m) return undefined;
  const stem = m[1]!;
  const dir = dirname(tracePath);
  const re = new RegExp(`^${stem.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.c\\d+\\.txt$`);
  const found = readdirSync(dir)
    .filter((f) => re.test(f))
    .sort();
  return found.length > 0 ? join(dir, found[found.length - 1]!) : undefined;
}

/** Reads an Alibaba openb node list as a fixed host pool. */
export function loadNodes(path: string): HostPool {
  return parseOpenbNodes(read(path, 'node list'));
}
