//! Minimal ACPI tables (ACPI specification 1.0b/6.x, chapter 5), built by
//! the POST in RAM so an operating system can find the board's power
//! management registers and turn the machine off:
//!
//! - RSDP (20 bytes, revision 0) in the first KiB of the EBDA, where an OS
//!   searches for it on 16-byte boundaries;
//! - RSDT with one entry, the FADT;
//! - FADT (revision 1, 116 bytes): SCI on IRQ 9, no SMI command port (the
//!   board is always in ACPI mode), PM1a event/control blocks and the PM
//!   timer in the PIIX4 PM function's register block: at
//!   `ringside_devices::acpi::PM_BASE` (0xB000), where our POST puts it, or
//!   at [`SEABIOS_PM_BASE`] in the copy for SeaBIOS; C2/C3 absent, no GPE
//!   block;
//! - FACS (64 bytes, 64-byte aligned; the global lock and waking vector);
//! - DSDT whose AML is one object: `Name (_S5, Package () { 5, 5, 0, 0 })`,
//!   the sleep type values for soft off that the OS writes to PM1a_CNT.
//!
//! Everything but the RSDP lives in the last [`TABLES_SIZE`] bytes of RAM
//! below 4 GiB, which the E820 map reports as ACPI reclaimable memory.

use ringside_devices::acpi::{PM_BASE, SCI_IRQ, SLP_TYP_S5};

/// Where SeaBIOS puts the PIIX4 PM function's registers (its
/// `acpi_pm_base`, the address QEMU's tables name for this board): the
/// tables SeaBIOS loads through fw_cfg must say the same.
pub const SEABIOS_PM_BASE: u16 = 0x600;

use crate::call::Call;
use crate::layout::EBDA_SEG;

/// Bytes of RAM set aside for the tables at the top of memory.
pub(crate) const TABLES_SIZE: u64 = 0x1_0000;
/// The RSDP's offset in the EBDA (past the EBDA's size byte and its
/// first 16-byte paragraph).
const RSDP_EBDA_OFFSET: u32 = 0x10;

const OEM_ID: &[u8; 6] = b"RINGSD";
const OEM_TABLE_ID: &[u8; 8] = b"RINGSIDE";
const CREATOR_ID: &[u8; 4] = b"RSDE";

// Offsets of the tables inside the reserved block.
const RSDT_AT: u32 = 0x000;
const FACS_AT: u32 = 0x040;
const FADT_AT: u32 = 0x080;
const DSDT_AT: u32 = 0x100;

/// The ACPI Machine Language of our DSDT's body (ACPI 6.x §20.2):
///
/// ```text
/// 08                NameOp
/// 5F 53 35 5F       NameSeg "_S5_"
/// 12                PackageOp
/// 08                PkgLength: 8 bytes (this byte to the package's end)
/// 04                NumElements
/// 0A 05             BytePrefix 5   SLP_TYPa
/// 0A 05             BytePrefix 5   SLP_TYPb
/// 00                ZeroOp         reserved
/// 00                ZeroOp         reserved
/// ```
pub(crate) const S5_AML: [u8; 14] = [
    0x08,
    b'_',
    b'S',
    b'5',
    b'_',
    0x12,
    0x08,
    0x04,
    0x0A,
    SLP_TYP_S5 as u8,
    0x0A,
    SLP_TYP_S5 as u8,
    0x00,
    0x00,
];

