//! INT 10h: video services on the board's VGA.
//!
//! Modes are programmed by the VGA model's own table (`Vga::set_mode`, which
//! also loads our 8x16 font into plane 2); text goes through the VGA's
//! memory window exactly as a guest's stores would. Text output in
//! graphics modes is not drawn (the cursor moves); pixels work in mode 13h.
//! VBE (AH=4Fh) is in `vbe.rs`.

use ringside_cpu::{gpr, SegReg};

use crate::call::Call;
use crate::layout::{BIOS_SEG, FONT_OFFSET};

const BDA_MODE: u32 = 0x449;
const BDA_COLS: u32 = 0x44A;
const BDA_PAGE_SIZE: u32 = 0x44C;
const BDA_PAGE_START: u32 = 0x44E;
const BDA_CURSOR: u32 = 0x450;
const BDA_CURSOR_SHAPE: u32 = 0x460;
const BDA_PAGE: u32 = 0x462;
const BDA_CRTC: u32 = 0x463;
const BDA_MODE_CTL: u32 = 0x465;
const BDA_PALETTE: u32 = 0x466;
const BDA_ROWS: u32 = 0x484;
const BDA_CHAR_HEIGHT: u32 = 0x485;
const BDA_VIDEO_CTL: u32 = 0x487;
const BDA_SWITCHES: u32 = 0x488;
const BDA_VGA_FLAGS: u32 = 0x489;
const BDA_DCC: u32 = 0x48A;

/// What a mode looks like to the BIOS.
struct ModeInfo {
    text: bool,
    cols: u16,
    rows: u8,
    /// Where the CPU sees it.
    base: u32,
    page_size: u16,
}

fn mode_info(mode: u8) -> Option<ModeInfo> {
    let m = |text, cols, rows, base, page_size| ModeInfo {
        text,
        cols,
        rows,
        base,
        page_size,
    };
    Some(match mode {
        0x03 => m(true, 80, 25, 0xB8000, 0x1000),
        0x07 => m(true, 80, 25, 0xB0000, 0x1000),
        0x0D => m(false, 40, 25, 0xA0000, 0x2000),
        0x0E => m(false, 80, 25, 0xA0000, 0x4000),
        0x10 => m(false, 80, 25, 0xA0000, 0x8000),
        0x12 => m(false, 80, 30, 0xA0000, 0xA000),
        0x13 => m(false, 40, 25, 0xA0000, 0xFA00),
        _ => return None,
    })
}

fn current(c: &mut Call) -> ModeInfo {
    let mode = c.rd8(BDA_MODE);
    mode_info(mode & 0x7F).unwrap_or_else(|| mode_info(3).expect("mode 3"))
}

/// Set a video mode (AH=00h): registers, font, BDA, cleared screen.
pub(crate) fn set_mode(c: &mut Call, requested: u8) {
    let clear = requested & 0x80 == 0;
    let mut mode = requested & 0x7F;
    // CGA text modes 0–2 become mode 3 (the VGA table has 80x25 only).
    if mode <= 2 {
        mode = 3;
    }
    let Some(info) = mode_info(mode) else {
        log::debug!("INT 10h: video mode {mode:#04x} not supported; mode unchanged");
        return;
    };
    // A VGA mode ends any VBE mode.
    c.pc.vga
        .dispi_write(ringside_devices::vga::dispi::reg::ENABLE, 0);
    crate::vbe::sync_window(c);
    if !c.pc.vga.set_mode(mode) {
        return;
    }
    c.wr8(BDA_MODE, mode | (requested & 0x80));
    c.wr16(BDA_COLS, info.cols);
    c.wr16(BDA_PAGE_SIZE, info.page_size);
    c.wr16(BDA_PAGE_START, 0);
    for p in 0..8 {
        c.wr16(BDA_CURSOR + 2 * p, 0);
    }
    c.wr16(BDA_CURSOR_SHAPE, 0x0607);
    c.wr8(BDA_PAGE, 0);
    c.wr16(BDA_CRTC, if mode == 7 { 0x3B4 } else { 0x3D4 });
    c.wr8(BDA_MODE_CTL, if info.text { 0x29 } else { 0x1E });
    c.wr8(BDA_PALETTE, 0x30);
    c.wr8(BDA_ROWS, info.rows - 1);
    c.wr16(BDA_CHAR_HEIGHT, 16);
    c.wr8(BDA_VIDEO_CTL, 0x60 | (requested & 0x80));
    c.wr8(BDA_SWITCHES, 0xF9);
    c.wr8(BDA_VGA_FLAGS, 0x51);
    c.wr8(BDA_DCC, 0x08);
    if clear {
        if info.text {
            for i in 0..0x4000u32 {
                c.wr16(info.base + 2 * i, 0x0720);
            }
        } else {
            for i in 0..0x10000u32 {
                c.wr8(0xA0000 + i, 0);
            }
        }
    }
    update_cursor(c, 0);
}

