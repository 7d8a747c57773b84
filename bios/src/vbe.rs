//! INT 10h AH=4Fh: VESA BIOS Extensions 3.0 on the board's Bochs/QEMU
//! standard VGA (the dispi registers, see `ringside_devices::vga::dispi`).
//!
//! Facts from the VBE 3.0 specification (VESA, 1998): the controller and
//! mode information blocks (§4.4, §4.5), the mode attributes, memory
//! models and colour mask fields, and the status convention: AL = 4Fh
//! when the function exists, AH = 00h success, 01h failure (§4.2).
//!
//! The OEM strings, the mode list and a window function (for callers that
//! bank-switch by far call instead of INT 10h) live in the ROM at
//! [`crate::layout::VBE_OFFSET`]; [`rom_data`] builds them.

use ringside_cpu::{gpr, SegReg};
use ringside_devices::vga::dispi::{self, enable, reg};

use crate::call::Call;
use crate::layout::{BIOS_SEG, VBE_OFFSET};

/// AX for "function supported, succeeded" and "supported, failed".
const OK: u16 = 0x004F;
const FAILED: u16 = 0x014F;

/// Offsets inside the VBE data area of the ROM.
const OEM_STRING: u16 = 0x00;
const VENDOR_NAME: u16 = 0x20;
const PRODUCT_NAME: u16 = 0x40;
const PRODUCT_REV: u16 = 0x60;
const WINDOW_FUNCTION: u16 = 0x70;
const MODE_LIST: u16 = 0x80;
/// Bytes of the VBE data area.
pub const DATA_BYTES: usize = 0x100;

/// One VBE mode: number, width, height, bits per pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VbeMode {
    /// The mode number (without the LFB/no-clear bits).
    pub number: u16,
    /// Pixels per line.
    pub width: u16,
    /// Lines.
    pub height: u16,
    /// Bits per pixel: 4, 8, 15, 16, 24 or 32.
    pub bpp: u16,
}

const fn m(number: u16, width: u16, height: u16, bpp: u16) -> VbeMode {
    VbeMode {
        number,
        width,
        height,
        bpp,
    }
}

/// The modes we offer: the VESA-numbered ones the 16 MiB adapter can show
/// (0x104/0x106, 1024x768 and 1280x1024 at 4 bpp, need planes larger than
/// the VGA's 64 KiB), then 32 bpp modes from 0x140 (no VESA numbers exist
/// for them; 0x140 up is where Bochs and QEMU put theirs too).
pub const MODES: &[VbeMode] = &[
    m(0x100, 640, 400, 8),
    m(0x101, 640, 480, 8),
    m(0x102, 800, 600, 4),
    m(0x103, 800, 600, 8),
    m(0x105, 1024, 768, 8),
    m(0x107, 1280, 1024, 8),
    m(0x10D, 320, 200, 15),
    m(0x10E, 320, 200, 16),
    m(0x10F, 320, 200, 24),
    m(0x110, 640, 480, 15),
    m(0x111, 640, 480, 16),
    m(0x112, 640, 480, 24),
    m(0x113, 800, 600, 15),
    m(0x114, 800, 600, 16),
    m(0x115, 800, 600, 24),
    m(0x116, 1024, 768, 15),
    m(0x117, 1024, 768, 16),
    m(0x118, 1024, 768, 24),
    m(0x119, 1280, 1024, 15),
    m(0x11A, 1280, 1024, 16),
    m(0x11B, 1280, 1024, 24),
    m(0x140, 320, 200, 32),
    m(0x141, 640, 400, 32),
    m(0x142, 640, 480, 32),
    m(0x143, 800, 600, 32),
    m(0x144, 1024, 768, 32),
    m(0x145, 1280, 1024, 32),
    m(0x146, 320, 200, 8),
];

fn find(number: u16) -> Option<VbeMode> {
    MODES.iter().copied().find(|x| x.number == number & 0x1FF)
}

/// Bytes per scan line of a mode (for 4 bpp: per plane).
fn line_bytes(x: &VbeMode) -> u32 {
    match x.bpp {
        4 => x.width as u32 / 8,
        b => x.width as u32 * (b as u32).div_ceil(8),
    }
}

