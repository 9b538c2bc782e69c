// A placement trace in columnar form (typed arrays, so that a million VMs stay cheap), and the
// host pool it is replayed on. Units are integers: CPU in milli-cores, memory in MiB.

/** VMs in arrival order (ties in the order the trace lists them). */
export interface PlacementTrace {
  /** Where the trace came from, for reports. */
  readonly source: string;
  readonly count: number;
  /** Arrival time in seconds. */
  readonly arrival: Float64Array;
  /** Departure time in seconds; Infinity when the VM runs past the end (censored or no duration data). */
  readonly departure: Float64Array;
  readonly cpuMilli: Int32Array;
  readonly memoryMib: Int32Array;
  /** Lifetime class a caller would pass (0 unknown, 1 short, 2 long); Azure derives it from batch size. */
  readonly lifetime: Int8Array;
}

/** Codes of `PlacementTrace.lifetime`. */
export const LIFETIME_CODE = { unknown: 0, short: 1, long: 2 } as const;

/** The hosts a trace is replayed on. */
export type HostPool =
  /** Identical hosts, as many as needed (`limit` undefined) or at most `limit`. */
  | {
      readonly kind: 'uniform';
      readonly cpuMilli: number;
      readonly memoryMib: number;
      readonly limit?: number;
    }
  /** A fixed, possibly heterogeneous list of hosts (e.g. the Alibaba node list). */
  | { readonly kind: 'list'; readonly cpuMilli: Int32Array; readonly memoryMib: Int32Array };

/** Builds a trace from plain rows (for tests and small inputs); rows must be in arrival order. */
export function traceFromRows(
  source: string,
  rows: readonly {
    arrival: number;
    departure?: number;
    cpuMilli: number;
    memoryMib: number;
    lifetime?: 'short' | 'long';
  }[],
): PlacementTrace {
  const n = rows.length;
  const t: PlacementTrace = {
    source,
    count: n,
    arrival: new Float64Array(n),
    departure: new Float64Array(n),
    cpuMilli: new Int32Array(n),
    memoryMib: new Int32Array(n),
    lifetime: new Int8Array(n),
  };
  rows.forEach((r, i) => {
    if (i > 0 && r.arrival < rows[i - 1]!.arrival) throw new RangeError(`row ${i}: arrivals out of order`);
    t.arrival[i] = r.arrival;
    t.departure[i] = r.departure ?? Infinity;
    t.cpuMilli[i] = r.cpuMilli;
    t.memoryMib[i] = r.memoryMib;
    t.lifetime[i] = r.lifetime === undefined ? 0 : LIFETIME_CODE[r.lifetime];
  });
  return t;
}