/// The cursor of `page` as the BDA holds it, kept on the screen (the BDA
/// is guest memory: anything may be there).
fn cursor(c: &mut Call, page: u8) -> (u8, u8) {
    let v = c.rd16(BDA_CURSOR + 2 * (page as u32 & 7));
    let info = current(c);
    let col = (v as u8).min((info.cols - 1) as u8);
    let row = ((v >> 8) as u8).min(info.rows - 1);
    (col, row)
}

fn set_cursor(c: &mut Call, page: u8, col: u8, row: u8) {
    c.wr16(
        BDA_CURSOR + 2 * (page as u32 & 7),
        (row as u16) << 8 | col as u16,
    );
    update_cursor(c, page);
}

/// Move the hardware cursor (CRTC 0Eh/0Fh) if `page` is the one shown.
fn update_cursor(c: &mut Call, page: u8) {
    if page != c.rd8(BDA_PAGE) {
        return;
    }
    let (col, row) = cursor(c, page);
    let cols = c.rd16(BDA_COLS).max(1);
    let start = c.rd16(BDA_PAGE_START) / 2;
    let pos = start.wrapping_add(row as u16 * cols + col as u16);
    let crtc = c.rd16(BDA_CRTC);
    c.pc_crtc(crtc, 0x0E, (pos >> 8) as u8);
    c.pc_crtc(crtc, 0x0F, pos as u8);
}

impl Call<'_> {
    fn pc_crtc(&mut self, port: u16, index: u8, v: u8) {
        self.outb(port, index);
        self.outb(port + 1, v);
    }
}

fn cell_addr(info: &ModeInfo, page: u8, col: u8, row: u8) -> u32 {
    info.base
        + (page as u32 & 7) * info.page_size as u32
        + (row as u32 * info.cols as u32 + col as u32) * 2
}

/// Write `ch` (and `attr`, if given) at a position, `count` times.
fn write_cells(c: &mut Call, page: u8, ch: u8, attr: Option<u8>, count: u16) {
    let info = current(c);
    let (col, row) = cursor(c, page);
    if !info.text {
        return;
    }
    let first = row as u32 * info.cols as u32 + col as u32;
    let last = info.cols as u32 * info.rows as u32;
    for i in 0..count as u32 {
        if first + i >= last {
            break;
        }
        let a = cell_addr(&info, page, 0, 0) + (first + i) * 2;
        c.wr8(a, ch);
        if let Some(attr) = attr {
            c.wr8(a + 1, attr);
        }
    }
}

/// Scroll a window of `page` up (positive) or down by `lines`; 0 clears it.
#[allow(clippy::too_many_arguments)]
fn scroll(
    c: &mut Call,
    page: u8,
    lines: u8,
    up: bool,
    attr: u8,
    top: u8,
    left: u8,
    bottom: u8,
    right: u8,
) {
    let info = current(c);
    if !info.text {
        return;
    }
    let bottom = bottom.min(info.rows - 1);
    let right = right.min((info.cols - 1) as u8);
    if top > bottom || left > right {
        return;
    }
    let height = bottom - top + 1;
    let lines = if lines == 0 || lines > height {
        height
    } else {
        lines
    };
    let base = cell_addr(&info, page, 0, 0);
    let at = |col: u8, row: u8| base + (row as u32 * info.cols as u32 + col as u32) * 2;
    for i in 0..height {
        let row = if up { top + i } else { bottom - i };
        let src = if up {
            row as i32 + lines as i32
        } else {
            row as i32 - lines as i32
        };
        for col in left..=right {
            let v = if (top as i32..=bottom as i32).contains(&src) {
                c.rd16(at(col, src as u8))
            } else {
                (attr as u16) << 8 | b' ' as u16
            };
            c.wr16(at(col, row), v);
        }
    }
}