/// The VBE data area of the ROM: OEM strings, a window function (`mov
/// ax,4F05h / int 10h / retf`: VBE §4.9 lets it destroy AX and DX) and
/// the mode list ending in FFFFh.
pub fn rom_data() -> Vec<u8> {
    let mut d = vec![0u8; DATA_BYTES];
    let mut put = |at: u16, b: &[u8]| d[at as usize..at as usize + b.len()].copy_from_slice(b);
    put(OEM_STRING, b"Ringside VBE (Bochs dispi)\0");
    put(VENDOR_NAME, b"Ringside\0");
    put(PRODUCT_NAME, b"Ringside standard VGA\0");
    put(PRODUCT_REV, b"1.0\0");
    put(WINDOW_FUNCTION, &[0xB8, 0x05, 0x4F, 0xCD, 0x10, 0xCB]);
    let mut list: Vec<u8> = MODES.iter().flat_map(|x| x.number.to_le_bytes()).collect();
    list.extend_from_slice(&[0xFF, 0xFF]);
    put(MODE_LIST, &list);
    d
}

fn far(off: u16) -> u32 {
    (BIOS_SEG as u32) << 16 | (VBE_OFFSET + off) as u32
}

/// INT 10h AH=4Fh.
pub(crate) fn int10_4f(c: &mut Call) {
    let al = c.al();
    let ax = match al {
        0x00 => controller_info(c),
        0x01 => mode_info(c),
        0x02 => set_mode(c),
        0x03 => {
            let mode = current_mode(c);
            c.set_r16(gpr::EBX, mode);
            OK
        }
        0x04 => state(c),
        0x05 => bank(c),
        0x06 => scan_line(c),
        0x07 => display_start(c),
        0x08 => dac_width(c),
        0x09 => palette_data(c),
        // 0Ah (protected-mode interface), 15h (DDC) and the rest: not
        // offered, so a caller falls back to INT 10h.
        _ => FAILED,
    };
    c.set_ax(ax);
}

fn es_di(c: &Call) -> u32 {
    c.lin(SegReg::Es, c.r16(gpr::EDI))
}

/// 4F00h: the VbeInfoBlock at ES:DI (512 bytes when the caller put "VBE2"
/// there, else the 256 of VBE 1.x).
fn controller_info(c: &mut Call) -> u16 {
    let at = es_di(c);
    let mut sig = [0u8; 4];
    c.read_bytes(at, &mut sig);
    let vbe2 = &sig == b"VBE2" || &sig == b"VBE3";
    let mut b = vec![0u8; if vbe2 { 512 } else { 256 }];
    b[0..4].copy_from_slice(b"VESA");
    b[4..6].copy_from_slice(&0x0300u16.to_le_bytes());
    b[6..10].copy_from_slice(&far(OEM_STRING).to_le_bytes());
    // Capabilities: bit 0, the DAC can switch to 8 bits.
    b[10..14].copy_from_slice(&1u32.to_le_bytes());
    b[14..18].copy_from_slice(&far(MODE_LIST).to_le_bytes());
    let total = (dispi::VIDEO_MEMORY_BYTES / dispi::BANK_BYTES) as u16;
    b[18..20].copy_from_slice(&total.to_le_bytes());
    if vbe2 {
        b[20..22].copy_from_slice(&0x0100u16.to_le_bytes());
        b[22..26].copy_from_slice(&far(VENDOR_NAME).to_le_bytes());
        b[26..30].copy_from_slice(&far(PRODUCT_NAME).to_le_bytes());
        b[30..34].copy_from_slice(&far(PRODUCT_REV).to_le_bytes());
    }
    c.write_bytes(at, &b);
    OK
}

