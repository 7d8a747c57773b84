//! VGA: the registers (sequencer, CRTC, graphics controller, attribute
//! controller, DAC, misc output, input status), 256 KiB of video memory in
//! four 64 KiB planes behind the 0xA0000–0xBFFFF window, and rendering of
//! the current screen into an RGBA [`Frame`] on demand ([`render`]).
//!
//! Register facts come from the IBM VGA technical reference as commonly
//! documented (e.g. the FreeVGA register descriptions): write modes 0–3 with
//! rotate, set/reset, logical function and bit mask against the latches;
//! read modes 0 (plane select) and 1 (colour compare); Chain-4 (plane =
//! address bits 0–1, every fourth byte of each plane used) and odd/even
//! (plane = address bit 0).
//!
//! Memory layout: `vram[a]` holds the four plane bytes at plane address
//! `a` (plane p in byte p), so one load fills the latches.
//!
//! VBE: the Bochs/QEMU dispi registers ([`dispi`]) select a packed-pixel
//! or 4 bpp mode over 16 MiB of video memory. That memory is the memory
//! map's (`ringside_mmu::PhysMem`'s video memory, behind PCI BAR0 and the
//! bank window), not this struct's: [`Vga::render_with`] reads it. The
//! legacy planes stay here, so a planar or text mode works exactly as
//! before; unlike QEMU, the frame buffer's first 256 KiB do not alias the
//! planes.
//!
//! Time: input status 1 reports vertical retrace and display-enable from
//! the virtual clock the board passes in (`now`, in CPU cycles): a 70 Hz
//! frame of 449 lines, as mode 3 scans. No host clock is read.

pub mod dispi;
mod font;
mod render;

pub use dispi::Dispi;
pub use font::{font_8x16, GLYPH_BYTES};
pub use render::Frame;

/// First address of the legacy video memory window.
pub const WINDOW_BASE: u32 = 0xA0000;
/// Last address of the legacy video memory window.
pub const WINDOW_LAST: u32 = 0xBFFFF;

const PLANE_SIZE: usize = 0x10000;

/// Lines per frame and the line where vertical retrace starts and ends
/// (a 70 Hz, 449-line frame with 400 visible lines).
const LINES_PER_FRAME: u64 = 449;
const VISIBLE_LINES: u64 = 400;
const VRETRACE_FIRST: u64 = 412;
const VRETRACE_LAST: u64 = 413;
const FRAME_RATE_HZ: u64 = 70;

// Sequencer memory mode bits.
const SEQ4_ODD_EVEN_OFF: u8 = 0x04;
const SEQ4_CHAIN4: u8 = 0x08;

/// The VGA adapter.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Vga {
    misc: u8,
    feature_control: u8,
    seq_index: u8,
    seq: [u8; 8],
    crtc_index: u8,
    crtc: [u8; 0x19],
    gc_index: u8,
    gc: [u8; 9],
    ac_index: u8,
    /// false: the next write to 0x3C0 is an index; true: data.
    ac_flip_flop: bool,
    ac: [u8; 0x15],
    dac_write_index: u8,
    dac_read_index: u8,
    /// Component (0–2) of the current DAC entry.
    dac_write_component: u8,
    dac_read_component: u8,
    /// The last DAC index write was to the read index (3C7h reads 3).
    dac_reading: bool,
    dac_write_latch: [u8; 3],
    /// 256 entries of 6-bit red, green, blue.
    #[serde(with = "crate::snapshot::big_array")]
    dac: [[u8; 3]; 256],
    pel_mask: u8,
    vram: Box<[u32]>,
    latch: u32,
    cycles_per_frame: u64,
    /// The virtual time of the last port access (blink phase for `render`).
    last_now: u64,
    /// The Bochs/QEMU VBE interface (ports 0x1CE/0x1CF).
    dispi: Dispi,
}

impl std::fmt::Debug for Vga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vga")
            .field("misc", &self.misc)
            .field("seq", &self.seq)
            .field("gc", &self.gc)
            .finish_non_exhaustive()
    }
}

/// Spread the low four bits of `m` to a mask with 0xFF in byte p for bit p.
#[inline]
fn expand(m: u8) -> u32 {
    let mut v = 0u32;
    for p in 0..4 {
        if m & (1 << p) != 0 {
            v |= 0xFF << (8 * p);
        }
    }
    v
}