/// AH=0Eh: write a character as a terminal would (BEL, BS, CR, LF
/// understood), scrolling at the bottom.
pub(crate) fn teletype(c: &mut Call, ch: u8, attr: u8) {
    let page = c.rd8(BDA_PAGE);
    let info = current(c);
    let (mut col, mut row) = cursor(c, page);
    match ch {
        0x07 => return,
        0x08 => col = col.saturating_sub(1),
        b'\r' => col = 0,
        b'\n' => row += 1,
        _ => {
            if info.text {
                let a = cell_addr(&info, page, col, row);
                c.wr8(a, ch);
            }
            let _ = attr;
            col += 1;
        }
    }
    if col as u16 >= info.cols {
        col = 0;
        row += 1;
    }
    if row >= info.rows {
        // New lines take the attribute of the character at the cursor.
        let keep = if info.text {
            let a = cell_addr(&info, page, col, info.rows - 1);
            c.rd8(a + 1)
        } else {
            0
        };
        scroll(
            c,
            page,
            1,
            true,
            keep,
            0,
            0,
            info.rows - 1,
            (info.cols - 1) as u8,
        );
        row = info.rows - 1;
    }
    set_cursor(c, page, col, row);
}

/// The text on screen page 0 as lines (trailing spaces trimmed): for tests
/// and headless dumps.
pub fn text_screen(vga: &mut ringside_devices::vga::Vga) -> String {
    let mut s = String::new();
    for row in 0..25u32 {
        let mut line = String::new();
        for col in 0..80u32 {
            let ch = vga.mem_read(0xB8000 + (row * 80 + col) * 2);
            line.push(if (0x20..0x7F).contains(&ch) {
                ch as char
            } else {
                ' '
            });
        }
        s.push_str(line.trim_end());
        s.push('\n');
    }
    s
}

fn dac_write(c: &mut Call, index: u8, rgb: [u8; 3]) {
    c.outb(0x3C8, index);
    for v in rgb {
        c.outb(0x3C9, v & 0x3F);
    }
}

fn dac_read(c: &mut Call, index: u8) -> [u8; 3] {
    c.outb(0x3C7, index);
    [c.inb(0x3C9), c.inb(0x3C9), c.inb(0x3C9)]
}

/// Write an attribute-controller register (resetting its flip-flop
/// first) and turn the display back on (index bit 5).
fn ac_write(c: &mut Call, index: u8, v: u8) {
    let status = c.rd16(BDA_CRTC) + 6;
    c.inb(status);
    c.outb(0x3C0, index & 0x1F);
    c.outb(0x3C0, v);
    c.outb(0x3C0, 0x20);
}

fn ac_read(c: &mut Call, index: u8) -> u8 {
    let status = c.rd16(BDA_CRTC) + 6;
    c.inb(status);
    c.outb(0x3C0, index & 0x1F);
    let v = c.inb(0x3C1);
    c.inb(status);
    c.outb(0x3C0, 0x20);
    v
}

