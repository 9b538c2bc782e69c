#!/bin/sh
# A/B of the ML service's latency path: an older commit against this checkout, alternating, with
# today's bench files in both (so only the service and client code differ).
#   bench/ml/ab.sh [COMMIT] [ROUNDS]     e.g. bench/ml/ab.sh 1534046 2   (the commit before the static codecs)
# Prints the gRPC rows of each run; JSON per run in $OUT (default /tmp/novacron-ml-ab).
set -eu
COMMIT=${1:-1534046}
ROUNDS=${2:-2}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/novacron-ml-ab}
OLD=$OUT/tree-$COMMIT
mkdir -p "$OUT"
cp "$HERE/bench/ml/results/latest.json" "$OUT/latest.json.saved"
if [ ! -d "$OLD" ]; then
  mkdir -p "$OLD"
  git -C "$HERE" archive "$COMMIT" | tar -x -C "$OLD"
  ln -s "$HERE/node_modules" "$OLD/node_modules"
fi
cp "$HERE"/bench/ml/loadgen.ts "$HERE"/bench/ml/workload.ts "$HERE"/bench/ml/latency.ts "$HERE"/bench/ml/run.ts "$OLD/bench/ml/"
for i in $(seq 1 "$ROUNDS"); do
  for t in "$OLD" "$HERE"; do
    name=$( [ "$t" = "$HERE" ] && echo now || echo "$COMMIT" )
    echo "== $name, round $i, $(date +%T), load $(cut -d' ' -f1 /proc/loadavg)"
    # Only the latency part; the old tree may lack newer eval code, which the run then never loads.
    (cd "$t" && ML_BENCH_PARTS=latency node --import tsx bench/ml/run.ts 2>&1 |
      grep -E "gRPC loopback|load average") || echo "(run failed)"
    cp "$t/bench/ml/results/latest.json" "$OUT/$name-$i.json"
  done
done
cp "$OUT/latest.json.saved" "$HERE/bench/ml/results/latest.json"