/// The standard 36-byte description header, checksum left 0.
fn header(signature: &[u8; 4], length: u32, revision: u8) -> Vec<u8> {
    let mut t = Vec::with_capacity(length as usize);
    t.extend_from_slice(signature);
    t.extend_from_slice(&length.to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(OEM_ID);
    t.extend_from_slice(OEM_TABLE_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // OEM revision
    t.extend_from_slice(CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes()); // creator revision
    t
}

/// Set byte `at` so that the bytes of `t` sum to 0 (mod 256).
fn checksum(t: &mut [u8], at: usize) {
    t[at] = 0;
    let sum = t.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    t[at] = sum.wrapping_neg();
}

fn put32(t: &mut [u8], at: usize, v: u32) {
    t[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put16(t: &mut [u8], at: usize, v: u16) {
    t[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

/// The RSDP (ACPI 1.0 form) pointing at an RSDT at `rsdt`.
pub(crate) fn rsdp(rsdt: u32) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[..8].copy_from_slice(b"RSD PTR ");
    t[9..15].copy_from_slice(OEM_ID);
    t[15] = 0; // revision 0: ACPI 1.0, no XSDT
    put32(&mut t, 16, rsdt);
    checksum(&mut t, 8);
    t
}

/// The RSDT listing `entries`.
pub(crate) fn rsdt(entries: &[u32]) -> Vec<u8> {
    let len = 36 + 4 * entries.len() as u32;
    let mut t = header(b"RSDT", len, 1);
    for e in entries {
        t.extend_from_slice(&e.to_le_bytes());
    }
    checksum(&mut t, 9);
    t
}

/// The FADT (revision 1) with the FACS and DSDT at these addresses and
/// the PM registers in the block at `pm_base`.
pub(crate) fn fadt(facs: u32, dsdt: u32, pm_base: u16) -> Vec<u8> {
    let mut t = header(b"FACP", 116, 1);
    t.resize(116, 0);
    put32(&mut t, 36, facs); // FIRMWARE_CTRL
    put32(&mut t, 40, dsdt); // DSDT
    t[44] = 0; // INT_MODEL: dual PIC
    put16(&mut t, 46, SCI_IRQ as u16); // SCI_INT
    put32(&mut t, 48, 0); // SMI_CMD: none, always in ACPI mode
    let pm = pm_base as u32;
    put32(&mut t, 56, pm); // PM1a_EVT_BLK
    put32(&mut t, 64, pm + 4); // PM1a_CNT_BLK
    put32(&mut t, 76, pm + 8); // PM_TMR_BLK
    t[88] = 4; // PM1_EVT_LEN
    t[89] = 2; // PM1_CNT_LEN
    t[91] = 4; // PM_TMR_LEN
    put16(&mut t, 96, 101); // P_LVL2_LAT > 100: no C2
    put16(&mut t, 98, 1001); // P_LVL3_LAT > 1000: no C3
    t[108] = 0x32; // CENTURY: CMOS register 32h
                   // Flags: WBINVD (0), PROC_C1 (2), PWR_BUTTON (4) and SLP_BUTTON (5)
                   // set = no fixed-feature buttons; TMR_VAL_EXT (8) clear = 24-bit timer.
    put32(&mut t, 112, 1 | 1 << 2 | 1 << 4 | 1 << 5);
    checksum(&mut t, 9);
    t
}

/// The FACS (no checksum; 64 bytes).
pub(crate) fn facs() -> [u8; 64] {
    let mut t = [0u8; 64];
    t[..4].copy_from_slice(b"FACS");
    put32(&mut t, 4, 64);
    t
}

/// The DSDT: header and [`S5_AML`].
pub(crate) fn dsdt() -> Vec<u8> {
    let len = 36 + S5_AML.len() as u32;
    let mut t = header(b"DSDT", len, 1);
    t.extend_from_slice(&S5_AML);
    checksum(&mut t, 9);
    t
}

/// Write the tables into guest RAM: the block at `base` (the last
/// [`TABLES_SIZE`] bytes of RAM below 4 GiB) and the RSDP in the EBDA.
pub(crate) fn install(c: &mut Call, base: u32) {
    for i in 0..TABLES_SIZE as u32 / 4 {
        c.wr32(base + 4 * i, 0);
    }
    c.write_bytes(base + RSDT_AT, &rsdt(&[base + FADT_AT]));
    c.write_bytes(base + FACS_AT, &facs());
    c.write_bytes(
        base + FADT_AT,
        &fadt(base + FACS_AT, base + DSDT_AT, PM_BASE),
    );
    c.write_bytes(base + DSDT_AT, &dsdt());
    let rsdp_at = ((EBDA_SEG as u32) << 4) + RSDP_EBDA_OFFSET;
    c.write_bytes(rsdp_at, &rsdp(base + RSDT_AT));
}

/// The same tables as fw_cfg files for third-party firmware that loads
/// its ACPI tables the way SeaBIOS does on QEMU: `etc/acpi/rsdp` (the
/// RSDP), `etc/acpi/tables` (RSDT, FACS, FADT, DSDT at offsets 0, 0x40,
/// 0x80, 0x100, their pointers holding those offsets) and
/// `etc/table-loader`, a script of 128-byte commands (QEMU's BIOS linker
/// format): ALLOCATE (1: file, alignment, zone 1 = high memory, 2 = the
/// F segment), ADD_POINTER (2: destination file, source file, offset,
/// size: add the source's address to the field) and ADD_CHECKSUM (3:
/// file, checksum offset, start, length).
pub fn fw_cfg_files() -> Vec<(&'static str, Vec<u8>)> {
    const RSDP_FILE: &str = "etc/acpi/rsdp";
    const TABLES_FILE: &str = "etc/acpi/tables";
    let mut tables = vec![0u8; DSDT_AT as usize];
    let mut put = |at: u32, b: &[u8]| {
        let at = at as usize;
        if tables.len() < at + b.len() {
            tables.resize(at + b.len(), 0);
        }
        tables[at..at + b.len()].copy_from_slice(b);
    };
    put(RSDT_AT, &rsdt(&[FADT_AT]));
    put(FACS_AT, &facs());
    put(FADT_AT, &fadt(FACS_AT, DSDT_AT, SEABIOS_PM_BASE));
    put(DSDT_AT, &dsdt());
    let rsdp = rsdp(RSDT_AT).to_vec();

    fn name(cmd: &mut [u8], at: usize, file: &str) {
        cmd[at..at + file.len()].copy_from_slice(file.as_bytes());
    }
    let mut script = Vec::new();
    let allocate = |file: &str, align: u32, zone: u8| {
        let mut c = [0u8; 128];
        c[..4].copy_from_slice(&1u32.to_le_bytes());
        name(&mut c, 4, file);
        c[60..64].copy_from_slice(&align.to_le_bytes());
        c[64] = zone;
        c
    };
    script.push(allocate(RSDP_FILE, 16, 2));
    script.push(allocate(TABLES_FILE, 64, 1));
    let pointer = |dest: &str, src: &str, offset: u32| {
        let mut c = [0u8; 128];
        c[..4].copy_from_slice(&2u32.to_le_bytes());
        name(&mut c, 4, dest);
        name(&mut c, 60, src);
        c[116..120].copy_from_slice(&offset.to_le_bytes());
        c[120] = 4;
        c
    };
    script.push(pointer(TABLES_FILE, TABLES_FILE, RSDT_AT + 36));
    script.push(pointer(TABLES_FILE, TABLES_FILE, FADT_AT + 36));
    script.push(pointer(TABLES_FILE, TABLES_FILE, FADT_AT + 40));
    script.push(pointer(RSDP_FILE, TABLES_FILE, 16));
    let checksum = |file: &str, start: u32, at: u32, len: u32| {
        let mut c = [0u8; 128];
        c[..4].copy_from_slice(&3u32.to_le_bytes());
        name(&mut c, 4, file);
        c[60..64].copy_from_slice(&(start + at).to_le_bytes());
        c[64..68].copy_from_slice(&start.to_le_bytes());
        c[68..72].copy_from_slice(&len.to_le_bytes());
        c
    };
    let len_at = |t: &[u8], at: u32| {
        let a = at as usize;
        u32::from_le_bytes([t[a + 4], t[a + 5], t[a + 6], t[a + 7]])
    };
    for at in [RSDT_AT, FADT_AT, DSDT_AT] {
        script.push(checksum(TABLES_FILE, at, 9, len_at(&tables, at)));
    }
    script.push(checksum(RSDP_FILE, 0, 8, 20));
    vec![
        (RSDP_FILE, rsdp),
        (TABLES_FILE, tables),
        ("etc/table-loader", script.concat()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums_to_zero(t: &[u8]) -> bool {
        t.iter().fold(0u8, |s, &b| s.wrapping_add(b)) == 0
    }

    #[test]
    fn tables_have_valid_checksums_and_lengths() {
        let r = rsdp(0x7FF_0000);
        assert!(sums_to_zero(&r));
        assert_eq!(&r[16..20], &0x7FF_0000u32.to_le_bytes());
        for t in [rsdt(&[0x1234]), fadt(0x40, 0x100, PM_BASE), dsdt()] {
            assert!(sums_to_zero(&t), "{:?}", &t[..4]);
            assert_eq!(
                u32::from_le_bytes([t[4], t[5], t[6], t[7]]) as usize,
                t.len()
            );
        }
        assert_eq!(fadt(0, 0, PM_BASE).len(), 116);
        assert_eq!(&facs()[..8], b"FACS\x40\0\0\0");
    }

    #[test]
    fn fadt_points_at_the_board_registers() {
        use ringside_devices::acpi::{PM1A_CNT, PM1A_EVT, PM_TMR};
        let t = fadt(0x40, 0x100, PM_BASE);
        let at = |o: usize| u32::from_le_bytes([t[o], t[o + 1], t[o + 2], t[o + 3]]);
        assert_eq!(at(36), 0x40);
        assert_eq!(at(40), 0x100);
        assert_eq!(at(56), PM1A_EVT as u32);
        assert_eq!(at(64), PM1A_CNT as u32);
        assert_eq!(at(76), PM_TMR as u32);
        let t = &fw_cfg_files()[1].1[FADT_AT as usize..];
        let at = |o: usize| u32::from_le_bytes([t[o], t[o + 1], t[o + 2], t[o + 3]]);
        assert_eq!(at(64), SEABIOS_PM_BASE as u32 + 4, "SeaBIOS's copy");
        assert_eq!(u16::from_le_bytes([t[46], t[47]]), 9);
    }

    #[test]
    fn fw_cfg_files_hold_the_tables_and_a_loader_script() {
        let files = fw_cfg_files();
        let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["etc/acpi/rsdp", "etc/acpi/tables", "etc/table-loader"]
        );
        let tables = &files[1].1;
        assert_eq!(&tables[..4], b"RSDT");
        assert_eq!(&tables[0x80..0x84], b"FACP");
        assert_eq!(&tables[0x100..0x104], b"DSDT");
        let script = &files[2].1;
        assert_eq!(script.len() % 128, 0);
        // ALLOCATE first, the RSDP in the F segment.
        assert_eq!(script[0], 1);
        assert_eq!(&script[4..17], b"etc/acpi/rsdp");
        assert_eq!(script[64], 2);
    }

    #[test]
    fn s5_package_length_counts_its_own_byte_and_the_elements() {
        // PkgLength covers itself, NumElements and the four elements.
        let pkg = &S5_AML[6..];
        assert_eq!(pkg[0] as usize, pkg.len());
        assert_eq!(pkg[1], 4);
    }
}
