//! Turning video memory into pixels: text modes (8- or 9-dot characters,
//! font from plane 2, blink, cursor, underline), planar 16-colour graphics
//! and 256-colour graphics (Chain-4 as in mode 13h, or unchained "Mode X"),
//! each at the mode's own resolution. Also the BIOS register tables for the
//! standard modes ([`Vga::set_mode`]).
//!
//! The frame size comes from the CRTC (horizontal display end × character
//! width, vertical display end ÷ line repeat), the memory layout from the
//! start address, offset, and byte/word/doubleword addressing, exactly as
//! the CRTC scans memory. Not modelled: pixel panning, line compare (split
//! screen), the CGA-compatible interleave of modes 4–6.

use super::Vga;

/// A rendered screen: `width` × `height` pixels, 4 bytes (R, G, B, A) each,
/// row by row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// RGBA bytes, `width * height * 4` of them.
    pub rgba: Vec<u8>,
}

impl Frame {
    fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            rgba: vec![0; width as usize * height as usize * 4],
        }
    }

    /// The (R, G, B, A) of pixel (x, y).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 4] {
        let i = (y as usize * self.width as usize + x as usize) * 4;
        [
            self.rgba[i],
            self.rgba[i + 1],
            self.rgba[i + 2],
            self.rgba[i + 3],
        ]
    }

    #[inline]
    fn put(&mut self, x: usize, y: usize, c: [u8; 4]) {
        let i = (y * self.width as usize + x) * 4;
        self.rgba[i..i + 4].copy_from_slice(&c);
    }
}

/// Largest frame we build, whatever the guest programs (guards against
/// garbage register values).
const MAX_DIM: u32 = 2048;

/// 6-bit DAC component to 8 bits (replicating the top bits, so 63 → 255).
fn c8(v: u8) -> u8 {
    (v << 2) | (v >> 4)
}

impl Vga {
    fn rgba(&self, dac_index: u8) -> [u8; 4] {
        let e = self.dac[(dac_index & self.pel_mask) as usize];
        if self.dispi.dac_8bit() {
            return [e[0], e[1], e[2], 0xFF];
        }
        [c8(e[0]), c8(e[1]), c8(e[2]), 0xFF]
    }

    /// A 4-bit attribute through the attribute controller's palette and
    /// colour select to a DAC index.
    fn attribute_to_dac(&self, i: u8) -> u8 {
        let mut p = self.ac[(i & 0x0F) as usize] & 0x3F;
        if self.ac[0x10] & 0x80 != 0 {
            p = (p & 0x0F) | ((self.ac[0x14] & 0x03) << 4);
        }
        p | ((self.ac[0x14] & 0x0C) << 4)
    }

    fn vertical_display_lines(&self) -> u32 {
        let c = &self.crtc;
        let vde = c[0x12] as u32 | ((c[7] as u32 >> 1) & 1) << 8 | ((c[7] as u32 >> 6) & 1) << 9;
        vde + 1
    }

    /// The CRTC start address and row stride (in character-clock units) and
    /// the shift from those units to plane addresses.
    fn scan_layout(&self) -> (usize, usize, u32) {
        let start = (self.crtc[0x0C] as usize) << 8 | self.crtc[0x0D] as usize;
        let stride = self.crtc[0x13] as usize * 2;
        let shift = if self.crtc[0x14] & 0x40 != 0 {
            2
        } else if self.crtc[0x17] & 0x40 == 0 {
            1
        } else {
            0
        };
        (start, stride, shift)
    }

    fn frame_number(&self) -> u64 {
        self.last_now / self.cycles_per_frame
    }
}

/// Render the screen as currently programmed; a VBE mode's pixels come
/// from `video_memory`.
pub(super) fn render(v: &Vga, video_memory: &[u8]) -> Frame {
    if v.dispi.enabled() {
        return render_dispi(v, video_memory);
    }
    let blanked = v.ac_index & 0x20 == 0 || v.seq[1] & 0x20 != 0;
    let graphics = v.gc[6] & 0x01 != 0;
    let lines = v.vertical_display_lines();
    let chars = v.crtc[1] as u32 + 1;
    if graphics {
        let repeat = ((v.crtc[9] & 0x1F) as u32 + 1) * if v.crtc[9] & 0x80 != 0 { 2 } else { 1 };
        let height = (lines / repeat).clamp(1, MAX_DIM);
        let shift256 = v.gc[5] & 0x40 != 0;
        let width = (chars * 8 / if shift256 { 2 } else { 1 }).clamp(1, MAX_DIM);
        let mut f = Frame::new(width, height);
        if blanked {
            fill_black(&mut f);
        } else if shift256 {
            render_256(v, &mut f);
        } else {
            render_planar(v, &mut f);
        }
        f
    } else {
        let cell_w = if v.seq[1] & 0x01 != 0 { 8 } else { 9 };
        let width = (chars * cell_w).clamp(1, MAX_DIM);
        let height = lines.clamp(1, MAX_DIM);
        let mut f = Frame::new(width, height);
        if blanked {
            fill_black(&mut f);
        } else {
            render_text(v, &mut f, cell_w as usize);
        }
        f
    }
}

