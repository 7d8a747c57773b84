#!/usr/bin/env bash
# build-linux-guest.sh OUT_DIR
#
# The Linux guest of Ringside's end-to-end tests (frontend/tests/linux_*.rs,
# third_party_roms.rs), built from Debian packages only:
#
#   OUT_DIR/linux-i686.img        64 MB raw disk: MBR (SYSLINUX's), one FAT16
#                                 partition at LBA 2048 holding SYSLINUX,
#                                 vmlinuz, initrd.gz and syslinux.cfg
#   OUT_DIR/initrd-linux-i686.gz  the initramfs (scripts/make-shell-guest.sh
#                                 appends its own /init to it)
#   OUT_DIR/vmlinuz-VERSION, OUT_DIR/linux-i686.manifest (what went in)
#
# The kernel is Debian 12's i386 "686" flavour (linux-image-686: no PAE; it
# needs CPUID family 5 or later with FPU, CX8 and CMOV), the userland one
# static busybox (busybox-static). The initramfs's /init writes to the
# serial port (ttyS0, 115200 8N1) and the VGA console:
#
#   GUEST-BOOT-OK, `uname -a`, /proc/cpuinfo up to its flags line,
#   guest-loop: n=N sum=S uptime=U   (s = (s*31 + i) mod 1000003, i < N;
#                                     N = 20000 gives S = 667472)
#   GUEST-LOOP-DONE, guest: powering off, then `poweroff -f`
#
# `guest.loops=N` on the kernel command line changes N.
#
# Needs: a Debian 12 (bookworm) host, root (apt-get, mknod), and apt able
# to reach the Debian archive the host already uses. The host's dpkg
# architecture list is left alone: the i386 packages are fetched with an
# apt configuration of our own (APT_CONFIG) and unpacked, never installed.
#
# Knobs: DEB_DIR=DIR takes the kernel and busybox .debs found in DIR
# (linux-image-*-686_*_i386.deb, busybox-static_*_i386.deb) instead of
# downloading them; LOOPS=N changes the default loop count.
set -euo pipefail

