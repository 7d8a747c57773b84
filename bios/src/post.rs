//! The host's part of POST: the BDA and equipment word, memory sizes,
//! serial ports, IDE detection, and the boot loader (INT 19h) with its
//! failure path (INT 18h).

use ringside_cpu::gpr;

use crate::acpi;
use crate::call::Call;
use crate::disk::{self, Op};
use crate::floppy;
use crate::Bios;

/// Boot device codes in CMOS 3Dh/38h (Bochs/SeaBIOS convention).
const BOOT_FLOPPY: u8 = 1;
const BOOT_DISK: u8 = 2;
const BOOT_CDROM: u8 = 3;

/// Equipment word, memory sizes from CMOS, serial ports, timeouts.
pub(crate) fn init(bios: &mut Bios, c: &mut Call) {
    // Memory: CMOS 30h/31h = KiB above 1 MiB (to 64 MiB), 34h/35h = 64 KiB
    // blocks above 16 MiB, 5Bh–5Dh = 64 KiB blocks above 4 GiB.
    let ext_kib = c.cmos(0x30) as u64 | (c.cmos(0x31) as u64) << 8;
    let above16 = c.cmos(0x34) as u64 | (c.cmos(0x35) as u64) << 8;
    let above4g = c.cmos(0x5B) as u64 | (c.cmos(0x5C) as u64) << 8 | (c.cmos(0x5D) as u64) << 16;
    bios.ram_below_4g = if above16 > 0 {
        (15 << 20) + (above16 << 16)
    } else {
        ext_kib << 10
    };
    bios.ram_above_4g = above4g << 16;

    // ACPI tables in the last 64 KiB of RAM below 4 GiB (E820 type 3).
    let top = 0x10_0000 + bios.ram_below_4g;
    bios.acpi_base = (bios.ram_below_4g >= 2 * acpi::TABLES_SIZE && top <= 0xFFFF_0000)
        .then(|| (top - acpi::TABLES_SIZE) as u32);
    if let Some(base) = bios.acpi_base {
        acpi::install(c, base);
    }
    // The PM registers where the FADT says they are, in ACPI mode.
    c.pc.setup_acpi_pm(ringside_devices::acpi::PM_BASE);

    // Serial ports: a 16550 keeps what is written to its scratch register.
    let mut ports = 0u16;
    for base in [0x3F8u16, 0x2F8, 0x3E8, 0x2E8] {
        c.outb(base + 7, 0x5A);
        if c.inb(base + 7) == 0x5A {
            c.wr16(0x400 + 2 * ports as u32, base);
            c.wr8(0x47C + ports as u32, 1); // timeout
            ports += 1;
        }
    }
    // Equipment: diskette drives and x87 (from CMOS 14h: bit 0 drives
    // installed, bits 7-6 their count - 1, bit 1 x87), 80x25 colour,
    // serial port count.
    let cmos_equipment = c.cmos(0x14) & 0xC3;
    let equipment = cmos_equipment as u16 | 0x0020 | ports << 9;
    c.wr16(0x410, equipment);
    c.wr8(0x496, 0x10); // 101/102-key keyboard
    let mib = (bios.ram_below_4g + bios.ram_above_4g + (1 << 20)) >> 20;
    let acpi = match bios.acpi_base {
        Some(base) => format!(", ACPI tables at {base:#x}"),
        None => String::new(),
    };
    c.log(&format!(
        "ringside-bios: POST: {mib} MiB RAM, {ports} serial port(s){acpi}\n"
    ));
}

/// IDENTIFY on the four IDE positions; number hard disks from 80h and
/// CD-ROMs from E0h; print each.
pub(crate) fn detect_disks(bios: &mut Bios, c: &mut Call) {
    floppy::detect(bios, c);
    bios.disks.clear();
    bios.cdroms.clear();
    for ch in 0..2 {
        for slot in 0..2 {
            let Some((d, model)) = disk::identify(c, ch, slot) else {
                continue;
            };
            let pos = format!(
                "IDE {} {}",
                ["primary", "secondary"][ch],
                ["master", "slave"][slot]
            );
            let line = if d.atapi {
                let n = 0xE0 + bios.cdroms.len() as u8;
                bios.cdroms.push(d);
                format!(
                    "{pos}: CD-ROM \"{model}\", {}, drive {n:02X}h\n",
                    cd_size(d.sectors)
                )
            } else {
                let n = 0x80 + bios.disks.len() as u8;
                bios.disks.push(d);
                format!(
                    "{pos}: disk \"{model}\", {} sectors ({}), CHS {}/{}/{}, drive {n:02X}h\n",
                    d.sectors,
                    disk_size(d.sectors),
                    d.cylinders,
                    d.heads,
                    d.spt
                )
            };
            c.say(&line);
        }
    }
    let n = bios.disks.len() as u8;
    c.wr8(disk::BDA_DISK_COUNT, n);
    if bios.disks.is_empty() && bios.cdroms.is_empty() {
        c.say("No IDE devices found\n");
    }
}

