// Turns the bandwidth_samples table (what real transfers measured) into series the PBA model trains on.
import type { BandwidthRepository, BandwidthSampleRecord } from '../../store/index.js';
import type { TraceDataset, ThroughputSeries } from './traces.js';

/** Name of the data set (and model profile) built from the node's own measurements. */
export const DB_PROFILE = 'novacron-links';

/**
 * Groups samples by link (source → target), orders them by time and splits a link's samples into
 * contiguous series wherever the gap exceeds `maxGapFactor` times the link's median step. Pure.
 */
export function seriesFromSamples(
  records: readonly Pick<
    BandwidthSampleRecord,
    'at' | 'sourceNode' | 'targetNode' | 'bytesPerSecond' | 'id'
  >[],
  maxGapFactor = 3,
): ThroughputSeries[] {
  const byLink = new Map<string, { t: number; v: number; id: number }[]>();
  for (const r of records) {
    const t = Date.parse(r.at);
    if (!Number.isFinite(t) || !Number.isFinite(r.bytesPerSecond) || r.bytesPerSecond < 0) continue;
    const key = `${r.sourceNode}->${r.targetNode}`;
    let list = byLink.get(key);
    if (!list) byLink.set(key, (list = []));
    list.push({ t, v: r.bytesPerSecond, id: r.id });
  }
  const out: ThroughputSeries[] = [];
  for (const [key, list] of [...byLink].sort(([a], [b]) => a.localeCompare(b))) {
    list.sort((a, b) => a.t - b.t || a.id - b.id);
    const steps = list
      .slice(1)
      .map((x, i) => x.t - list[i]!.t)
      .filter((d) => d > 0)
      .sort((a, b) => a - b);
    const median = steps[Math.floor(steps.length / 2)] ?? 0;
    let cur: number[] = [];
    let seg = 0;
    for (let i = 0; i < list.length; i++) {
      if (i > 0 && median > 0 && list[i]!.t - list[i - 1]!.t > maxGapFactor * median) {
        out.push({ id: `${key}#${seg++}`, samples: cur });
        cur = [];
      }
      cur.push(list[i]!.v);
    }
    if (cur.length > 0) out.push({ id: `${key}#${seg}`, samples: cur });
  }
  return out;
}

/** Reads every sample of the table (in pages of 1,000) and returns them as one data set. */
export async function loadDbDataset(repo: BandwidthRepository, since?: string): Promise<TraceDataset> {
  const all: BandwidthSampleRecord[] = [];
  const seen = new Set<number>();
  let from = since;
  for (;;) {
    const page = await repo.list(from === undefined ? {} : { since: from }, { limit: 1000 });
    let fresh = 0;
    for (const r of page) {
      if (seen.has(r.id)) continue;
      seen.add(r.id);
      all.push(r);
      fresh++;
    }
    if (page.length < 1000 || fresh === 0) break;
    from = page[page.length - 1]!.at;
  }
  return { name: DB_PROFILE, series: seriesFromSamples(all) };
}
