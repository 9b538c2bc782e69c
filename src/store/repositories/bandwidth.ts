// Measured link bandwidth between nodes over time: the history the bandwidth predictor learns from.
import type { Kysely, Selectable } from 'kysely';
import { clampLimit, guard, type RepoContext } from '../codec.js';
import type {
  BandwidthFilters,
  BandwidthSample,
  BandwidthSampleRecord,
  BandwidthSamplesTable,
  Database,
} from '../types.js';

function toRecord(r: Selectable<BandwidthSamplesTable>): BandwidthSampleRecord {
  return {
    id: r.id,
    at: r.at,
    sourceNode: r.source_node,
    targetNode: r.target_node,
    bytesPerSecond: r.bytes_per_second,
    rttMs: r.rtt_ms,
    lossRatio: r.loss_ratio,
    streams: r.streams,
  };
}

export class BandwidthRepository {
  readonly #db: Kysely<Database>;
  readonly #ctx: RepoContext;

  constructor(db: Kysely<Database>, ctx: RepoContext) {
    this.#db = db;
    this.#ctx = ctx;
  }

  /** Appends samples in one statement; returns how many were written. */
  async append(samples: readonly BandwidthSample[]): Promise<number> {
    if (samples.length === 0) return 0;
    const rows = samples.map((s) => ({
      at: s.at,
      source_node: s.sourceNode,
      target_node: s.targetNode,
      bytes_per_second: s.bytesPerSecond,
      rtt_ms: s.rttMs ?? null,
      loss_ratio: s.lossRatio ?? null,
      streams: s.streams ?? null,
    }));
    // SQLite caps bound parameters per statement; 7 columns x 100 rows stays well under it.
    for (let i = 0; i < rows.length; i += 100) {
      const chunk = rows.slice(i, i + 100);
      await guard(this.#ctx, () => this.#db.insertInto('bandwidth_samples').values(chunk).execute());
    }
    return rows.length;
  }

  /** Samples oldest first (by time, then insertion), at most `limit` (default 100, max 1000);
   *  `newest: true` returns the most recent `limit` samples (still oldest first). */
  async list(
    filters: BandwidthFilters = {},
    options: { limit?: number; newest?: boolean } = {},
  ): Promise<readonly BandwidthSampleRecord[]> {
    const limit = clampLimit(options.limit);
    let q = this.#db.selectFrom('bandwidth_samples').selectAll();
    if (filters.sourceNode !== undefined) q = q.where('source_node', '=', filters.sourceNode);
    if (filters.targetNode !== undefined) q = q.where('target_node', '=', filters.targetNode);
    if (filters.since !== undefined) q = q.where('at', '>=', filters.since);
    const dir = options.newest === true ? 'desc' : 'asc';
    const rows = await guard(this.#ctx, () => q.orderBy('at', dir).orderBy('id', dir).limit(limit).execute());
    const records = rows.map(toRecord);
    return options.newest === true ? records.reverse() : records;
  }

  /** Deletes samples older than `before`; returns how many. */
  async prune(before: string): Promise<number> {
    const r = await guard(this.#ctx, () =>
      this.#db.deleteFrom('bandwidth_samples').where('at', '<', before).executeTakeFirst(),
    );
    return Number(r.numDeletedRows);
  }
}