/// A disc's size for the POST line: MiB, or KiB below one MiB (a small
/// boot CD such as GRUB's rescue image is under 1 MiB), "no disc" for an
/// empty tray (READ CAPACITY failed).
fn cd_size(sectors: u64) -> String {
    let bytes = sectors * 2048;
    match bytes {
        0 => "no disc".to_string(),
        b if b < 1 << 20 => format!("{} KiB", b >> 10),
        b => format!("{} MiB", b >> 20),
    }
}

/// A hard disk's size for the POST line: MiB from 1 MiB up, else KiB (a
/// 64 KiB test disk was "0 MiB"), else bytes.
fn disk_size(sectors: u64) -> String {
    match sectors * 512 {
        b if b < 1 << 10 => format!("{b} bytes"),
        b if b < 1 << 20 => format!("{} KiB", b >> 10),
        b => format!("{} MiB", b >> 20),
    }
}

/// The boot order from CMOS (3Dh low and high nibble, 38h high nibble).
fn boot_order(c: &mut Call) -> [u8; 3] {
    let a = c.cmos(0x3D);
    let b = c.cmos(0x38);
    [a & 0x0F, a >> 4, b >> 4]
}

/// Try to load a boot sector from the hard disk at 0000:7C00.
fn boot_disk(bios: &Bios, c: &mut Call) -> Result<(), String> {
    let Some(d) = bios.disks.first().copied() else {
        return Err("no hard disk".into());
    };
    let (n, status) = disk::ata_transfer(c, &d, 0, 1, 0x7C00, Op::Read);
    if n != 1 {
        return Err(format!(
            "hard disk 80h: reading the MBR failed (status {status:02X}h)"
        ));
    }
    let sig = c.rd16(0x7DFE);
    if sig != 0xAA55 {
        return Err(format!(
            "hard disk 80h: no boot signature (55h AAh at offset 510 of the MBR; found {:02X}h {:02X}h)",
            sig as u8,
            sig >> 8
        ));
    }
    Ok(())
}

/// Try to load the boot sector of diskette drive 00h at 0000:7C00. The
/// 55h AAh signature is checked unless CMOS 38h bit 0 is set (the
/// Bochs/QEMU convention SeaBIOS follows: old DOS diskettes lack it).
fn boot_floppy(bios: &Bios, c: &mut Call) -> Result<(), String> {
    if bios.floppy(0).is_none() {
        return Err("no floppy drive".into());
    }
    let (n, status) = floppy::transfer(bios, c, 0, (0, 0, 1), 1, 0x7C00, floppy::Op::Read);
    if n != 1 {
        return Err(format!(
            "floppy 00h: reading the boot sector failed (status {status:02X}h)"
        ));
    }
    let sig = c.rd16(0x7DFE);
    if c.cmos(0x38) & 1 == 0 && sig != 0xAA55 {
        return Err(format!(
            "floppy 00h: no boot signature (55h AAh at offset 510 of the boot sector; found {:02X}h {:02X}h)",
            sig as u8,
            sig >> 8
        ));
    }
    Ok(())
}

