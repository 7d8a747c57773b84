#!/usr/bin/env bash
# make-grub-images.sh OUTDIR
#
# Builds two GRUB 2 (i386-pc) smoke-test images from Debian's GRUB packages:
#
#   OUTDIR/grub-cd.iso    an El Torito no-emulation CD made by grub-mkrescue
#   OUTDIR/grub-disk.img  a 16 MiB hard disk: GRUB's boot.img in the MBR,
#                         core.img (grub-mkimage) in the sectors after it, and
#                         a FAT16 partition at sector 2048 holding
#                         /boot/grub (modules and grub.cfg), written with
#                         mtools: no loop device, no mount, no grub-install
#
# Each grub.cfg runs its commands at the top level (no menu, no timeout): it
# puts GRUB's terminal on COM1 (115200 baud) and the screen, prints a marker
# (GRUB-CD-OK / GRUB-DISK-OK) with what GRUB found out by itself (platform,
# CPU, root device, `ls` of its devices and of its own directory, a file it
# read and its SHA-256, `cpuid -l`, `sleep 1` on the BIOS tick), then `halt`,
# which powers the PC off through ACPI (\_S5 in the DSDT, PM1a_CNT): a run
# ends with status 0. GRUB-HALT-FAILED follows if it comes back.
#
# grub-cd.iso is a hybrid image (grub-mkrescue writes an MBR with a
# partition table and boot_hybrid.img): written to a disk it boots as well.
#
# Needs grub-mkrescue, grub-mkimage (grub-common, grub-pc-bin), xorriso and
# mtools; running as root with apt-get, installs the missing ones (best
# effort). Exit status 2 when a tool is still missing.
set -euo pipefail

OUT=${1:?usage: $0 OUTDIR}
GRUB_DIR=/usr/lib/grub/i386-pc

have_all() {
  command -v grub-mkrescue && command -v grub-mkimage && command -v xorriso \
    && command -v mformat && command -v mcopy && [ -f "$GRUB_DIR/boot.img" ]
}

if ! have_all >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "make-grub-images: installing grub-pc-bin grub-common xorriso mtools" >&2
  (timeout 300 apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends \
      grub-pc-bin grub-common xorriso mtools >/dev/null) \
    || echo "make-grub-images: warning: apt-get could not install them" >&2
fi
if ! have_all >/dev/null 2>&1; then
  echo "make-grub-images: grub-mkrescue, grub-mkimage, $GRUB_DIR, xorriso or mtools missing" >&2
  exit 2
fi

mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# grub.cfg for MARKER (GRUB-CD / GRUB-DISK).
write_cfg() {
  local marker=$1
  cat <<EOF
# Ringside GRUB smoke test: no menu, commands at the top level.
serial --unit=0 --speed=115200
terminal_output serial console
terminal_input serial console
echo "$marker-OK platform=\$grub_platform cpu=\$grub_cpu root=\$root"
echo "$marker-LS-BEGIN"
ls
echo "$marker-LS-END"
ls /boot/grub/
echo "$marker-FILE-BEGIN"
cat /boot/grub/ringside.txt
echo "$marker-FILE-END"
sha256sum /boot/grub/ringside.txt
if cpuid -l; then echo "$marker-CPUID long-mode"; else echo "$marker-CPUID no-long-mode"; fi
sleep 1
echo "$marker-SLEPT"
echo "$marker-HALT"
halt
echo "GRUB-HALT-FAILED"
EOF
}

# (a) The CD: grub-mkrescue builds cdboot.img + core.img as the El Torito
# no-emulation image (boot info table) and a hybrid MBR; only the modules the
# config loads (and their dependencies) go in, to keep the ISO small.
mkdir -p "$WORK/cd/boot/grub"
write_cfg GRUB-CD >"$WORK/cd/boot/grub/grub.cfg"
echo "read from the CD by GRUB's iso9660 driver" >"$WORK/cd/boot/grub/ringside.txt"
# Every partition map goes in too: `ls` probes them all and would print an
# error on the screen for each one missing.
part_maps=$(cd "$GRUB_DIR" && ls part_*.mod | sed 's/\.mod$//' | tr '\n' ' ')
grub-mkrescue -d "$GRUB_DIR" -o "$OUT/grub-cd.iso" \
  --install-modules="normal echo ls cat halt serial terminal iso9660 biosdisk acpi hashsum gcry_sha256 cpuid sleep $part_maps" \
  --modules="normal serial" --fonts= --locales= --themes= \
  "$WORK/cd" >"$WORK/mkrescue.log" 2>&1 \
  || { cat "$WORK/mkrescue.log" >&2; exit 1; }

# (b) The hard disk. Layout: LBA 0 the MBR (boot.img's code, our partition
# table), LBA 1.. core.img (diskboot.img, whose block list grub-mkimage fills
# with core.img's length from LBA 2 on; boot.img's kernel sector defaults to
# LBA 1 and its boot drive to DL), LBA 2048.. one FAT16 partition (type 06,
# active; 2 KiB clusters make it FAT16).
DISK=$WORK/disk.img
PART_START=2048
SECTORS=$((16 * 2048))
truncate -s $((SECTORS * 512)) "$DISK"
python3 - "$DISK" "$PART_START" "$((SECTORS - PART_START))" <<'EOF'
import struct, sys
path, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
# One active FAT16 partition; the CHS fields say "use LBA" (1023/254/63).
entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x06, b"\xfe\xff\xff", start, count)
with open(path, "r+b") as f:
    f.seek(446)
    f.write(entry + b"\0" * 48 + b"\x55\xaa")
EOF
mformat -i "$DISK@@$((PART_START * 512))" -T $((SECTORS - PART_START)) -h 255 -s 63 -c 4 \
  -H $PART_START -v RINGSIDE ::
mmd -i "$DISK@@$((PART_START * 512))" ::/boot ::/boot/grub ::/boot/grub/i386-pc
write_cfg GRUB-DISK >"$WORK/grub-disk.cfg"
echo "read from the hard disk by GRUB's FAT driver" >"$WORK/ringside-disk.txt"
mcopy -i "$DISK@@$((PART_START * 512))" "$WORK/grub-disk.cfg" ::/boot/grub/grub.cfg
mcopy -i "$DISK@@$((PART_START * 512))" "$WORK/ringside-disk.txt" ::/boot/grub/ringside.txt
mcopy -i "$DISK@@$((PART_START * 512))" "$GRUB_DIR"/*.mod "$GRUB_DIR"/*.lst ::/boot/grub/i386-pc/
grub-mkimage -O i386-pc -d "$GRUB_DIR" -o "$WORK/core.img" -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos fat
core_sectors=$((($(stat -c %s "$WORK/core.img") + 511) / 512))
if [ $((1 + core_sectors)) -gt $PART_START ]; then
  echo "make-grub-images: core.img ($core_sectors sectors) does not fit before the partition" >&2
  exit 1
fi
# boot.img's code and BPB area (bytes 0-439), then core.img from LBA 1.
dd if="$GRUB_DIR/boot.img" of="$DISK" bs=440 count=1 conv=notrunc status=none
dd if="$WORK/core.img" of="$DISK" bs=512 seek=1 conv=notrunc status=none
mv "$DISK" "$OUT/grub-disk.img"

ls -l "$OUT/grub-cd.iso" "$OUT/grub-disk.img"