impl Vga {
    /// A VGA at power-on for a CPU of `cpu_hz` (the virtual clock's rate).
    /// Registers are zero until the BIOS programs a mode; the DAC and the
    /// attribute palette are left as the BIOS would load them for mode 3.
    pub fn new(cpu_hz: u64) -> Vga {
        let mut v = Vga {
            misc: 0,
            feature_control: 0,
            seq_index: 0,
            seq: [0; 8],
            crtc_index: 0,
            crtc: [0; 0x19],
            gc_index: 0,
            gc: [0; 9],
            ac_index: 0,
            ac_flip_flop: false,
            ac: [0; 0x15],
            dac_write_index: 0,
            dac_read_index: 0,
            dac_write_component: 0,
            dac_read_component: 0,
            dac_reading: false,
            dac_write_latch: [0; 3],
            dac: [[0; 3]; 256],
            pel_mask: 0xFF,
            vram: vec![0u32; PLANE_SIZE].into_boxed_slice(),
            latch: 0,
            cycles_per_frame: (cpu_hz / FRAME_RATE_HZ).max(LINES_PER_FRAME),
            last_now: 0,
            dispi: Dispi::default(),
        };
        v.reset();
        v
    }

    /// Board reset: registers to power-on values (video memory keeps its
    /// contents, as on real hardware).
    pub fn reset(&mut self) {
        self.misc = 0;
        self.feature_control = 0;
        self.seq = [0; 8];
        self.crtc = [0; 0x19];
        self.gc = [0; 9];
        self.ac = [0; 0x15];
        self.ac_flip_flop = false;
        self.ac_index = 0;
        self.pel_mask = 0xFF;
        self.dac = default_dac();
        self.latch = 0;
        self.dispi.reset();
    }

    /// The VBE interface's registers.
    pub fn dispi(&self) -> &Dispi {
        &self.dispi
    }

    /// The VBE interface, for the machine (pending clears) and the BIOS.
    pub fn dispi_mut(&mut self) -> &mut Dispi {
        &mut self.dispi
    }

    /// Write a VBE interface register (as an `OUT` pair to 0x1CE/0x1CF).
    pub fn dispi_write(&mut self, index: u16, v: u16) {
        self.dispi.write(dispi::INDEX_PORT, index);
        self.dispi.write(dispi::DATA_PORT, v);
    }

    /// Read a VBE interface register.
    pub fn dispi_read(&mut self, index: u16) -> u16 {
        self.dispi.write(dispi::INDEX_PORT, index);
        self.dispi.read(dispi::DATA_PORT)
    }

    /// Program the registers for a standard BIOS mode (3h, 7h, 0Dh, 0Eh,
    /// 10h, 12h, 13h) the way a video BIOS does, and load our font into
    /// plane 2 for the text modes. For tests and for our own BIOS's INT 10h.
    /// Returns false for a mode this table does not have.
    pub fn set_mode(&mut self, mode: u8) -> bool {
        let Some(t) = render::mode_table(mode) else {
            return false;
        };
        self.misc = t.misc;
        self.seq[..5].copy_from_slice(&t.seq);
        self.crtc.copy_from_slice(&t.crtc);
        self.gc.copy_from_slice(&t.gc);
        self.ac.copy_from_slice(&t.ac);
        self.ac_index = 0x20;
        self.dac = if mode == 0x13 {
            dac_256()
        } else {
            default_dac()
        };
        if t.text {
            self.load_font(font::font_8x16(), 16);
        }
        true
    }

    /// Copy `font` (256 glyphs of `height` lines) into plane 2, character
    /// map 0, 32 bytes per glyph.
    pub fn load_font(&mut self, font: &[u8], height: usize) {
        for c in 0..256 {
            for line in 0..32 {
                let b = if line < height {
                    font.get(c * height + line).copied().unwrap_or(0)
                } else {
                    0
                };
                let a = c * 32 + line;
                self.vram[a] = (self.vram[a] & !0x00FF_0000) | (b as u32) << 16;
            }
        }
    }

    /// The byte of plane `plane` at plane address `addr` (for tests and the
    /// debugger).
    pub fn plane_byte(&self, plane: usize, addr: usize) -> u8 {
        (self.vram[addr & (PLANE_SIZE - 1)] >> (8 * (plane & 3))) as u8
    }

    /// A DAC entry as 6-bit (red, green, blue).
    pub fn dac_entry(&self, i: u8) -> [u8; 3] {
        self.dac[i as usize]
    }

    /// The DAC's component width as a mask: 6 bits, or 8 in a VBE mode
    /// that asked for an 8-bit DAC.
    fn dac_mask(&self) -> u8 {
        if self.dispi.dac_8bit() {
            0xFF
        } else {
            0x3F
        }
    }

    fn color(&self) -> bool {
        self.misc & 1 != 0
    }

