#!/bin/sh
# Saves the test guest's RAM twice (a few seconds apart, while its workload dirties pages) with QEMU's
# `pmemsave`, giving a real VM memory image and a second version of it for bench/dwcp.
#
#   bench/dwcp/capture-guest-ram.sh OUTDIR [MEM_MIB]
#
# Writes OUTDIR/mem-v1.img and OUTDIR/mem-v2.img (raw guest-physical memory, MEM_MIB each, default 256).
# Needs qemu-system-x86_64, socat and the test guest (scripts/build-test-guest.sh).
set -eu
OUT=${1:?usage: capture-guest-ram.sh OUTDIR [MEM_MIB]}
MEM=${2:-256}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$OUT"
GUEST="$OUT/guest"
[ -f "$GUEST/vmlinuz" ] || sh "$ROOT/scripts/build-test-guest.sh" "$GUEST" >/dev/null
. "$GUEST/guest.env"
MON="$OUT/monitor.sock"
SERIAL="$OUT/serial.log"
rm -f "$MON" "$SERIAL"
# TCG unless NOVACRON_CAPTURE_ACCEL=kvm: /dev/kvm can exist without working (nested hosts).
ACCEL=${NOVACRON_CAPTURE_ACCEL:-tcg}
qemu-system-x86_64 -accel "$ACCEL" -m "$MEM" -smp 1 -nographic -no-reboot \
  -kernel "$GUEST/vmlinuz" -initrd "$GUEST/initrd.img" \
  -append "$NOVACRON_GUEST_CMDLINE novacron.dirty_mib=32 novacron.dirty_rate=8" \
  -serial "file:$SERIAL" -monitor "unix:$MON,server,nowait" -display none &
QPID=$!
trap 'kill $QPID 2>/dev/null || true' EXIT
i=0
until grep -q "$NOVACRON_GUEST_READY_LINE" "$SERIAL" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 600 ] || { echo "guest did not become ready" >&2; exit 1; }
  sleep 1
done
sleep 5
# Keep the monitor connection open while the command runs (HMP drops input of a closed connection).
hmp() { (printf '%s\n' "$1"; sleep "${2:-1}") | socat - "UNIX-CONNECT:$MON" >/dev/null; }
BYTES=$((MEM * 1024 * 1024))
hmp "pmemsave 0 $BYTES \"$OUT/mem-v1.img\"" 5
sleep 3
hmp "pmemsave 0 $BYTES \"$OUT/mem-v2.img\"" 5
hmp "quit"
wait $QPID 2>/dev/null || true
trap - EXIT
ls -l "$OUT"/mem-v*.img
