// Reads bandwidth traces (Pensieve two-column files, driving-test CSVs) into contiguous series of Mbit/s samples.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ValidationError } from '../../errors.js';

/** One contiguous throughput series: samples in Mbit/s, in time order, never spanning a gap. */
export interface ThroughputSeries {
  /** File name, plus `#<segment>` when a file was split. */
  readonly id: string;
  readonly samples: readonly number[];
}

/** A directory of traces read as one data set. */
export interface TraceDataset {
  readonly name: string;
  readonly series: readonly ThroughputSeries[];
}

/**
 * Parses a Pensieve-style file: one `time_s throughput_Mbps` pair a line, whitespace-separated,
 * no header. The whole file is one series (Norway's irregular steps are predicted as they come).
 */
export function parsePensieveTrace(text: string, id: string): ThroughputSeries {
  const samples: number[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    const v = Number(parts[1]);
    if (parts.length < 2 || !Number.isFinite(v) || !Number.isFinite(Number(parts[0]))) {
      throw new ValidationError(`${id}: not a two-column trace line: ${JSON.stringify(line.slice(0, 60))}`, {
        key: id,
      });
    }
    samples.push(Math.max(0, v));
  }
  return { id, samples };
}

/** Parses `YYYY-MM-DD HH:MM:SS[ TZ]` into whole seconds; the zone is ignored (it is constant per file). */
function parseStamp(s: string): number {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(s.trim());
  if (!m) return Number.NaN;
  return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) / 1000;
}

/**
 * Parses a driving-test CSV (`time,throughput,…` header) and splits it into contiguous segments
 * wherever the step between two rows is not exactly `stepSeconds` (sessions are concatenated,
 * sometimes going backwards in time).
 */
export function parseDrivingCsv(text: string, id: string, stepSeconds = 1): ThroughputSeries[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const header = (lines[0] ?? '').split(',').map((h) => h.trim().toLowerCase());
  const ti = header.indexOf('time');
  const vi = header.indexOf('throughput');
  if (ti < 0 || vi < 0)
    throw new ValidationError(`${id}: CSV header lacks time and throughput columns`, { key: id });
  const out: ThroughputSeries[] = [];
  let cur: number[] = [];
  let prev = Number.NaN;
  const flush = () => {
    if (cur.length > 0) out.push({ id: `${id}#${out.length}`, samples: cur });
    cur = [];
  };
  for (const line of lines.slice(1)) {
    const cols = line.split(',');
    const t = parseStamp(cols[ti] ?? '');
    const cell = (cols[vi] ?? '').trim();
    const v = cell === '' ? Number.NaN : Number(cell);
    if (!Number.isFinite(t) || !Number.isFinite(v)) {
      flush();
      prev = Number.NaN;
      continue;
    }
    if (!(t - prev === stepSeconds)) flush();
    cur.push(Math.max(0, v));
    prev = t;
  }
  flush();
  return out;
}

/** Parses one trace file by its content: a CSV with a header, or a two-column Pensieve file. */
export function parseTraceFile(text: string, id: string): ThroughputSeries[] {
  const first = text.slice(0, text.indexOf('\n') >>> 0).trim();
  if (/^[a-z_]+,/i.test(first)) return parseDrivingCsv(text, id);
  return [parsePensieveTrace(text, id)];
}

/** Reads every regular file of a directory (sorted by name) as one data set named after the directory. */
export function loadTraceDir(dir: string): TraceDataset {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch (err) {
    throw new ValidationError(`cannot read trace directory ${dir}`, { key: dir, cause: err });
  }
  const series: ThroughputSeries[] = [];
  for (const name of names) {
    // Hidden files and READMEs are not traces.
    if (name.startsWith('.') || name.toLowerCase().startsWith('readme')) continue;
    const p = join(dir, name);
    if (!statSync(p).isFile()) continue;
    series.push(...parseTraceFile(readFileSync(p, 'utf8'), name));
  }
  if (series.length === 0) throw new ValidationError(`no trace files in ${dir}`, { key: dir });
  return { name: basename(dir.replace(/\/+$/, '')), series };
}