    /// The VGA's ports: the standard block and the Bochs VBE (DISPI)
    /// index/data pair.
    pub const PORTS: &[std::ops::RangeInclusive<u16>] =
        &[0x3B0..=0x3DF, dispi::INDEX_PORT..=dispi::DATA_PORT_ALIAS];

    /// Whether `port` is one of the VGA's.
    pub fn claims(port: u16) -> bool {
        matches!(port, 0x3B0..=0x3DF) || Dispi::claims(port)
    }

    /// Where the CPU's address lands: the offset inside the window the
    /// graphics controller maps, or `None` outside it.
    fn window_offset(&self, addr: u32) -> Option<u32> {
        let a = addr.wrapping_sub(WINDOW_BASE);
        if self.dispi.enabled() {
            // A VBE mode shows one 64 KiB bank at 0xA0000; packed-pixel
            // modes are served from video memory by the memory map, so
            // only a 4 bpp mode's planes come here.
            return (self.dispi.window_offset().is_none() && a < 0x10000).then_some(a);
        }
        match (self.gc[6] >> 2) & 3 {
            0 => (a < 0x20000).then_some(a),
            1 => (a < 0x10000).then_some(a),
            2 => a.checked_sub(0x10000).filter(|&o| o < 0x8000),
            _ => a.checked_sub(0x18000).filter(|&o| o < 0x8000),
        }
    }

    /// CPU read of one byte of the window (loads the latches).
    pub fn mem_read(&mut self, addr: u32) -> u8 {
        let Some(off) = self.window_offset(addr) else {
            return 0xFF;
        };
        let off = off as usize;
        let (a, plane) = if self.seq[4] & SEQ4_CHAIN4 != 0 {
            (off & 0xFFFC, off & 3)
        } else if self.gc[5] & 0x10 != 0 {
            // Odd/even read: bit 0 picks the plane within the pair the
            // read map select chooses.
            (off & 0xFFFE, (self.gc[4] as usize & 2) | (off & 1))
        } else {
            (off & 0xFFFF, self.gc[4] as usize & 3)
        };
        self.latch = self.vram[a];
        if self.gc[5] & 0x08 == 0 {
            return (self.latch >> (8 * plane)) as u8;
        }
        // Read mode 1: a bit is 1 where every plane enabled by colour don't
        // care matches the colour compare value.
        let care = expand(self.gc[7]);
        let diff = (self.latch ^ expand(self.gc[2])) & care;
        let any = (diff | diff >> 8 | diff >> 16 | diff >> 24) as u8;
        !any
    }

    /// CPU write of one byte into the window, through the write mode logic.
    pub fn mem_write(&mut self, addr: u32, v: u8) {
        let Some(off) = self.window_offset(addr) else {
            return;
        };
        let off = off as usize;
        let (a, planes) = if self.seq[4] & SEQ4_CHAIN4 != 0 {
            (off & 0xFFFC, 1u8 << (off & 3))
        } else if self.seq[4] & SEQ4_ODD_EVEN_OFF == 0 {
            (off & 0xFFFE, 0b0101u8 << (off & 1))
        } else {
            (off & 0xFFFF, 0xF)
        };
        let planes = planes & self.seq[2] & 0x0F;
        if planes == 0 {
            return;
        }
        let data = self.write_logic(v);
        let pm = expand(planes);
        self.vram[a] = (self.vram[a] & !pm) | (data & pm);
    }

    /// The four plane bytes a CPU write of `v` produces (before the map
    /// mask), per the write mode.
    fn write_logic(&self, v: u8) -> u32 {
        let rot = self.gc[3] & 7;
        let func = (self.gc[3] >> 3) & 3;
        let mut bit_mask = self.gc[8];
        let set_reset = expand(self.gc[0]);
        let data = match self.gc[5] & 3 {
            0 => {
                let r = v.rotate_right(rot as u32) as u32 * 0x0101_0101;
                let sre = expand(self.gc[1]);
                (r & !sre) | (set_reset & sre)
            }
            1 => return self.latch,
            2 => expand(v),
            _ => {
                bit_mask &= v.rotate_right(rot as u32);
                set_reset
            }
        };
        let data = match func {
            0 => data,
            1 => data & self.latch,
            2 => data | self.latch,
            _ => data ^ self.latch,
        };
        let m = bit_mask as u32 * 0x0101_0101;
        (data & m) | (self.latch & !m)
    }

