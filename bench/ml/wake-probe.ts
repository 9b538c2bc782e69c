// Same-run machine baseline for the latency bench: an otherwise idle process that asks to wake
// every millisecond and records how late each wake-up is. Its lateness is what the machine (other
// jobs, the kernel) does to any process, whatever the ML service does.
//   node --import tsx bench/ml/wake-probe.ts SECONDS   → one JSON line on stdout
export interface WakeProbeResult {
  readonly wakeups: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Wake-ups more than 5 ms late (the PredictBandwidth bar). */
  readonly over5Ms: number;
}

export async function probe(seconds: number): Promise<WakeProbeResult> {
  const late: number[] = [];
  const end = performance.now() + seconds * 1000;
  await new Promise<void>((resolve) => {
    let due = performance.now() + 1;
    const tick = () => {
      const now = performance.now();
      late.push(now - due);
      if (now >= end) return resolve();
      due = now + 1;
      setTimeout(tick, 1);
    };
    setTimeout(tick, 1);
  });
  late.sort((a, b) => a - b);
  return {
    wakeups: late.length,
    p99Ms: late[Math.floor(0.99 * late.length)] ?? 0,
    maxMs: late[late.length - 1] ?? 0,
    over5Ms: late.filter((l) => l > 5).length,
  };
}

const arg = process.argv[2];
if (arg && process.argv[1]?.endsWith('wake-probe.ts')) {
  void probe(Number(arg)).then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
}