/// The characters a text mode shows, row by row (trailing blanks trimmed,
/// characters outside printable ASCII as spaces), read the way the display
/// reads them (CRTC start address and row stride), without touching the
/// latches a CPU read would load. `None` in a graphics mode.
pub(super) fn text(v: &Vga) -> Option<String> {
    if v.gc[6] & 0x01 != 0 {
        return None;
    }
    let (start, stride, shift) = v.scan_layout();
    let cell_h = (v.crtc[9] & 0x1F) as usize + 1;
    let cols = (v.crtc[1] as usize + 1).min(MAX_DIM as usize);
    let rows = (v.vertical_display_lines() as usize).div_ceil(cell_h);
    let mut s = String::new();
    for row in 0..rows {
        let line: String = (0..cols)
            .map(|col| {
                let a = ((start + row * stride + col) << shift) & 0xFFFF;
                match v.vram[a] as u8 {
                    c @ 0x20..=0x7E => c as char,
                    _ => ' ',
                }
            })
            .collect();
        s.push_str(line.trim_end());
        s.push('\n');
    }
    Some(s)
}

/// A VBE mode: XRES x YRES from the display start, VIRT_WIDTH pixels per
/// line; 8 bpp through the DAC, 15/16 bpp as 5-5-5/5-6-5, 24/32 bpp as
/// blue, green, red (and an unused byte), each little-endian as Bochs and
/// QEMU store them; 4 bpp from the planes through the attribute palette.
/// Bytes past the end of video memory show black.
fn render_dispi(v: &Vga, mem: &[u8]) -> Frame {
    let d = &v.dispi;
    let (w, h, bpp) = d.geometry();
    let mut f = Frame::new(w.max(1), h.max(1));
    let start = d.start() as usize;
    let line = d.line_bytes() as usize;
    let bytes = super::dispi::bytes_per_pixel(bpp as u16) as usize;
    let at = |i: usize| mem.get(i).copied().unwrap_or(0);
    let scale5 = |c: u32| ((c << 3) | (c >> 2)) as u8;
    let scale6 = |c: u32| ((c << 2) | (c >> 4)) as u8;
    let mut dac = [[0u8; 4]; 256];
    for (i, c) in dac.iter_mut().enumerate() {
        *c = v.rgba(i as u8);
    }
    for y in 0..h as usize {
        let row = start + y * line;
        for x in 0..w as usize {
            let c = match bpp {
                4 => {
                    let a = (row + x / 8) & (super::PLANE_SIZE - 1);
                    let planes = v.vram[a];
                    let bit = 7 - (x & 7);
                    let mut idx = 0u8;
                    for p in 0..4 {
                        idx |= (((planes >> (8 * p + bit)) & 1) as u8) << p;
                    }
                    dac[v.attribute_to_dac(idx) as usize]
                }
                8 => dac[at(row + x) as usize],
                15 | 16 => {
                    let i = row + x * 2;
                    let p = at(i) as u32 | (at(i + 1) as u32) << 8;
                    if bpp == 15 {
                        [
                            scale5((p >> 10) & 31),
                            scale5((p >> 5) & 31),
                            scale5(p & 31),
                            0xFF,
                        ]
                    } else {
                        [
                            scale5((p >> 11) & 31),
                            scale6((p >> 5) & 63),
                            scale5(p & 31),
                            0xFF,
                        ]
                    }
                }
                _ => {
                    let i = row + x * bytes;
                    [at(i + 2), at(i + 1), at(i), 0xFF]
                }
            };
            f.put(x, y, c);
        }
    }
    f
}

fn fill_black(f: &mut Frame) {
    for px in f.rgba.chunks_exact_mut(4) {
        px.copy_from_slice(&[0, 0, 0, 0xFF]);
    }
}