    fn vretrace_and_display(&self, now: u64) -> u8 {
        let pos = now % self.cycles_per_frame;
        let cycles_per_line = self.cycles_per_frame / LINES_PER_FRAME;
        let line = pos / cycles_per_line;
        let in_line = pos % cycles_per_line;
        let hblank = in_line >= cycles_per_line * 4 / 5;
        let mut v = 0;
        if hblank || line >= VISIBLE_LINES {
            v |= 0x01; // display disabled (blanking)
        }
        if (VRETRACE_FIRST..=VRETRACE_LAST).contains(&line) {
            v |= 0x08;
        }
        v
    }

    /// Port read at virtual time `now` (CPU cycles); `None` if not ours.
    pub fn io_read(&mut self, port: u16, size: u8, now: u64) -> Option<u32> {
        if !Vga::claims(port) {
            return None;
        }
        if Dispi::claims(port) {
            self.last_now = now;
            return Some(self.dispi.read(port) as u32);
        }
        // Word and dword reads read consecutive byte ports.
        let mut v = 0u32;
        for i in 0..size.min(4) as u16 {
            v |= (self.read_byte(port.wrapping_add(i), now) as u32) << (8 * i);
        }
        Some(v)
    }

    /// Port write at virtual time `now`; `false` if not ours.
    pub fn io_write(&mut self, port: u16, size: u8, v: u32, now: u64) -> bool {
        if !Vga::claims(port) {
            return false;
        }
        self.last_now = now;
        if Dispi::claims(port) {
            self.dispi.write(port, v as u16);
            return true;
        }
        // `out dx, ax` to an index port writes the index and then the data.
        for i in 0..size.min(4) as u16 {
            self.write_byte(port.wrapping_add(i), (v >> (8 * i)) as u8);
        }
        true
    }

    /// Whether the CRTC answers at 0x3Dx (colour) rather than 0x3Bx.
    fn crtc_port_ok(&self, port: u16) -> bool {
        let colour_port = port & 0xFFF0 == 0x3D0;
        colour_port == self.color()
    }

    fn read_byte(&mut self, port: u16, now: u64) -> u8 {
        self.last_now = now;
        match port {
            0x3C0 => self.ac_index,
            0x3C1 => self
                .ac
                .get(self.ac_index as usize & 0x1F)
                .copied()
                .unwrap_or(0),
            // Input status 0: no switch sense, no CRT interrupt.
            0x3C2 => 0x00,
            0x3C4 => self.seq_index,
            0x3C5 => self.seq.get(self.seq_index as usize).copied().unwrap_or(0),
            0x3C6 => self.pel_mask,
            0x3C7 => {
                if self.dac_reading {
                    3
                } else {
                    0
                }
            }
            0x3C8 => self.dac_write_index,
            0x3C9 => {
                let i = self.dac_read_index as usize;
                let c = self.dac[i][self.dac_read_component as usize] & self.dac_mask();
                self.dac_read_component += 1;
                if self.dac_read_component == 3 {
                    self.dac_read_component = 0;
                    self.dac_read_index = self.dac_read_index.wrapping_add(1);
                }
                c
            }
            0x3CA => self.feature_control,
            0x3CC => self.misc,
            0x3CE => self.gc_index,
            0x3CF => self.gc.get(self.gc_index as usize).copied().unwrap_or(0),
            0x3B4 | 0x3D4 if self.crtc_port_ok(port) => self.crtc_index,
            0x3B5 | 0x3D5 if self.crtc_port_ok(port) => self
                .crtc
                .get(self.crtc_index as usize)
                .copied()
                .unwrap_or(0),
            0x3BA | 0x3DA if self.crtc_port_ok(port) => {
                // Reading input status 1 resets the attribute flip-flop.
                self.ac_flip_flop = false;
                self.vretrace_and_display(now)
            }
            _ => 0xFF,
        }
    }