/// 4F01h: the ModeInfoBlock of mode CX at ES:DI.
fn mode_info(c: &mut Call) -> u16 {
    let Some(x) = find(c.r16(gpr::ECX)) else {
        return FAILED;
    };
    let lfb = c.pc.pci.vga_lfb_base();
    let line = line_bytes(&x);
    let planes = if x.bpp == 4 { 4 } else { 1 };
    let pages = (dispi::VIDEO_MEMORY_BYTES / planes / (line * x.height as u32)).clamp(1, 256) - 1;
    let mut b = [0u8; 256];
    let w16 =
        |b: &mut [u8; 256], at: usize, v: u16| b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    // Attributes: supported (0), extended information (1), colour (3),
    // graphics (4), linear frame buffer (7) when the BAR is decoded.
    let attr = 0x1B | if lfb.is_some() { 0x80 } else { 0 };
    w16(&mut b, 0, attr);
    b[2] = 0x07; // window A: exists, readable, writable
    w16(&mut b, 4, 64); // granularity, KiB
    w16(&mut b, 6, 64); // size, KiB
    w16(&mut b, 8, 0xA000);
    b[12..16].copy_from_slice(&far(WINDOW_FUNCTION).to_le_bytes());
    w16(&mut b, 16, line as u16);
    w16(&mut b, 18, x.width);
    w16(&mut b, 20, x.height);
    b[22] = 8;
    b[23] = 16;
    b[24] = planes as u8;
    b[25] = x.bpp as u8;
    b[26] = 1; // banks
    b[27] = match x.bpp {
        4 => 3, // planar
        8 => 4, // packed pixel
        _ => 6, // direct colour
    };
    b[29] = pages as u8;
    b[30] = 1;
    // Red, green, blue, reserved: mask size and field position.
    let masks: [u8; 8] = match x.bpp {
        15 => [5, 10, 5, 5, 5, 0, 1, 15],
        16 => [5, 11, 6, 5, 5, 0, 0, 0],
        24 => [8, 16, 8, 8, 8, 0, 0, 0],
        32 => [8, 16, 8, 8, 8, 0, 8, 24],
        _ => [0; 8],
    };
    b[31..39].copy_from_slice(&masks);
    // Direct colour: the reserved field is usable (bit 1) in 32 bpp.
    b[39] = if x.bpp == 32 { 0x02 } else { 0 };
    b[40..44].copy_from_slice(&lfb.unwrap_or(0).to_le_bytes());
    // VBE 3.0: the linear layout is the banked one.
    w16(&mut b, 50, line as u16);
    b[52] = pages as u8;
    b[53] = pages as u8;
    b[54..62].copy_from_slice(&masks);
    c.write_bytes(es_di(c), &b);
    OK
}

/// 4F02h: set mode BX (bit 14: linear frame buffer, bit 15: keep memory).
/// Numbers below 100h are VGA modes and go through AH=00h.
fn set_mode(c: &mut Call) -> u16 {
    let bx = c.r16(gpr::EBX);
    let number = bx & 0x3FFF;
    let keep = bx & 0x8000 != 0;
    if number < 0x100 {
        crate::video::set_mode(c, number as u8 | if keep { 0x80 } else { 0 });
        return if c.rd8(0x449) & 0x7F == number as u8 & 0x7F || number <= 2 {
            OK
        } else {
            FAILED
        };
    }
    // Bit 11 (refresh-rate CRTC values from ES:DI) is ignored: the
    // picture has no timing.
    let Some(x) = find(number) else {
        return FAILED;
    };
    let lfb = bx & 0x4000 != 0;
    if lfb && c.pc.pci.vga_lfb_base().is_none() {
        return FAILED;
    }
    let vga = &mut c.pc.vga;
    vga.dispi_write(reg::ENABLE, 0);
    // The legacy registers as for the matching VGA mode: planar for 4 bpp,
    // the 256-colour palette and graphics window for the others.
    vga.set_mode(if x.bpp == 4 { 0x12 } else { 0x13 });
    vga.dispi_write(reg::XRES, x.width);
    vga.dispi_write(reg::YRES, x.height);
    vga.dispi_write(reg::BPP, x.bpp);
    vga.dispi_write(reg::BANK, 0);
    let mut flags = enable::ENABLED;
    if lfb {
        flags |= enable::LFB;
    }
    if keep {
        flags |= enable::NOCLEARMEM;
    }
    vga.dispi_write(reg::ENABLE, flags);
    sync_window(c);
    if x.bpp == 4 && !keep {
        // The planes (the frame buffer clear is the machine's, on enable).
        for i in 0..0x10000u32 {
            c.wr8(0xA0000 + i, 0);
        }
    }
    // The BDA's mode byte stays a VGA number; 4F03h reads the adapter.
    c.wr8(0x449, 0x13 | if keep { 0x80 } else { 0 });
    OK
}