/// INT 10h.
pub(crate) fn int10(c: &mut Call) {
    let ah = c.ah();
    let al = c.al();
    let bh = c.hi(gpr::EBX);
    let bl = c.lo(gpr::EBX);
    match ah {
        0x00 => {
            set_mode(c, al);
            // AL: the "mode set" byte some callers check (30h for text).
            let m = c.rd8(BDA_MODE) & 0x7F;
            c.set_al(if m <= 7 && m != 6 { 0x30 } else { 0x20 });
        }
        0x01 => {
            let cx = c.r16(gpr::ECX);
            c.wr16(BDA_CURSOR_SHAPE, cx);
            let crtc = c.rd16(BDA_CRTC);
            // The BDA keeps CGA-style scan lines; the 16-line font wants them
            // scaled (6–7 → 13–14).
            let (start, end) = ((cx >> 8) as u8, cx as u8);
            let scale = |v: u8| {
                if v & 0x1F <= 7 {
                    (v & 0x1F) * 2
                } else {
                    v & 0x1F
                }
            };
            c.pc_crtc(
                crtc,
                0x0A,
                if start & 0x20 != 0 {
                    0x20
                } else {
                    scale(start)
                },
            );
            c.pc_crtc(crtc, 0x0B, scale(end));
        }
        0x02 => {
            let dx = c.r16(gpr::EDX);
            set_cursor(c, bh, dx as u8, (dx >> 8) as u8);
        }
        0x03 => {
            let (col, row) = cursor(c, bh);
            let shape = c.rd16(BDA_CURSOR_SHAPE);
            c.set_r16(gpr::EDX, (row as u16) << 8 | col as u16);
            c.set_r16(gpr::ECX, shape);
            c.set_ax(0);
        }
        0x05 => {
            let info = current(c);
            let page = al & 7;
            c.wr8(BDA_PAGE, page);
            let start = page as u16 * info.page_size;
            c.wr16(BDA_PAGE_START, start);
            let crtc = c.rd16(BDA_CRTC);
            let words = if info.text { start / 2 } else { start };
            c.pc_crtc(crtc, 0x0C, (words >> 8) as u8);
            c.pc_crtc(crtc, 0x0D, words as u8);
            update_cursor(c, page);
        }
        0x06 | 0x07 => {
            let cx = c.r16(gpr::ECX);
            let dx = c.r16(gpr::EDX);
            let page = c.rd8(BDA_PAGE);
            scroll(
                c,
                page,
                al,
                ah == 0x06,
                bh,
                (cx >> 8) as u8,
                cx as u8,
                (dx >> 8) as u8,
                dx as u8,
            );
        }
        0x08 => {
            let info = current(c);
            let (col, row) = cursor(c, bh);
            if info.text {
                let a = cell_addr(&info, bh, col, row);
                let v = c.rd16(a);
                c.set_ax(v);
            } else {
                c.set_ax(0);
            }
        }
        0x09 => {
            let cx = c.r16(gpr::ECX);
            write_cells(c, bh, al, Some(bl), cx);
        }
        0x0A => {
            let cx = c.r16(gpr::ECX);
            write_cells(c, bh, al, None, cx);
        }
        0x0B => {} // CGA palette: nothing to do on VGA text
        0x0C => {
            // Write pixel (mode 13h): AL colour, CX x, DX y.
            if c.rd8(BDA_MODE) & 0x7F == 0x13 {
                let (x, y) = (c.r16(gpr::ECX) as u32, c.r16(gpr::EDX) as u32);
                if x < 320 && y < 200 {
                    c.wr8(0xA0000 + y * 320 + x, al);
                }
            }
        }
        0x0D => {
            if c.rd8(BDA_MODE) & 0x7F == 0x13 {
                let (x, y) = (c.r16(gpr::ECX) as u32, c.r16(gpr::EDX) as u32);
                let v = if x < 320 && y < 200 {
                    c.rd8(0xA0000 + y * 320 + x)
                } else {
                    0
                };
                c.set_al(v);
            }
        }
        0x0E => teletype(c, al, bl),
        0x0F => {
            let mode = c.rd8(BDA_MODE);
            let cols = c.rd16(BDA_COLS) as u8;
            let page = c.rd8(BDA_PAGE);
            c.set_ax((cols as u16) << 8 | mode as u16);
            c.set_hi(gpr::EBX, page);
        }
        0x10 => palette(c, al),
        0x11 => font(c, al),
        0x12 => match bl {
            0x10 => {
                // EGA/VGA information: colour, 256 KiB, no features.
                c.set_r16(gpr::EBX, 0x0003);
                c.set_r16(gpr::ECX, 0x0009);
            }
            0x30..=0x36 => c.set_al(0x12), // "supported"
            _ => {}
        },
        0x13 => write_string(c),
        0x1A => {
            if al == 0 {
                c.set_al(0x1A);
                c.set_r16(gpr::EBX, 0x0008); // VGA with colour display
            } else {
                c.set_al(0x1A);
            }
        }
        // VBE 3.0 on the board's Bochs/QEMU dispi interface.
        0x4F => crate::vbe::int10_4f(c),
        _ => log::debug!("INT 10h AH={ah:02X}: not implemented"),
    }
}

