// Reads the Azure V1 flavor trace (flavors, batches, arrival bins) with its duration file into VM records.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../../errors.js';

/** One VM as known at creation, plus its observed lifetime bin. */
export interface AzureVm {
  /** Start of the 300 s arrival bin, seconds since the start of the Azure trace. */
  readonly arrival: number;
  readonly flavor: string;
  readonly vcpus: number;
  readonly memoryGb: number;
  /** VMs in the same tenant batch (this one included). */
  readonly batchSize: number;
  /** Duration bin (v1.interval_map.txt): ended in bin k, or had run k by the censoring time. */
  readonly durationBin: number;
  readonly censored: boolean;
}

/** Duration bins: minimum and maximum seconds mapped to each bin. */
export interface IntervalMap {
  readonly min: readonly number[];
  readonly max: readonly number[];
}

export function parseFlavorMap(text: string): Map<string, { vcpus: number; memoryGb: number }> {
  const out = new Map<string, { vcpus: number; memoryGb: number }>();
  for (const line of text.split('\n')) {
    const m = /^\s*([\d.]+),([\d.]+)\s+(\S+)\s*$/.exec(line);
    if (m) out.set(m[3]!, { vcpus: Number(m[1]), memoryGb: Number(m[2]) });
  }
  return out;
}

export function parseIntervalMap(text: string): IntervalMap {
  const min: number[] = [];
  const max: number[] = [];
  for (const line of text.split('\n')) {
    const [s, b] = line.trim().split(/\s+/);
    if (s === undefined || b === undefined) continue;
    const secs = Number(s);
    const bin = Number(b);
    if (!Number.isInteger(bin) || !Number.isFinite(secs)) continue;
    min[bin] = Math.min(min[bin] ?? Number.POSITIVE_INFINITY, secs);
    max[bin] = Math.max(max[bin] ?? 0, secs);
  }
  return { min, max };
}

/** Splits a trace line into `[t, batches]`, each batch a list of tokens. */
function parseLine(line: string): { t: number; batches: string[][] } | undefined {
  const sp = line.indexOf(' ');
  if (sp < 0) return undefined;
  const t = Number(line.slice(0, sp));
  const batches: string[][] = [];
  let cur: string[] = [];
  for (const tok of line.slice(sp + 1).split(',')) {
    const x = tok.trim();
    if (x === '') continue;
    if (x === '|') {
      batches.push(cur);
      cur = [];
    } else cur.push(x);
  }
  if (cur.length > 0) batches.push(cur);
  return { t, batches };
}

/**
 * Joins a flavor trace with its duration trace (same lines and tokens, one for one) into VMs.
 * Throws when the two files do not line up.
 */
export function parseAzureVms(
  flavorText: string,
  durationText: string,
  flavors: Map<string, { vcpus: number; memoryGb: number }>,
): AzureVm[] {
  const fl = flavorText.split('\n').filter((l) => l.trim() !== '');
  const du = durationText.split('\n').filter((l) => l.trim() !== '');
  if (fl.length !== du.length) {
    throw new ValidationError(
      `flavor and duration traces differ in length (${fl.length} vs ${du.length} lines)`,
    );
  }
  const out: AzureVm[] = [];
  for (let i = 0; i < fl.length; i++) {
    const a = parseLine(fl[i]!);
    const b = parseLine(du[i]!);
    if (!a || !b || a.t !== b.t || a.batches.length !== b.batches.length) {
      throw new ValidationError(`flavor and duration traces disagree at line ${i + 1}`);
    }
    for (let j = 0; j < a.batches.length; j++) {
      const fb = a.batches[j]!;
      const db = b.batches[j]!;
      if (fb.length !== db.length) throw new ValidationError(`batch ${j} of line ${i + 1} differs in size`);
      for (let k = 0; k < fb.length; k++) {
        const size = flavors.get(fb[k]!);
        const m = /^([UC])(\d+)$/.exec(db[k]!);
        if (!size || !m) throw new ValidationError(`bad token ${fb[k]}/${db[k]} at line ${i + 1}`);
        out.push({
          arrival: a.t,
          flavor: fb[k]!,
          vcpus: size.vcpus,
          memoryGb: size.memoryGb,
          batchSize: fb.length,
          durationBin: Number(m[2]),
          censored: m[1] === 'C',
        });
      }
    }
  }
  return out;
}

/** Loads `v1.<split>.txt` + `v1.<split>.c<T>.txt` from the Azure trace directory. */
export function loadAzureSplit(dir: string, split = 'dev'): { vms: AzureVm[]; intervals: IntervalMap } {
  const files = (() => {
    try {
      return readdirSync(dir).sort();
    } catch (err) {
      throw new ValidationError(`cannot read Azure trace directory ${dir}`, { key: dir, cause: err });
    }
  })();
  const dur = files.find((n) => n.startsWith(`v1.${split}.c`) && n.endsWith('.txt'));
  if (!dur) {
    throw new ValidationError(`no duration file v1.${split}.c<T>.txt in ${dir}`, {
      key: dir,
      hint: 'lifetimes are only known for splits with a duration file (dev here)',
    });
  }
  const flavors = parseFlavorMap(readFileSync(join(dir, 'flav_map.txt'), 'utf8'));
  const intervals = parseIntervalMap(readFileSync(join(dir, 'v1.interval_map.txt'), 'utf8'));
  const vms = parseAzureVms(
    readFileSync(join(dir, `v1.${split}.txt`), 'utf8'),
    readFileSync(join(dir, dur), 'utf8'),
    flavors,
  );
  return { vms, intervals };
}
