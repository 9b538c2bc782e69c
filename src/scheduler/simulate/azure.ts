// Parser for the Azure V1 flavor traces (Bergsma et al., SOSP 2021 preprocessing): flavor lines,
// the flavor map, the interval map and the optional censored duration file. Pure: text in, trace out.
import { ValidationError } from '../../errors.js';
import { lifetimeFromBatchSize } from '../scorers/lifetime.js';
import type { PlacementTrace } from './trace.js';
import { LIFETIME_CODE } from './trace.js';

/** A flavor letter's size. */
export interface Flavor {
  readonly cpuMilli: number;
  readonly memoryMib: number;
}

/** Parses `flav_map.txt`: lines `vCPU,memory_GB letter`. */
export function parseFlavorMap(text: string): Map<string, Flavor> {
  const out = new Map<string, Flavor>();
  lines(text).forEach((line, i) => {
    const m = /^(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)\s+(\S+)$/.exec(line);
    if (!m) throw new ValidationError(`flavor map line ${i + 1}: expected "vCPU,memory_GB letter": ${line}`);
    out.set(m[3]!, { cpuMilli: Math.round(Number(m[1]) * 1000), memoryMib: Math.round(Number(m[2]) * 1024) });
  });
  return out;
}

/** Parses `v1.interval_map.txt` (lines `seconds bin`) into the lowest duration of each bin. */
export function parseIntervalMap(text: string): Map<number, number> {
  const lower = new Map<number, number>();
  lines(text).forEach((line, i) => {
    const m = /^(\d+)\s+(\d+)$/.exec(line);
    if (!m) throw new ValidationError(`interval map line ${i + 1}: expected "seconds bin": ${line}`);
    const secs = Number(m[1]);
    const bin = Number(m[2]);
    const prev = lower.get(bin);
    if (prev === undefined || secs < prev) lower.set(bin, secs);
  });
  return lower;
}

/** Duration data for a flavor trace: the `v1.<split>.c<T>.txt` text, its censoring time T and the interval map. */
export interface AzureDurations {
  readonly text: string;
  readonly censorTime: number;
  readonly lowerBoundByBin: ReadonlyMap<number, number>;
}

/**
 * Parses a flavor trace (`<t> <tokens>` per line; letters are VMs, `|` closes a batch). With
 * durations, a `U<k>` VM lives for the lower bound of bin k; a `C<k>` VM (still running at T)
 * stays until the end, as do all VMs when no durations are given. Each VM's lifetime class is
 * what a caller placing its batch would assume from the batch size (see scorers/lifetime.ts).
 */
export function parseAzureTrace(
  source: string,
  flavorText: string,
  flavors: ReadonlyMap<string, Flavor>,
  durations?: AzureDurations,
): PlacementTrace {
  const fl = lines(flavorText);
  const dl = durations ? lines(durations.text) : undefined;
  if (dl && dl.length !== fl.length)
    throw new ValidationError(`duration file has ${dl.length} lines, flavor trace has ${fl.length}`);
  let n = 0;
  for (const line of fl) for (const tok of tokensOf(line)) if (tok !== '|') n++;
  const arrival = new Float64Array(n);
  const departure = new Float64Array(n).fill(Infinity);
  const cpuMilli = new Int32Array(n);
  const memoryMib = new Int32Array(n);
  const lifetime = new Int8Array(n);
  let k = 0;
  // VMs of the open batch get their lifetime class when the batch closes (`|` or end of line).
  let batchStart = 0;
  const closeBatch = (): void => {
    const cls = LIFETIME_CODE[lifetimeFromBatchSize(k - batchStart)];
    for (let v = batchStart; v < k; v++) lifetime[v] = cls;
    batchStart = k;
  };
  let lastT = -Infinity;
  for (let li = 0; li < fl.length; li++) {
    const line = fl[li]!;
    const t = Number(line.slice(0, line.indexOf(' ')));
    if (!Number.isFinite(t) || t < lastT)
      throw new ValidationError(`${source} line ${li + 1}: bad or decreasing time`);
    lastT = t;
    const ftoks = tokensOf(line);
    const dtoks = dl ? tokensOf(dl[li]!) : undefined;
    if (dtoks && dtoks.length !== ftoks.length)
      throw new ValidationError(
        `${source} line ${li + 1}: ${ftoks.length} flavor tokens but ${dtoks.length} durations`,
      );
    for (let j = 0; j < ftoks.length; j++) {
      const tok = ftoks[j]!;
      if (tok === '|') {
        closeBatch();
        continue;
      }
      const f = flavors.get(tok);
      if (!f) throw new ValidationError(`${source} line ${li + 1}: unknown flavor ${tok}`);
      arrival[k] = t;
      cpuMilli[k] = f.cpuMilli;
      memoryMib[k] = f.memoryMib;
      const d = dtoks?.[j];
      if (d !== undefined && durations) {
        if (d[0] === 'U') {
          const lo = durations.lowerBoundByBin.get(Number(d.slice(1)));
          if (lo === undefined)
            throw new ValidationError(`${source} line ${li + 1}: unknown duration bin ${d}`);
          departure[k] = t + lo;
        } else if (d[0] !== 'C')
          throw new ValidationError(`${source} line ${li + 1}: bad duration token ${d}`);
      }
      k++;
    }
    closeBatch();
  }
  return { source, count: n, arrival, departure, cpuMilli, memoryMib, lifetime };
}

function tokensOf(line: string): string[] {
  const sp = line.indexOf(' ');
  if (sp < 0) return [];
  return line
    .slice(sp + 1)
    .split(',')
    .filter((s) => s.length > 0);
}

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim().length > 0);
}
