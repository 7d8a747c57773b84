#!/usr/bin/env bash
# linux-single-step-check.sh GUEST_DIR [RINGSIDE]
#
# Issue 21's Linux check: a user program single-steps itself across two
# system calls (`int $0x80`) and a `rep movsb` in the project's Linux guest
# (cpu/examples/linux_stepper.rs, which prints
# "stepper: traps=11 at_rep=3" on a real CPU), then the kernel log is
# searched for the `exc_debug` warning a #DB inside the INT 0x80 handler
# causes. Prints the program's line and the count of warnings; exits 0 when
# the line is the real CPU's and there is no warning.
#
# How: as make-shell-guest.sh does, a second cpio archive (a new /init and
# the program) is appended to the guest's initrd.gz in a copy of the image;
# the guest boots headless with COM1 on stdout and powers off.
# Needs cpio, gzip and mtools; RINGSIDE defaults to target/release/ringside.
set -euo pipefail

GUEST_DIR=${1:?usage: $0 GUEST_DIR [RINGSIDE]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RINGSIDE=${2:-$ROOT/target/release/ringside}
BASE=$GUEST_DIR/linux-i686.img
INITRD=$GUEST_DIR/initrd-linux-i686.gz
for f in "$BASE" "$INITRD" "$RINGSIDE"; do
  [ -f "$f" ] || { echo "linux-single-step-check: $f: missing" >&2; exit 2; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"
(cd "$ROOT" && cargo run --quiet --release -p ringside-cpu --example linux_stepper -- "$WORK/root/stepper")
cat > "$WORK/root/init" <<'EOF'
#!/bin/sh
export PATH=/bin:/sbin
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec >/dev/ttyS0 2>&1
/stepper
echo "stepper exit status $?"
echo "exc_debug warnings: $(dmesg | grep -c exc_debug)"
dmesg | grep -B2 -A8 exc_debug | head -40
poweroff -f
EOF
chmod 755 "$WORK/root/init"
cp "$INITRD" "$WORK/initrd.gz"
(cd "$WORK/root" && printf 'init\nstepper\n' | cpio --create --format=newc --owner=0:0 --quiet) \
  | gzip -9 -n >>"$WORK/initrd.gz"
cp "$BASE" "$WORK/disk.img"
export MTOOLS_SKIP_CHECK=1
mcopy -o -m -i "$WORK/disk.img@@$((2048 * 512))" "$WORK/initrd.gz" ::initrd.gz

"$RINGSIDE" run --headless --serial stdio --debugcon null --no-reboot \
  --max-instructions 40000000000 --disk "$WORK/disk.img" </dev/null >"$WORK/serial.txt" 2>"$WORK/stderr.txt" || true
grep -a -E "stepper|exc_debug|WARNING|EIP:" "$WORK/serial.txt" | head -60
line=$(grep -a "stepper: traps" "$WORK/serial.txt" | tr -d '\r' || true)
warnings=$(grep -a "exc_debug warnings:" "$WORK/serial.txt" | tr -d '\r' | awk '{print $3}' || true)
if [ "$line" = "stepper: traps=11 at_rep=3" ] && [ "$warnings" = "0" ]; then
  echo "linux-single-step-check: ok (as on a real CPU, no exc_debug warning)"
else
  echo "linux-single-step-check: FAILED (got '${line:-no line}', ${warnings:-?} warnings)" >&2
  tail -5 "$WORK/stderr.txt" >&2
  exit 1
fi