/// Map the 0xA0000 window as the adapter now wants it, before this
/// service's own stores through it (the machine would do it only after the
/// service, when the guest runs again).
pub(crate) fn sync_window(c: &mut Call) {
    let w = c.pc.vga.dispi().window_offset();
    if c.cpu.mem.vram_window() != w {
        c.cpu.mem.map_vram_window(w);
    }
}

/// The mode the adapter shows, as 4F03h reports it.
fn current_mode(c: &mut Call) -> u16 {
    let d = c.pc.vga.dispi();
    if d.enabled() {
        let (w, h, bpp) = d.geometry();
        let lfb = c.pc.vga.dispi_read(reg::ENABLE) & enable::LFB != 0;
        if let Some(x) = MODES
            .iter()
            .find(|x| (x.width as u32, x.height as u32, x.bpp as u32) == (w, h, bpp))
        {
            return x.number | if lfb { 0x4000 } else { 0 };
        }
        return 0x4000;
    }
    (c.rd8(0x449) & 0x7F) as u16
}

fn in_vbe_mode(c: &Call) -> bool {
    c.pc.vga.dispi().enabled()
}

/// 4F05h: BH=0 select bank DX for window BL (A only), BH=1 report it.
fn bank(c: &mut Call) -> u16 {
    if c.lo(gpr::EBX) != 0 || !in_vbe_mode(c) {
        return FAILED;
    }
    match c.hi(gpr::EBX) {
        0 => {
            let dx = c.r16(gpr::EDX);
            c.pc.vga.dispi_write(reg::BANK, dx);
            if c.pc.vga.dispi_read(reg::BANK) == dx {
                OK
            } else {
                FAILED
            }
        }
        1 => {
            let b = c.pc.vga.dispi_read(reg::BANK);
            c.set_r16(gpr::EDX, b);
            OK
        }
        _ => FAILED,
    }
}

/// 4F06h: logical scan line length (BL=0 set in pixels, 1 get, 2 set in
/// bytes, 3 get maximum); answers BX bytes, CX pixels, DX lines.
fn scan_line(c: &mut Call) -> u16 {
    if !in_vbe_mode(c) {
        return FAILED;
    }
    let (_, _, bpp) = c.pc.vga.dispi().geometry();
    let bytes_per_px = bpp.div_ceil(8).max(1);
    let px_per = |bytes: u32| {
        if bpp == 4 {
            bytes * 8
        } else {
            bytes / bytes_per_px
        }
    };
    let cx = c.r16(gpr::ECX) as u32;
    match c.lo(gpr::EBX) {
        0 => c.pc.vga.dispi_write(reg::VIRT_WIDTH, cx as u16),
        1 => {}
        2 => c.pc.vga.dispi_write(reg::VIRT_WIDTH, px_per(cx) as u16),
        3 => {
            let planes = if bpp == 4 { 4 } else { 1 };
            let max_bytes =
                (dispi::VIDEO_MEMORY_BYTES / planes / c.pc.vga.dispi().geometry().1.max(1))
                    .min(0xFFFF);
            let max_px = px_per(max_bytes).min(dispi::MAX_XRES as u32 * 4);
            c.set_r16(gpr::EBX, max_bytes as u16);
            c.set_r16(gpr::ECX, max_px as u16);
            return OK;
        }
        _ => return FAILED,
    }
    let d = c.pc.vga.dispi();
    let bytes = d.line_bytes();
    let lines = c.pc.vga.dispi_read(reg::VIRT_HEIGHT);
    let px = c.pc.vga.dispi_read(reg::VIRT_WIDTH);
    c.set_r16(gpr::EBX, bytes as u16);
    c.set_r16(gpr::ECX, px);
    c.set_r16(gpr::EDX, lines);
    OK
}