out=${1:?usage: build-linux-guest.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
loops=${LOOPS:-20000}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
export DEBIAN_FRONTEND=noninteractive
say() { printf 'build-linux-guest: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# Host tools, from the host's own architecture.
need=()
for tool in sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools syslinux:syslinux \
            cpio:cpio gzip:gzip dpkg-deb:dpkg; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || need+=(syslinux-common)
if ((${#need[@]})); then
  say "installing ${need[*]}"
  apt-get update -qq || say "apt-get update reported errors; trying the install anyway"
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ringside-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- the two i386 packages ----------------------------------------------------
debs=${DEB_DIR:-$out/.debs}
mkdir -p "$debs"
pick() { ls -1 "$debs"/$1 2>/dev/null | sort -V | tail -1; }
if [ -z "$(pick 'linux-image-*-686_*_i386.deb')" ] || [ -z "$(pick 'busybox-static_*_i386.deb')" ]; then
  [ -z "${DEB_DIR:-}" ] || die "DEB_DIR=$DEB_DIR lacks the kernel or busybox .deb"
  # A private apt: its own state, cache and source list (the host's bookworm
  # entries, in either format), architecture i386.
  state=$out/.apt-i386
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/sources.list.d"
  touch "$state/status"
  rm -f "$state/sources.list.d/"*
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -q 'bookworm' "$f" && cp "$f" "$state/sources.list.d/"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb[[:space:]]+[^[]*bookworm' /etc/apt/sources.list >"$state/sources.list.d/host.list" || true
  fi
  ls "$state/sources.list.d/"* >/dev/null 2>&1 || die "no bookworm entry in the host's apt sources"
  cat >"$state/apt.conf" <<EOF
APT::Architecture "i386";
APT::Architectures { "i386"; };
Dir::State "$state";
Dir::State::status "$state/status";
Dir::Cache "$state/cache";
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$state/sources.list.d";
APT::Sandbox::User "root";
EOF
  export APT_CONFIG=$state/apt.conf
  say "reading the i386 package index"
  apt-get update -qq || say "apt-get update reported errors; trying the packages anyway"
  kernel=$(apt-cache depends linux-image-686 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-686\)$/\1/p' | head -1)
  [ -n "$kernel" ] || die "linux-image-686 (i386) names no kernel package"
  say "downloading $kernel and busybox-static (i386)"
  (cd "$debs" && apt-get download -qq "$kernel:i386" "busybox-static:i386")
  unset APT_CONFIG
fi
kdeb=$(pick 'linux-image-*-686_*_i386.deb')
bdeb=$(pick 'busybox-static_*_i386.deb')
[ -n "$kdeb" ] && [ -n "$bdeb" ] || die "the kernel or busybox .deb is missing in $debs"
say "kernel: ${kdeb##*/}; busybox: ${bdeb##*/}"

dpkg-deb -x "$kdeb" "$tmp/k"
dpkg-deb -x "$bdeb" "$tmp/b"
vmlinuz=$(ls "$tmp"/k/boot/vmlinuz-* | head -1)
kver=${vmlinuz##*/vmlinuz-}
# ELF e_machine 3 is i386.
[ "$(od -An -tu2 -j18 -N2 "$tmp/b/bin/busybox" | tr -d ' ')" = 3 ] || die "busybox is not an i386 binary"

# --- initramfs ---------------------------------------------------------------
root=$tmp/root
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp"
cp "$tmp/b/bin/busybox" "$root/bin/"
ln -s busybox "$root/bin/sh"
# Used only if devtmpfs is not there.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 620 "$root/dev/tty0" c 4 0
mknod -m 660 "$root/dev/ttyS0" c 4 64
cat >"$root/init" <<'INIT'
#!/bin/sh
# Ringside's Linux test guest: report, count, power off.
PATH=/bin
export PATH
busybox mount -t proc proc /proc
busybox --install -s /bin
mount -t sysfs sysfs /sys 2>/dev/null
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Everything goes to both consoles: COM1 for the headless tests, the VGA
# text console for the screenshots.
both() {
  cat >/tmp/text
  for tty in /dev/ttyS0 /dev/tty0; do
    [ -c $tty ] && cat /tmp/text >$tty 2>/dev/null
  done
}
n=@LOOPS@
for word in $(cat /proc/cmdline); do
  case $word in guest.loops=*) n=${word#guest.loops=} ;; esac
done
{
  echo GUEST-BOOT-OK
  uname -a
  sed '/^flags/q' /proc/cpuinfo
  echo "guest-uptime: $(cat /proc/uptime)"
} | both
i=0
s=0
while [ $i -lt $n ]; do
  s=$(( (s * 31 + i) % 1000003 ))
  i=$(( i + 1 ))
done
read up rest </proc/uptime
echo "guest-loop: n=$n sum=$s uptime=$up" | both
echo GUEST-LOOP-DONE | both
echo "guest: powering off" | both
poweroff -f
while :; do sleep 60; done
INIT
sed -i "s/@LOOPS@/$loops/" "$root/init"
chmod 755 "$root/init"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --reproducible --quiet) \
  | gzip -9 -n >"$tmp/initrd.gz"

# --- the disk ------------------------------------------------------------------
# 130 cylinders of 16 heads x 63 sectors (a whole number of cylinders for
# firmware that reads the geometry from the size), the partition at 1 MiB.
sectors=$((130 * 16 * 63))
first=2048
img=$tmp/linux-i686.img
truncate -s $((sectors * 512)) "$img"
echo "start=$first, size=$((sectors - first)), type=6, bootable" \
  | sfdisk --quiet --label dos --no-reread --no-tell-kernel "$img" >/dev/null
mkfs.fat -F 16 -n RINGSIDE -i 52494E47 --invariant -g 16/63 -h $first \
  --offset $first "$img" $(((sectors - first) / 2)) >/dev/null
cmdline="console=ttyS0,115200 console=tty0 panic=-1"
printf 'SERIAL 0 115200\nPROMPT 0\nTIMEOUT 0\nDEFAULT linux\nLABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND %s\n' \
  "$cmdline" >"$tmp/syslinux.cfg"
cp "$vmlinuz" "$tmp/vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$tmp/vmlinuz" "$tmp/initrd.gz" "$tmp/syslinux.cfg"
export MTOOLS_SKIP_CHECK=1
mcopy -m -i "$img@@$((first * 512))" "$tmp/vmlinuz" "$tmp/initrd.gz" "$tmp/syslinux.cfg" ::
syslinux --offset $((first * 512)) --install "$img"
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" bs=440 count=1 conv=notrunc status=none

mv -f "$img" "$out/linux-i686.img"
cp -f "$tmp/initrd.gz" "$out/initrd-linux-i686.gz"
cp -f "$vmlinuz" "$out/vmlinuz-$kver"
{
  echo "linux-i686.img: $sectors sectors, FAT16 partition from LBA $first, SYSLINUX"
  echo "kernel: ${kdeb##*/} ($kver), command line: $cmdline"
  echo "busybox: ${bdeb##*/}"
  echo "loops: $loops"
  (cd "$out" && sha256sum linux-i686.img initrd-linux-i686.gz "vmlinuz-$kver")
} >"$out/linux-i686.manifest"
say "done: $out/linux-i686.img"