fn render_text(v: &Vga, f: &mut Frame, cell_w: usize) {
    let (start, stride, shift) = v.scan_layout();
    let cell_h = (v.crtc[9] & 0x1F) as usize + 1;
    let cols = f.width as usize / cell_w;
    let rows = (f.height as usize).div_ceil(cell_h);
    let frame = v.frame_number();
    let blink_enabled = v.ac[0x10] & 0x08 != 0;
    let blink_on = (frame / 16).is_multiple_of(2);
    let cursor_on = (frame / 8).is_multiple_of(2);
    let line_graphics = v.ac[0x10] & 0x04 != 0;
    let mono_underline = v.ac[0x10] & 0x02 != 0;
    let underline_line = (v.crtc[0x14] & 0x1F) as usize;
    let cursor_loc = (v.crtc[0x0E] as usize) << 8 | v.crtc[0x0F] as usize;
    let cursor_start = (v.crtc[0x0A] & 0x1F) as usize;
    let cursor_end = (v.crtc[0x0B] & 0x1F) as usize;
    let cursor_enabled = v.crtc[0x0A] & 0x20 == 0;
    // Character map select: map A for attribute bit 3 set, map B otherwise.
    let s = v.seq[3];
    let map_a = ((s >> 5) & 1) << 2 | ((s >> 2) & 3);
    let map_b = ((s >> 4) & 1) << 2 | (s & 3);
    const MAP_BASE: [usize; 8] = [0, 0x4000, 0x8000, 0xC000, 0x2000, 0x6000, 0xA000, 0xE000];
    let mut colours = [[0u8; 4]; 16];
    for (i, c) in colours.iter_mut().enumerate() {
        *c = v.rgba(v.attribute_to_dac(i as u8));
    }
    for row in 0..rows {
        for col in 0..cols {
            let counter = start + row * stride + col;
            let a = (counter << shift) & 0xFFFF;
            let cell = v.vram[a];
            let ch = cell as u8 as usize;
            let attr = (cell >> 8) as u8;
            let mut fg = attr & 0x0F;
            let mut bg = attr >> 4;
            if blink_enabled {
                bg &= 7;
                if attr & 0x80 != 0 && !blink_on {
                    fg = bg;
                }
            }
            let map = if attr & 0x08 != 0 { map_a } else { map_b };
            let glyph = MAP_BASE[map as usize] + ch * 32;
            let is_cursor = cursor_enabled && cursor_on && counter == cursor_loc;
            let underline = mono_underline && attr & 0x07 == 0x01;
            for line in 0..cell_h {
                let y = row * cell_h + line;
                if y >= f.height as usize {
                    break;
                }
                let mut bits = (v.vram[(glyph + line) & 0xFFFF] >> 16) as u8 as u16;
                if (is_cursor && line >= cursor_start && line <= cursor_end)
                    || (underline && line == underline_line)
                {
                    bits = 0xFF;
                }
                // The ninth column repeats the eighth for the line-drawing
                // characters C0h–DFh, and is background otherwise.
                let ninth = cell_w == 9 && line_graphics && (0xC0..=0xDF).contains(&ch);
                bits = bits << 1 | (ninth && bits & 1 != 0) as u16;
                for x in 0..cell_w {
                    // Bit 8 is the first column, bit 0 the ninth.
                    let on = (bits >> (8 - x)) & 1 != 0;
                    let c = if on { fg } else { bg };
                    f.put(col * cell_w + x, y, colours[c as usize]);
                }
            }
        }
    }
}

fn render_planar(v: &Vga, f: &mut Frame) {
    let (start, stride, shift) = v.scan_layout();
    let plane_enable = (v.ac[0x12] & 0x0F) as u32;
    let mut colours = [[0u8; 4]; 16];
    for (i, c) in colours.iter_mut().enumerate() {
        *c = v.rgba(v.attribute_to_dac(i as u8));
    }
    // Each CRTC row is repeated on several scan lines (double scan, max
    // scan line); we render one pixel row per CRTC row (the mode's
    // resolution), so `y` counts CRTC rows.
    for y in 0..f.height as usize {
        for xb in 0..(f.width as usize).div_ceil(8) {
            let a = ((start + y * stride + xb) << shift) & 0xFFFF;
            let planes = v.vram[a];
            for bit in 0..8 {
                let x = xb * 8 + bit;
                if x >= f.width as usize {
                    break;
                }
                let s = 7 - bit;
                let mut idx = 0u32;
                for p in 0..4 {
                    idx |= ((planes >> (8 * p + s)) & 1) << p;
                }
                f.put(x, y, colours[(idx & plane_enable) as usize]);
            }
        }
    }
}