/// 4F07h: display start (BL=00h/80h set CX pixel, DX line; 01h get;
/// 02h/82h set from the byte address in ECX).
fn display_start(c: &mut Call) -> u16 {
    if !in_vbe_mode(c) {
        return FAILED;
    }
    match c.lo(gpr::EBX) {
        0x00 | 0x80 => {
            let (x, y) = (c.r16(gpr::ECX), c.r16(gpr::EDX));
            c.pc.vga.dispi_write(reg::X_OFFSET, x);
            c.pc.vga.dispi_write(reg::Y_OFFSET, y);
        }
        0x01 => {
            let x = c.pc.vga.dispi_read(reg::X_OFFSET);
            let y = c.pc.vga.dispi_read(reg::Y_OFFSET);
            c.set_hi(gpr::EBX, 0);
            c.set_r16(gpr::ECX, x);
            c.set_r16(gpr::EDX, y);
        }
        0x02 | 0x82 => {
            let d = c.pc.vga.dispi();
            let line = d.line_bytes().max(1);
            let (_, _, bpp) = d.geometry();
            let addr = c.r32(gpr::ECX);
            let x = match bpp {
                4 => (addr % line) * 8,
                b => (addr % line) / b.div_ceil(8),
            };
            c.pc.vga.dispi_write(reg::X_OFFSET, x as u16);
            c.pc.vga.dispi_write(reg::Y_OFFSET, (addr / line) as u16);
        }
        _ => return FAILED,
    }
    OK
}

/// 4F08h: DAC width (BL=0 set to BH bits: 8 or more gives 8, else 6;
/// BL=1 get). An 8-bit DAC exists only in a VBE mode.
fn dac_width(c: &mut Call) -> u16 {
    let e = c.pc.vga.dispi_read(reg::ENABLE);
    match c.lo(gpr::EBX) {
        0 => {
            if !in_vbe_mode(c) {
                c.set_hi(gpr::EBX, 6);
                return OK;
            }
            let wide = c.hi(gpr::EBX) >= 8;
            let e = if wide {
                e | enable::DAC_8BIT
            } else {
                e & !enable::DAC_8BIT
            };
            c.pc.vga.dispi_write(reg::ENABLE, e);
            c.set_hi(gpr::EBX, if wide { 8 } else { 6 });
            OK
        }
        1 => {
            let bits = if c.pc.vga.dispi().dac_8bit() { 8 } else { 6 };
            c.set_hi(gpr::EBX, bits);
            OK
        }
        _ => FAILED,
    }
}

/// 4F09h: palette data (BL=00h/80h set, 01h get) for CX entries from DX,
/// ES:DI holding blue, green, red, alignment bytes per entry.
fn palette_data(c: &mut Call) -> u16 {
    let count = c.r16(gpr::ECX) as u32;
    let first = c.r16(gpr::EDX) as u32;
    if first + count > 256 {
        return FAILED;
    }
    let at = es_di(c);
    match c.lo(gpr::EBX) {
        0x00 | 0x80 => {
            c.outb(0x3C8, first as u8);
            for i in 0..count {
                let mut e = [0u8; 4];
                c.read_bytes(at + 4 * i, &mut e);
                for comp in [e[2], e[1], e[0]] {
                    c.outb(0x3C9, comp);
                }
            }
        }
        0x01 => {
            c.outb(0x3C7, first as u8);
            for i in 0..count {
                let r = c.inb(0x3C9);
                let g = c.inb(0x3C9);
                let b = c.inb(0x3C9);
                c.write_bytes(at + 4 * i, &[b, g, r, 0]);
            }
        }
        _ => return FAILED,
    }
    OK
}