/// El Torito, no emulation: find the boot catalog through the boot record
/// volume descriptor (sector 17), check the validation entry, load the
/// default entry's image. Returns the load segment.
fn boot_cdrom(bios: &Bios, c: &mut Call) -> Result<u16, String> {
    let Some(d) = bios.cdroms.first().copied() else {
        return Err("no CD-ROM drive".into());
    };
    if d.sectors == 0 {
        // READ CAPACITY failed at POST: NOT READY, medium not present.
        return Err("CD-ROM E0h: no disc in the drive (the tray is empty)".into());
    }
    let mut blk = [0u8; 2048];
    let read = |c: &mut Call, lba: u64, blk: &mut [u8; 2048]| {
        disk::cd_read(c, &d, lba, 1, |_, _, b| blk.copy_from_slice(b)) == 1
    };
    if !read(c, 17, &mut blk) {
        return Err("CD-ROM E0h: cannot read sector 17 (is there a disc?)".into());
    }
    if blk[0] != 0 || &blk[1..6] != b"CD001" || &blk[7..30] != b"EL TORITO SPECIFICATION" {
        return Err("CD-ROM E0h: not bootable (no El Torito boot record at sector 17)".into());
    }
    let catalog = u32::from_le_bytes([blk[0x47], blk[0x48], blk[0x49], blk[0x4A]]) as u64;
    if !read(c, catalog, &mut blk) {
        return Err(format!(
            "CD-ROM E0h: cannot read the boot catalog at block {catalog}"
        ));
    }
    let sum = blk[..32].chunks_exact(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    if blk[0] != 1 || blk[30] != 0x55 || blk[31] != 0xAA || sum != 0 {
        return Err("CD-ROM E0h: the boot catalog's validation entry is invalid".into());
    }
    let e = &blk[32..64];
    if e[0] != 0x88 {
        return Err("CD-ROM E0h: the default boot entry is not bootable".into());
    }
    if e[1] & 0x0F != 0 {
        return Err(format!(
            "CD-ROM E0h: boot image uses floppy/hard-disk emulation (media type {}); only no-emulation boot is supported",
            e[1] & 0x0F
        ));
    }
    let seg = match u16::from_le_bytes([e[2], e[3]]) {
        0 => 0x07C0,
        s => s,
    };
    let count = u16::from_le_bytes([e[6], e[7]]).max(1) as u32;
    let rba = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
    let blocks = count.div_ceil(4);
    let base = (seg as u32) << 4;
    let bytes = count * 512;
    if base + bytes > 0xA0000 {
        return Err("CD-ROM E0h: boot image does not fit below 640 KiB".into());
    }
    let got = disk::cd_read(c, &d, rba, blocks, |c, i, b| {
        let at = i * 2048;
        let n = (bytes - at).min(2048) as usize;
        c.write_bytes(base + at, &b[..n]);
    });
    if got != blocks {
        return Err(format!(
            "CD-ROM E0h: reading the boot image at block {rba} failed"
        ));
    }
    Ok(seg)
}

/// INT 19h's work: try the boot devices in order. CF=0 with DL = drive
/// and BX:CX = entry point on success.
pub(crate) fn boot(bios: &mut Bios, c: &mut Call) {
    for code in boot_order(c) {
        let (name, result) = match code {
            BOOT_DISK => (
                "hard disk",
                boot_disk(bios, c).map(|()| (0x80, 0x0000, 0x7C00)),
            ),
            BOOT_CDROM => ("CD-ROM", boot_cdrom(bios, c).map(|seg| (0xE0, seg, 0))),
            BOOT_FLOPPY => (
                "floppy",
                boot_floppy(bios, c).map(|()| (0x00, 0x0000, 0x7C00)),
            ),
            _ => continue,
        };
        match result {
            Ok((drive, seg, off)) => {
                c.say(&format!("Booting from {name} (drive {drive:02X}h)...\n"));
                bios.boot_drive = Some(drive);
                c.set_lo(gpr::EDX, drive);
                c.set_r16(gpr::EBX, seg);
                c.set_r16(gpr::ECX, off);
                c.set_cf(false);
                return;
            }
            Err(why) => c.say(&format!("Boot from {name} failed: {why}\n")),
        }
    }
    c.set_cf(true);
}

/// INT 18h: nothing could boot.
pub(crate) fn no_boot(c: &mut Call) {
    c.say("No bootable device. Attach a disk image (--hda/--disk), a CD (--cdrom) or a floppy (--floppy); the machine stops here.\n");
}

#[cfg(test)]
mod tests {
    use super::{cd_size, disk_size};

    #[test]
    fn cd_sizes_on_the_post_line() {
        // GRUB's rescue CD: 413 sectors of 2 KiB, which was "0 MiB".
        assert_eq!(cd_size(413), "826 KiB");
        assert_eq!(cd_size(512), "1 MiB");
        assert_eq!(cd_size(330_000), "644 MiB");
        assert_eq!(cd_size(0), "no disc");
    }

    #[test]
    fn small_disks_are_not_0_mib() {
        assert_eq!(disk_size(128), "64 KiB");
        assert_eq!(disk_size(1), "512 bytes");
        assert_eq!(disk_size(2047), "1023 KiB");
        assert_eq!(disk_size(2048), "1 MiB");
        assert_eq!(disk_size(2 * 1024 * 1024 * 10), "10240 MiB");
    }
}