/// AH=10h: palette registers and the DAC.
fn palette(c: &mut Call, al: u8) {
    let bx = c.r16(gpr::EBX);
    match al {
        0x00 => ac_write(c, bx as u8, (bx >> 8) as u8),
        0x01 => ac_write(c, 0x11, (bx >> 8) as u8),
        0x02 => {
            let at = c.lin(SegReg::Es, c.r16(gpr::EDX));
            for i in 0..16 {
                let v = c.rd8(at + i);
                ac_write(c, i as u8, v);
            }
            let v = c.rd8(at + 16);
            ac_write(c, 0x11, v);
        }
        0x03 => {
            let mode = ac_read(c, 0x10);
            let v = if bx & 1 != 0 {
                mode | 0x08
            } else {
                mode & !0x08
            };
            ac_write(c, 0x10, v);
        }
        0x07 => {
            let v = ac_read(c, bx as u8);
            c.set_hi(gpr::EBX, v);
        }
        0x08 => {
            let v = ac_read(c, 0x11);
            c.set_hi(gpr::EBX, v);
        }
        0x10 => {
            let (dh, ch, cl) = (c.hi(gpr::EDX), c.hi(gpr::ECX), c.lo(gpr::ECX));
            dac_write(c, bx as u8, [dh, ch, cl]);
        }
        0x12 => {
            let at = c.lin(SegReg::Es, c.r16(gpr::EDX));
            let count = c.r16(gpr::ECX) as u32;
            for i in 0..count.min(256) {
                let rgb = [
                    c.rd8(at + 3 * i),
                    c.rd8(at + 3 * i + 1),
                    c.rd8(at + 3 * i + 2),
                ];
                dac_write(c, (bx as u32 + i) as u8, rgb);
            }
        }
        0x15 => {
            let [r, g, b] = dac_read(c, bx as u8);
            c.set_hi(gpr::EDX, r);
            c.set_r16(gpr::ECX, (g as u16) << 8 | b as u16);
        }
        0x17 => {
            let at = c.lin(SegReg::Es, c.r16(gpr::EDX));
            let count = c.r16(gpr::ECX) as u32;
            for i in 0..count.min(256) {
                let rgb = dac_read(c, (bx as u32 + i) as u8);
                c.write_bytes(at + 3 * i, &rgb);
            }
        }
        0x1A => c.set_r16(gpr::EBX, 0),
        _ => log::debug!("INT 10h AX=10{al:02X}: not implemented"),
    }
}

/// AH=11h: fonts. Only our 8x16 font exists; the 8x8 and 8x14 requests
/// get it too (and say so in CX).
fn font(c: &mut Call, al: u8) {
    match al {
        0x00 | 0x10 => {
            // User font: ES:BP, CX glyphs from DX, BH bytes each.
            let at = c.lin(SegReg::Es, c.r16(gpr::EBP));
            let count = c.r16(gpr::ECX) as usize;
            let first = c.r16(gpr::EDX) as usize;
            let height = (c.hi(gpr::EBX) as usize).clamp(1, 32);
            let mut glyphs = [0u8; 256 * 32];
            for ch in 0..256 {
                for line in 0..height {
                    glyphs[ch * height + line] = c.pc.vga.plane_byte(2, ch * 32 + line);
                }
            }
            for i in 0..count.min(256 - first.min(256)) {
                for line in 0..height {
                    glyphs[(first + i) * height + line] = c.rd8(at + (i * height + line) as u32);
                }
            }
            c.pc.vga.load_font(&glyphs[..256 * height], height);
        }
        0x01 | 0x02 | 0x04 | 0x11 | 0x12 | 0x14 => {
            c.pc.vga.load_font(ringside_devices::vga::font_8x16(), 16);
        }
        0x30 => {
            c.set_seg(SegReg::Es, BIOS_SEG);
            c.set_r16(gpr::EBP, FONT_OFFSET);
            c.set_r16(gpr::ECX, 16);
            let rows = c.rd8(BDA_ROWS);
            c.set_lo(gpr::EDX, rows);
        }
        _ => log::debug!("INT 10h AX=11{al:02X}: not implemented"),
    }
}

/// AH=13h: write string ES:BP, CX characters, at DH,DL on page BH; AL
/// bit 0 moves the cursor, bit 1 means the string holds attributes.
fn write_string(c: &mut Call) {
    let al = c.al();
    let page = c.hi(gpr::EBX);
    let mut attr = c.lo(gpr::EBX);
    let count = c.r16(gpr::ECX);
    let dx = c.r16(gpr::EDX);
    let at = c.lin(SegReg::Es, c.r16(gpr::EBP));
    let saved = cursor(c, page);
    let shown = c.rd8(BDA_PAGE);
    // Teletype writes to the shown page; point it at ours meanwhile.
    c.wr8(BDA_PAGE, page);
    set_cursor(c, page, dx as u8, (dx >> 8) as u8);
    let mut p = at;
    for _ in 0..count {
        let ch = c.rd8(p);
        p += 1;
        if al & 2 != 0 {
            attr = c.rd8(p);
            p += 1;
        }
        if !matches!(ch, 7 | 8 | 10 | 13) {
            let info = current(c);
            let (col, row) = cursor(c, page);
            if info.text {
                let a = cell_addr(&info, page, col, row);
                c.wr8(a + 1, attr);
            }
        }
        teletype(c, ch, attr);
    }
    c.wr8(BDA_PAGE, shown);
    if al & 1 == 0 {
        set_cursor(c, page, saved.0, saved.1);
    } else {
        update_cursor(c, page);
    }
}
