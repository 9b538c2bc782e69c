// The load generator of bench/vm-api: a closed loop of N workers, each with its own keep-alive
// HTTP/1.1 connection (an undici Pool of N connections, no pipelining), each sending its next request
// as soon as the previous answer is read, so exactly N requests are in flight the whole time.
// undici's Pool.request is several times cheaper per request than fetch (no WHATWG streams), so on a
// shared 2-core machine the client takes less of the CPU the server needs. Connections are opened
// before the measured window (`warm`), so connection setup is not timed.
import { Pool } from 'undici';

export interface LoadRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

export interface LoadResult {
  readonly requests: number;
  readonly errors: number;
  /** Status codes of failed requests (0: transport error) and how many of each. */
  readonly errorStatuses: Record<string, number>;
  readonly wallMs: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Mean latency; Little's law: mean ≈ concurrency / throughput in a closed loop. */
  readonly meanMs: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

export function summarise(
  lat: readonly number[],
  errorStatuses: Record<string, number>,
  wallMs: number,
): LoadResult {
  const s = [...lat].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  const errors = Object.values(errorStatuses).reduce((a, b) => a + b, 0);
  return {
    requests: lat.length,
    errors,
    errorStatuses,
    wallMs: r(wallMs),
    perSecond: r((lat.length - errors) / (wallMs / 1000)),
    p50Ms: r(percentile(s, 50)),
    p90Ms: r(percentile(s, 90)),
    p99Ms: r(percentile(s, 99)),
    maxMs: r(s[s.length - 1] ?? 0),
    meanMs: r(s.reduce((a, b) => a + b, 0) / Math.max(1, s.length)),
  };
}

export class LoadGenerator {
  readonly #pool: Pool;
  readonly #concurrency: number;

  constructor(origin: string, concurrency: number) {
    this.#concurrency = concurrency;
    this.#pool = new Pool(origin, {
      connections: concurrency,
      pipelining: 1,
      keepAliveTimeout: 120_000,
      keepAliveMaxTimeout: 120_000,
      headersTimeout: 120_000,
      bodyTimeout: 120_000,
    });
  }

  async #one(req: LoadRequest): Promise<number> {
    const res = await this.#pool.request({
      method: req.method,
      path: req.path,
      ...(req.headers === undefined ? {} : { headers: req.headers }),
      ...(req.body === undefined ? {} : { body: req.body }),
    });
    await res.body.dump();
    return res.statusCode;
  }

  /** Opens every connection (one request each, all at once) outside any measurement. */
  async warm(req: (i: number) => LoadRequest): Promise<void> {
    await Promise.all(Array.from({ length: this.#concurrency }, (_, i) => this.#one(req(i)).catch(() => 0)));
  }

  /**
   * Closed loop: `total` requests, `concurrency` in flight at any time. `ok(status)` says which
   * statuses count as success. Latency of each request from its dispatch to its last body byte.
   */
  async run(
    total: number,
    req: (i: number) => LoadRequest,
    ok: (status: number) => boolean,
  ): Promise<LoadResult> {
    const lat: number[] = [];
    const bad: Record<string, number> = {};
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        const status = await this.#one(req(i)).catch(() => 0);
        lat.push(performance.now() - t);
        if (!ok(status)) bad[status] = (bad[status] ?? 0) + 1;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, total) }, worker));
    return summarise(lat, bad, performance.now() - t0);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }
}
