#!/bin/sh
# Builds the NovaCron test guest (Debian kernel + busybox-static initramfs) into OUTDIR, cached outside git.
#
#   scripts/build-test-guest.sh OUTDIR
#
# Writes OUTDIR/vmlinuz, OUTDIR/initrd.img and OUTDIR/guest.env (kernel version, cache key, default cmdline).
# Everything comes from Debian packages: the kernel from `apt-get download linux-image-<ver>-cloud-amd64`
# unpacked with `dpkg -x` (the cloud flavour boots fastest under TCG and has the 8250 serial console built in),
# busybox from busybox-static, the archive made with cpio + gzip.
#
# The guest's /init prints NOVACRON-GUEST-READY on ttyS0 once up, then prints
# "NOVACRON-HEARTBEAT <n>" every second and keeps rewriting a tmpfs buffer with random bytes so that live
# migration has dirty pages to chase. Tunables on the kernel command line:
#   novacron.dirty_mib=N    size of the buffer kept dirty (MiB, default 16; 0 disables)
#   novacron.dirty_rate=R   MiB rewritten per second (default 8; 0 = as fast as the vCPU can)
# An ACPI power button press (QMP system_powerdown) makes the guest sync and power off.
#
# Cache: ${NOVACRON_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/novacron/guest}/<key>, where the key hashes this
# script, the kernel package version and the busybox binary; a changed script rebuilds, an unchanged one copies.
# Needs: apt-get (with package lists), dpkg, busybox-static, cpio, gzip, sha256sum.
set -eu

OUTDIR=${1:?usage: build-test-guest.sh OUTDIR}
BUSYBOX=${NOVACRON_GUEST_BUSYBOX:-/bin/busybox}
META_PKG=${NOVACRON_GUEST_KERNEL_META:-linux-image-cloud-amd64}
CACHE_ROOT=${NOVACRON_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/novacron/guest}

die() { echo "build-test-guest: $*" >&2; exit 1; }
for tool in apt-get apt-cache dpkg cpio gzip sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "missing $tool (Debian packages: apt dpkg cpio gzip coreutils)"
done
[ -x "$BUSYBOX" ] || die "missing $BUSYBOX (apt-get install -y busybox-static)"
# A dynamically linked busybox would need its libraries in the initramfs.
if command -v file >/dev/null 2>&1 && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
  die "$BUSYBOX is not statically linked (apt-get install -y busybox-static)"
fi

# The concrete kernel package behind the meta package (linux-image-6.1.0-NN-cloud-amd64).
KPKG=${NOVACRON_GUEST_KERNEL_PKG:-$(apt-cache depends "$META_PKG" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')}
[ -n "$KPKG" ] || die "cannot resolve $META_PKG to a kernel package (run apt-get update)"
KVER_PKG=$(apt-cache policy "$KPKG" 2>/dev/null | awk '/Candidate:/{print $2; exit}')

SELF=$(readlink -f "$0")
KEY=$( { cat "$SELF"; echo "$KPKG $KVER_PKG"; sha256sum "$BUSYBOX"; } | sha256sum | cut -c1-16)
CACHE="$CACHE_ROOT/$KEY"

mkdir -p "$CACHE_ROOT"
# Concurrent test processes may ask at once: one builds, the others wait and reuse (flock: util-linux).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
fi
if [ ! -f "$CACHE/.complete" ]; then
  echo "build-test-guest: building $KEY ($KPKG $KVER_PKG) in $CACHE" >&2
  WORK=$(mktemp -d "$CACHE_ROOT/.build-XXXXXX")
  trap 'rm -rf "$WORK"' EXIT INT TERM
  chmod 755 "$WORK"
  (cd "$WORK" && apt-get download "$KPKG" >/dev/null 2>"$WORK/apt.err") ||
    { cat "$WORK/apt.err" >&2; die "apt-get download $KPKG failed"; }
  dpkg -x "$WORK"/"$KPKG"_*.deb "$WORK/k"
  KREL=${KPKG#linux-image-}
  [ -f "$WORK/k/boot/vmlinuz-$KREL" ] || die "no /boot/vmlinuz-$KREL in $KPKG"
  MODDIR="$WORK/k/lib/modules/$KREL/kernel"

  R="$WORK/root"
  mkdir -p "$R/bin" "$R/sbin" "$R/proc" "$R/sys" "$R/dev" "$R/tmp" "$R/run" "$R/dirty" "$R/lib/modules"
  cp "$BUSYBOX" "$R/bin/busybox"
  ln -s busybox "$R/bin/sh"
  # Modules the guest needs that the cloud kernel builds as modules, in dependency order:
  # virtio + virtio_blk (so disks show up as /dev/vd*), button + evdev (ACPI power button -> clean poweroff).
  MODS="virtio/virtio_ring virtio/virtio virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci
block/virtio_blk acpi/button input/evdev"
  : >"$R/lib/modules/order"
  for m in $MODS; do
    src="$MODDIR/drivers/$m.ko"
    [ -f "$src" ] || src="$src.xz"
    [ -f "$src" ] || die "kernel module drivers/$m.ko missing from $KPKG"
    case "$src" in *.xz) xz -dc "$src" >"$R/lib/modules/${m##*/}.ko" ;; *) cp "$src" "$R/lib/modules/" ;; esac
    echo "${m##*/}" >>"$R/lib/modules/order"
  done

  cat >"$R/init" <<'INIT'
#!/bin/sh
# NovaCron test guest init: mount, announce readiness on the serial console, heartbeat, dirty memory.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
for m in $(cat /lib/modules/order); do insmod "/lib/modules/$m.ko" 2>/dev/null || true; done

dirty_mib=16
dirty_rate=8
for w in $(cat /proc/cmdline); do
  case "$w" in
    novacron.dirty_mib=*) dirty_mib=${w#*=} ;;
    novacron.dirty_rate=*) dirty_rate=${w#*=} ;;
  esac
done

# ACPI power button (QMP system_powerdown): any event on a "Power Button" input device powers off.
for ev in /sys/class/input/event*; do
  [ -e "$ev/device/name" ] || continue
  case "$(cat "$ev/device/name")" in
    *"Power Button"*)
      (dd if="/dev/input/${ev##*/}" of=/dev/null bs=24 count=1 2>/dev/null
       echo "NOVACRON-GUEST-POWEROFF"; sync; poweroff -f) &
      ;;
  esac