fn render_256(v: &Vga, f: &mut Frame) {
    let (start, stride, shift) = v.scan_layout();
    for y in 0..f.height as usize {
        for x in 0..f.width as usize {
            let a = ((start + y * stride + x / 4) << shift) & 0xFFFF;
            let idx = (v.vram[a] >> (8 * (x & 3))) as u8;
            f.put(x, y, v.rgba(idx));
        }
    }
}

/// Register values of a standard mode as the IBM VGA BIOS programs them.
pub(super) struct ModeTable {
    pub misc: u8,
    pub seq: [u8; 5],
    pub crtc: [u8; 0x19],
    pub gc: [u8; 9],
    pub ac: [u8; 0x15],
    pub text: bool,
}

const AC_TEXT: [u8; 0x15] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
    0x0C, 0x00, 0x0F, 0x08, 0x00,
];
const AC_EGA: [u8; 0x15] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B, 0x3C, 0x3D, 0x3E, 0x3F,
    0x01, 0x00, 0x0F, 0x00, 0x00,
];
const AC_CGA16: [u8; 0x15] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
    0x01, 0x00, 0x0F, 0x00, 0x00,
];
const GC_PLANAR: [u8; 9] = [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0F, 0xFF];

pub(super) fn mode_table(mode: u8) -> Option<ModeTable> {
    let t = match mode {
        0x03 => ModeTable {
            misc: 0x67,
            seq: [0x03, 0x00, 0x03, 0x00, 0x02],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00,
                0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF,
            ],
            gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF],
            ac: AC_TEXT,
            text: true,
        },
        0x07 => ModeTable {
            misc: 0x66,
            seq: [0x03, 0x00, 0x03, 0x00, 0x02],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E, 0x00, 0x00,
                0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x0F, 0x96, 0xB9, 0xA3, 0xFF,
            ],
            gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0A, 0x00, 0xFF],
            ac: [
                0x00, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x08, 0x10, 0x18, 0x18, 0x18, 0x18, 0x18,
                0x18, 0x18, 0x0E, 0x00, 0x0F, 0x08, 0x00,
            ],
            text: true,
        },
        0x0D => ModeTable {
            misc: 0x63,
            seq: [0x03, 0x09, 0x0F, 0x00, 0x06],
            crtc: [
                0x2D, 0x27, 0x28, 0x90, 0x2B, 0x80, 0xBF, 0x1F, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x14, 0x00, 0x96, 0xB9, 0xE3, 0xFF,
            ],
            gc: GC_PLANAR,
            ac: AC_CGA16,
            text: false,
        },
        0x0E => ModeTable {
            misc: 0x63,
            seq: [0x03, 0x01, 0x0F, 0x00, 0x06],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0xC1, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x00, 0x96, 0xB9, 0xE3, 0xFF,
            ],
            gc: GC_PLANAR,
            ac: AC_CGA16,
            text: false,
        },
        0x10 => ModeTable {
            misc: 0xA3,
            seq: [0x03, 0x01, 0x0F, 0x00, 0x06],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x83, 0x85, 0x5D, 0x28, 0x0F, 0x63, 0xBA, 0xE3, 0xFF,
            ],
            gc: GC_PLANAR,
            ac: AC_EGA,
            text: false,
        },
        0x12 => ModeTable {
            misc: 0xE3,
            seq: [0x03, 0x01, 0x0F, 0x00, 0x06],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0x0B, 0x3E, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0xEA, 0x8C, 0xDF, 0x28, 0x00, 0xE7, 0x04, 0xE3, 0xFF,
            ],
            gc: GC_PLANAR,
            ac: AC_EGA,
            text: false,
        },
        0x13 => ModeTable {
            misc: 0x63,
            seq: [0x03, 0x01, 0x0F, 0x00, 0x0E],
            crtc: [
                0x5F, 0x4F, 0x50, 0x82, 0x54, 0x80, 0xBF, 0x1F, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x40, 0x96, 0xB9, 0xA3, 0xFF,
            ],
            gc: [0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0F, 0xFF],
            ac: [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
                0x0E, 0x0F, 0x41, 0x00, 0x0F, 0x00, 0x00,
            ],
            text: false,
        },
        _ => return None,
    };
    Some(t)
}
