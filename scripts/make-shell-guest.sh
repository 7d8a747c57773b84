#!/usr/bin/env bash
# make-shell-guest.sh GUEST_DIR [OUT_IMG]
#
# Turns the linux-i686 guest that scripts/build-linux-guest.sh built
# in GUEST_DIR into an interactive one: the same disk, kernel and busybox,
# but its /init leaves a busybox shell on the VGA console (tty1, for the
# window) and one on the serial line (ttyS0, for `--headless --serial stdio`)
# instead of running the benchmark loop and powering off.
#
# How: the kernel unpacks every cpio archive concatenated in the initramfs
# and a later file replaces an earlier one, so a small second archive with a
# new /init is appended to the guest's initrd.gz and the result is copied
# into the image's FAT partition with mtools. The base image is not touched.
#
# Output: OUT_IMG (default GUEST_DIR/linux-i686-shell.img). Needs cpio, gzip
# and mtools, which the guest build script installs.
set -euo pipefail

GUEST_DIR=${1:?usage: $0 GUEST_DIR [OUT_IMG]}
OUT=${2:-$GUEST_DIR/linux-i686-shell.img}
BASE=$GUEST_DIR/linux-i686.img
INITRD=$GUEST_DIR/initrd-linux-i686.gz
for f in "$BASE" "$INITRD"; do
  [ -f "$f" ] || { echo "make-shell-guest: $f: missing (run build-linux-guest.sh $GUEST_DIR first)" >&2; exit 2; }
done
for tool in cpio gzip mcopy; do
  command -v "$tool" >/dev/null || { echo "make-shell-guest: $tool is not installed" >&2; exit 2; }
done

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/root"
cat > "$WORK/root/init" <<'EOF'
#!/bin/sh
# linux-i686-shell /init (busybox ash): an interactive guest.
export PATH=/bin:/sbin
/bin/busybox mkdir -p /proc /sys /dev /tmp
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
export PS1='guest# '
# Kernel messages go to dmesg only from here on: a late one ("random: crng
# init done" comes at a time that depends on the host's speed) would
# otherwise land in the middle of a line being typed on tty1.
dmesg -n 1
# A shell per console, each the session leader with its tty as controlling
# terminal (opening the tty after setsid makes it so), restarted on exit.
shell() {
  while :; do
    echo "GUEST-SHELL-READY on $1: busybox sh ('poweroff -f' powers off, 'reboot -f' resets)" >"$1"
    setsid sh -c "exec sh -i <>$1 >&0 2>&0"
    sleep 1
  done
}
shell /dev/ttyS0 &
shell /dev/tty1
EOF
chmod 755 "$WORK/root/init"
touch -h -d "@${SOURCE_DATE_EPOCH:-1700000000}" "$WORK/root/init"

cp "$INITRD" "$WORK/initrd.gz"
(cd "$WORK/root" && echo init | cpio --create --format=newc --owner=0:0 --reproducible --quiet) \
  | gzip -9 -n >>"$WORK/initrd.gz"

# Write the new image next to OUT and rename it into place, so a failure
# never leaves a half-written OUT.
cp "$BASE" "$OUT.tmp"
export MTOOLS_SKIP_CHECK=1
mcopy -o -m -i "$OUT.tmp@@$((2048 * 512))" "$WORK/initrd.gz" ::initrd.gz
mv -f "$OUT.tmp" "$OUT"
echo "make-shell-guest: $OUT" >&2