done

echo "NOVACRON-GUEST-READY"
echo "novacron-guest: kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)s mem $(awk '/MemTotal/{print $2}' /proc/meminfo)kB dirty_mib=$dirty_mib dirty_rate=$dirty_rate disks=$(ls /sys/block | tr '\n' ' ')"

if [ "$dirty_mib" -gt 0 ]; then
  mount -t tmpfs -o size=$((dirty_mib + 1))m tmpfs /dirty
  (
    off=0
    while :; do
      chunk=$dirty_rate
      [ "$chunk" -gt 0 ] || chunk=$dirty_mib
      [ "$chunk" -le $((dirty_mib - off)) ] || chunk=$((dirty_mib - off))
      dd if=/dev/urandom of=/dirty/buf bs=1M count="$chunk" seek="$off" conv=notrunc 2>/dev/null
      off=$(((off + chunk) % dirty_mib))
      [ "$dirty_rate" -eq 0 ] || sleep 1
    done
  ) &
fi

n=0
while :; do
  n=$((n + 1))
  echo "NOVACRON-HEARTBEAT $n"
  sleep 1
done
INIT
  chmod 755 "$R/init"
  (cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9n) >"$WORK/initrd.img"
  cp "$WORK/k/boot/vmlinuz-$KREL" "$WORK/vmlinuz"
  {
    echo "NOVACRON_GUEST_KEY=$KEY"
    echo "NOVACRON_GUEST_KERNEL_PKG=$KPKG"
    echo "NOVACRON_GUEST_KERNEL_VERSION=$KVER_PKG"
    echo "NOVACRON_GUEST_CMDLINE='console=ttyS0 quiet panic=-1 cryptomgr.notests'"
    echo "NOVACRON_GUEST_READY_LINE=NOVACRON-GUEST-READY"
  } >"$WORK/guest.env"
  rm -rf "$CACHE"
  mkdir -p "$CACHE"
  mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/guest.env" "$CACHE/"
  touch "$CACHE/.complete"
  # Older builds (a changed script or kernel) are dead weight.
  for old in "$CACHE_ROOT"/*; do
    [ "$old" = "$CACHE" ] || [ ! -f "$old/.complete" ] || rm -rf "$old"
  done
fi

mkdir -p "$OUTDIR"
for f in vmlinuz initrd.img guest.env; do
  # Copy through a temporary name so a concurrent reader never sees a half-written file.
  cp "$CACHE/$f" "$OUTDIR/.$f.tmp" && mv -f "$OUTDIR/.$f.tmp" "$OUTDIR/$f"
done
echo "$OUTDIR"