    fn write_byte(&mut self, port: u16, v: u8) {
        match port {
            0x3C0 => {
                if !self.ac_flip_flop {
                    self.ac_index = v & 0x3F;
                } else {
                    let i = (self.ac_index & 0x1F) as usize;
                    // The palette registers are writable only while the
                    // palette address source bit (index bit 5) is clear.
                    if i < 0x10 && self.ac_index & 0x20 == 0 {
                        self.ac[i] = v & 0x3F;
                    } else if (0x10..0x15).contains(&i) {
                        self.ac[i] = v;
                    }
                }
                self.ac_flip_flop = !self.ac_flip_flop;
            }
            0x3C2 => self.misc = v,
            0x3C4 => self.seq_index = v & 7,
            0x3C5 => {
                if let Some(r) = self.seq.get_mut(self.seq_index as usize) {
                    *r = v;
                }
            }
            0x3C6 => self.pel_mask = v,
            0x3C7 => {
                self.dac_read_index = v;
                self.dac_read_component = 0;
                self.dac_reading = true;
            }
            0x3C8 => {
                self.dac_write_index = v;
                self.dac_write_component = 0;
                self.dac_reading = false;
            }
            0x3C9 => {
                // The DAC takes an entry once all three components arrived.
                self.dac_write_latch[self.dac_write_component as usize] = v & self.dac_mask();
                self.dac_write_component += 1;
                if self.dac_write_component == 3 {
                    self.dac_write_component = 0;
                    self.dac[self.dac_write_index as usize] = self.dac_write_latch;
                    self.dac_write_index = self.dac_write_index.wrapping_add(1);
                }
            }
            0x3CE => self.gc_index = v & 0x0F,
            0x3CF => {
                if let Some(r) = self.gc.get_mut(self.gc_index as usize) {
                    *r = v;
                }
            }
            0x3B4 | 0x3D4 if self.crtc_port_ok(port) => self.crtc_index = v & 0x3F,
            0x3B5 | 0x3D5 if self.crtc_port_ok(port) => {
                let i = self.crtc_index as usize;
                // CRTC 11h bit 7 protects registers 0–7, except the line
                // compare bit (bit 4) of the overflow register.
                if self.crtc[0x11] & 0x80 != 0 && i <= 7 {
                    if i == 7 {
                        self.crtc[7] = (self.crtc[7] & !0x10) | (v & 0x10);
                    }
                    return;
                }
                if let Some(r) = self.crtc.get_mut(i) {
                    *r = v;
                }
            }
            0x3BA | 0x3DA if self.crtc_port_ok(port) => self.feature_control = v,
            _ => {}
        }
    }

    /// The frame as the monitor would show it now, for the legacy modes
    /// (a VBE mode's pixels are in the machine's video memory: see
    /// [`Vga::render_with`]; here it shows black).
    pub fn render(&self) -> Frame {
        render::render(self, &[])
    }

    /// The frame as the monitor would show it now, a VBE mode's pixels
    /// read from `video_memory`.
    pub fn render_with(&self, video_memory: &[u8]) -> Frame {
        render::render(self, video_memory)
    }

    /// The text a text mode shows, one line per character row (for tests,
    /// the debugger and headless checks); `None` in a graphics mode.
    pub fn text(&self) -> Option<String> {
        render::text(self)
    }
}

/// The DAC as the BIOS loads it for the 16-colour modes: the 64 EGA
/// colours (rgbRGB), then a grey ramp; 256-colour programs load their own.
fn default_dac() -> [[u8; 3]; 256] {
    let mut d = [[0u8; 3]; 256];
    for (i, e) in d.iter_mut().enumerate().take(64) {
        // EGA 6-bit colour: bits 2,1,0 = R,G,B at 2/3, bits 5,4,3 at 1/3.
        let c = |hi: usize, lo: usize| (((i >> hi) & 1) * 0x2A + ((i >> lo) & 1) * 0x15) as u8;
        *e = [c(2, 5), c(1, 4), c(0, 3)];
    }
    for (i, e) in d.iter_mut().enumerate().skip(64) {
        let g = ((i - 64) * 63 / 191) as u8;
        *e = [g, g, g];
    }
    d
}

/// A 256-colour palette for mode 13h: the 16 CGA colours, a 16-step grey
/// ramp, a 6×6×6 colour cube, black for the rest. (Our own layout; the IBM
/// BIOS's hue wheel differs beyond the first 16 entries.)
fn dac_256() -> [[u8; 3]; 256] {
    let mut d = [[0u8; 3]; 256];
    for (i, e) in d.iter_mut().enumerate().take(16) {
        let hi = |bit: usize| (((i >> bit) & 1) * 0x2A) as u8;
        let lo = ((i >> 3) & 1) as u8 * 0x15;
        *e = [hi(2) + lo, hi(1) + lo, hi(0) + lo];
        if i == 6 {
            // CGA brown: half-intensity green.
            e[1] = 0x15;
        }
    }
    for (i, e) in d.iter_mut().enumerate().skip(16).take(16) {
        let g = ((i - 16) * 63 / 15) as u8;
        *e = [g, g, g];
    }
    for (i, e) in d.iter_mut().enumerate().skip(32).take(216) {
        let n = i - 32;
        let c = |k: usize| (k * 63 / 5) as u8;
        *e = [c(n / 36), c((n / 6) % 6), c(n % 6)];
    }
    d
}

#[cfg(test)]
mod tests;