/// 4F04h: save/restore state. DL=0 size (BX 64-byte blocks) for the
/// states in CX (bit 0 VGA registers, 1 BIOS data, 2 DAC, 3 the VBE
/// registers); DL=1 save to ES:BX; DL=2 restore from ES:BX. Our layout:
/// the parts in bit order, each a fixed size.
fn state(c: &mut Call) -> u16 {
    let cx = c.r16(gpr::ECX) & 0x0F;
    let sizes = [VGA_REGS_BYTES, BDA_BYTES, DAC_BYTES, DISPI_BYTES];
    let total: usize = (0..4)
        .filter(|i| cx & (1 << i) != 0)
        .map(|i| sizes[i])
        .sum();
    let at = c.lin(SegReg::Es, c.r16(gpr::EBX));
    match c.lo(gpr::EDX) {
        0 => {
            c.set_r16(gpr::EBX, total.div_ceil(64) as u16);
            OK
        }
        1 => {
            let mut buf = Vec::with_capacity(total);
            for i in 0..4 {
                if cx & (1 << i) != 0 {
                    match i {
                        0 => save_vga_regs(c, &mut buf),
                        1 => {
                            for a in BDA_VIDEO {
                                buf.push(c.rd8(a));
                            }
                        }
                        2 => {
                            buf.push(c.inb(0x3C6));
                            c.outb(0x3C7, 0);
                            for _ in 0..768 {
                                buf.push(c.inb(0x3C9));
                            }
                        }
                        _ => {
                            for r in DISPI_SAVED {
                                let v = c.pc.vga.dispi_read(r);
                                buf.extend_from_slice(&v.to_le_bytes());
                            }
                        }
                    }
                }
            }
            c.write_bytes(at, &buf);
            OK
        }
        2 => {
            let mut buf = vec![0u8; total];
            c.read_bytes(at, &mut buf);
            let mut p = 0usize;
            for i in 0..4 {
                if cx & (1 << i) == 0 {
                    continue;
                }
                let part = &buf[p..p + sizes[i]];
                match i {
                    0 => restore_vga_regs(c, part),
                    1 => {
                        for (a, v) in BDA_VIDEO.zip(part.iter().copied()) {
                            c.wr8(a, v);
                        }
                    }
                    2 => {
                        c.outb(0x3C6, part[0]);
                        c.outb(0x3C8, 0);
                        for &v in &part[1..] {
                            c.outb(0x3C9, v);
                        }
                    }
                    _ => {
                        let v = |k: usize| u16::from_le_bytes([part[2 * k], part[2 * k + 1]]);
                        // Shape first with the interface off, then the rest.
                        c.pc.vga.dispi_write(reg::ENABLE, 0);
                        for (k, r) in DISPI_SAVED.iter().enumerate() {
                            if *r != reg::ENABLE {
                                c.pc.vga.dispi_write(*r, v(k));
                            }
                        }
                        let en = v(3) | enable::NOCLEARMEM;
                        c.pc.vga.dispi_write(reg::ENABLE, en);
                        for (k, r) in DISPI_SAVED.iter().enumerate().skip(4) {
                            c.pc.vga.dispi_write(*r, v(k));
                        }
                    }
                }
                p += sizes[i];
            }
            OK
        }
        _ => FAILED,
    }
}

const BDA_VIDEO: std::ops::Range<u32> = 0x449..0x46A;
const BDA_BYTES: usize = (0x46A - 0x449) as usize;
const DAC_BYTES: usize = 1 + 768;
const DISPI_SAVED: [u16; 8] = [
    reg::XRES,
    reg::YRES,
    reg::BPP,
    reg::ENABLE,
    reg::BANK,
    reg::VIRT_WIDTH,
    reg::X_OFFSET,
    reg::Y_OFFSET,
];
const DISPI_BYTES: usize = 2 * DISPI_SAVED.len();
/// Misc output, sequencer 0–4, CRTC 0–18h, graphics 0–8, attribute 0–14h.
const VGA_REGS_BYTES: usize = 1 + 5 + 0x19 + 9 + 0x15;

fn save_vga_regs(c: &mut Call, buf: &mut Vec<u8>) {
    buf.push(c.inb(0x3CC));
    let crtc = if c.inb(0x3CC) & 1 != 0 { 0x3D4 } else { 0x3B4 };
    for (port, n) in [(0x3C4u16, 5u8), (crtc, 0x19), (0x3CE, 9)] {
        for i in 0..n {
            c.outb(port, i);
            buf.push(c.inb(port + 1));
        }
    }
    for i in 0..0x15u8 {
        c.inb(crtc + 6);
        c.outb(0x3C0, i);
        buf.push(c.inb(0x3C1));
    }
    c.inb(crtc + 6);
    c.outb(0x3C0, 0x20);
}

fn restore_vga_regs(c: &mut Call, part: &[u8]) {
    c.outb(0x3C2, part[0]);
    let crtc = if part[0] & 1 != 0 { 0x3D4 } else { 0x3B4 };
    let mut p = 1;
    // CRTC 11h bit 7 write-protects 0–7: clear it first.
    c.outb(crtc, 0x11);
    c.outb(crtc + 1, 0);
    for (port, n) in [(0x3C4u16, 5u8), (crtc, 0x19), (0x3CE, 9)] {
        for i in 0..n {
            c.outb(port, i);
            c.outb(port + 1, part[p]);
            p += 1;
        }
    }
    c.inb(crtc + 6);
    for i in 0..0x15u8 {
        c.outb(0x3C0, i);
        c.outb(0x3C0, part[p]);
        p += 1;
    }
    c.outb(0x3C0, 0x20);
}
