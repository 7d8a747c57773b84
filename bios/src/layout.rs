//! The ROM's layout and the hypercall numbers: shared by `build.rs` (which
//! assembles the ROM) and the library (which services the hypercalls), so
//! the two cannot disagree.
//!
//! Every offset is in segment F000 (linear 0xF0000 + offset).

/// Size of the ROM image: 64 KiB at F000:0000–F000:FFFF.
pub const ROM_SIZE: usize = 0x1_0000;
/// Linear address of the ROM's low copy (its real-mode segment is F000).
pub const ROM_BASE: u32 = 0xF_0000;
/// The BIOS's own segment.
pub const BIOS_SEG: u16 = 0xF000;

/// POST code: the reset vector jumps here.
pub const POST_OFFSET: u16 = 0x0000;
/// Interrupt entry points (x86 handlers and hypercall stubs).
pub const SERVICES_OFFSET: u16 = 0x4000;
/// Strings the x86 code prints.
pub const STRINGS_OFFSET: u16 = 0x8000;
/// Our 8x16 font (256 glyphs × 16 bytes), filled in by [`crate::rom`] from
/// the VGA's font so INT 10h AX=1130h and INT 43h can point at it.
pub const FONT_OFFSET: u16 = 0xA000;
/// Bytes of the font.
pub const FONT_BYTES: usize = 256 * 16;
/// VBE data (OEM strings, window function, mode list), filled in by
/// [`crate::rom`] from `vbe::rom_data`; INT 10h AX=4F00h points at it.
pub const VBE_OFFSET: u16 = 0xB000;
/// The signature that tells the machine this is our BIOS (hypercalls are
/// only honoured with it).
pub const SIGNATURE_OFFSET: u16 = 0xE000;
/// The signature bytes.
pub const SIGNATURE: &[u8] = b"Ringside BIOS 0.1 (hypercall port 0xE0)";
/// INT 15h AH=C0h system configuration table (at its traditional offset).
pub const CONFIG_TABLE_OFFSET: u16 = 0xE6F5;
/// INT 1Eh's diskette parameter table at its traditional place (1.44M
/// values), what the vector holds without a floppy drive.
pub const DPT_OFFSET: u16 = 0xEFC7;
/// One 11-byte diskette parameter table per CMOS drive type 1–5, 16 bytes
/// apart from here: INT 13h AH=08h returns the drive's, and the POST
/// points INT 1Eh at drive A:'s.
pub const DPT_TABLES_OFFSET: u16 = 0xEFE0;

/// The diskette parameter table for CMOS drive type `t` (1 = 360K,
/// 2 = 1.2M, 3 = 720K, 4 = 1.44M, 5 = 2.88M; others as 4): SPECIFY's two
/// bytes (step rate 0xA = 6 ms at 500 kbps, head unload 240 ms; head load
/// 4 ms, DMA), motor-off delay in ticks, 512-byte sectors, sectors per
/// track, gap length, data length, format gap, format filler byte, head
/// settle time (ms), motor start time (1/8 s).
pub const fn diskette_parameters(t: u8) -> [u8; 11] {
    let (spt, gap, format_gap) = match t {
        1 => (9, 0x2A, 0x50),
        2 => (15, 0x1B, 0x54),
        3 => (9, 0x2A, 0x50),
        5 => (36, 0x1B, 0x53),
        _ => (18, 0x1B, 0x6C),
    };
    [
        0xAF, 0x02, 0x25, 0x02, spt, gap, 0xFF, format_gap, 0xF6, 0x0F, 0x08,
    ]
}

/// Where the table for CMOS drive type `t` (1–5) is.
pub const fn dpt_offset(t: u8) -> u16 {
    match t {
        1..=5 => DPT_TABLES_OFFSET + (t as u16 - 1) * 16,
        _ => DPT_OFFSET,
    }
}

/// The reset vector.
pub const RESET_VECTOR_OFFSET: u16 = 0xFFF0;

/// The BIOS service port: an `OUT` of one byte (the service number) here,
/// *from code inside this ROM*, asks the host to run that service in Rust
/// with the CPU's registers and memory. A guest's own `OUT` to this port
/// is ignored (and counted as refused).
pub const HYPERCALL_PORT: u16 = 0xE0;

/// Where the POST's and INT 19h's stack lives (SS:SP = 0000:7C00, below the
/// boot sector).
pub const STACK_TOP: u16 = 0x7C00;
/// Segment of the Extended BIOS Data Area (1 KiB below 640 KiB).
pub const EBDA_SEG: u16 = 0x9FC0;

/// Hypercall service numbers. The interrupt services use their vector
/// number; the POST's own steps use 0xF0 and up.
pub mod svc {
    /// IRQ1 scan code (INT 09h handler): AL on the stack.
    pub const KEYBOARD_IRQ: u8 = 0x09;
    /// INT 10h video.
    pub const VIDEO: u8 = 0x10;
    /// INT 13h disk.
    pub const DISK: u8 = 0x13;
    /// INT 14h serial.
    pub const SERIAL: u8 = 0x14;
    /// INT 15h system services.
    pub const SYSTEM: u8 = 0x15;
    /// INT 16h keyboard.
    pub const KEYBOARD: u8 = 0x16;
    /// INT 17h printer.
    pub const PRINTER: u8 = 0x17;
    /// INT 1Ah time and PCI BIOS.
    pub const TIME: u8 = 0x1A;
    /// POST: BDA, EBDA, equipment, serial ports, memory sizes from CMOS.
    pub const POST_INIT: u8 = 0xF0;
    /// POST: IDE device detection (prints what it found).
    pub const POST_DISKS: u8 = 0xF1;
    /// INT 19h: load a boot sector in the configured order.
    pub const BOOT: u8 = 0xF2;
    /// INT 18h: no bootable device; say so.
    pub const NO_BOOT: u8 = 0xF3;
}
