//! The Bochs/QEMU "dispi" display interface (VBE extension of the standard
//! VGA): a 16-bit index register at port 0x1CE and a data register at
//! 0x1CF (0x1D0 is a data alias, as on QEMU), in front of the registers
//! below. Facts from Bochs' `vbe.h` and QEMU's `vga.c` interface
//! description (register numbers, flag bits, ID values); the code is ours.
//!
//! | index | register          | notes                                        |
//! |-------|-------------------|----------------------------------------------|
//! | 0     | ID                | 0xB0C0..0xB0C5; a write of one of them is kept|
//! | 1–3   | XRES, YRES, BPP   | writable while disabled; GETCAPS reads maxima |
//! | 4     | ENABLE            | 0x01 on, 0x02 GETCAPS, 0x20 8-bit DAC, 0x40 LFB, 0x80 no clear |
//! | 5     | BANK              | 64 KiB bank shown at 0xA0000                  |
//! | 6, 7  | VIRT_WIDTH/HEIGHT | the virtual screen (height follows the width) |
//! | 8, 9  | X/Y_OFFSET        | display start inside the virtual screen       |
//! | 10    | VIDEO_MEMORY_64K  | read-only: memory size in 64 KiB units        |
//!
//! The memory itself is the machine's (`ringside_mmu::PhysMem` video
//! memory): this model says where the bank window points
//! ([`Dispi::window_offset`]) and asks for the visible area to be cleared
//! on enable ([`Dispi::take_clear`]); the machine does both before the
//! next instruction.

use serde::{Deserialize, Serialize};

/// Index port.
pub const INDEX_PORT: u16 = 0x1CE;
/// Data port.
pub const DATA_PORT: u16 = 0x1CF;
/// QEMU's second data port.
pub const DATA_PORT_ALIAS: u16 = 0x1D0;

/// Register numbers.
pub mod reg {
    /// Interface version.
    pub const ID: u16 = 0;
    /// Horizontal resolution.
    pub const XRES: u16 = 1;
    /// Vertical resolution.
    pub const YRES: u16 = 2;
    /// Bits per pixel.
    pub const BPP: u16 = 3;
    /// Enable and flags.
    pub const ENABLE: u16 = 4;
    /// Bank at 0xA0000.
    pub const BANK: u16 = 5;
    /// Virtual width in pixels.
    pub const VIRT_WIDTH: u16 = 6;
    /// Virtual height in lines.
    pub const VIRT_HEIGHT: u16 = 7;
    /// Display start, pixels.
    pub const X_OFFSET: u16 = 8;
    /// Display start, lines.
    pub const Y_OFFSET: u16 = 9;
    /// Video memory in 64 KiB units (ID 0xB0C4 and up).
    pub const VIDEO_MEMORY_64K: u16 = 10;
}

/// ENABLE register bits.
pub mod enable {
    /// The VBE mode is on.
    pub const ENABLED: u16 = 0x01;
    /// XRES/YRES/BPP read their maxima.
    pub const GETCAPS: u16 = 0x02;
    /// DAC entries are 8 bits wide.
    pub const DAC_8BIT: u16 = 0x20;
    /// Linear frame buffer in use (informational: it is always decoded).
    pub const LFB: u16 = 0x40;
    /// Keep video memory on enable.
    pub const NOCLEARMEM: u16 = 0x80;
}

/// Lowest and highest interface IDs.
pub const ID_FIRST: u16 = 0xB0C0;
/// The highest ID we implement (VIDEO_MEMORY_64K is ID4's addition).
pub const ID_LAST: u16 = 0xB0C5;
/// Largest horizontal resolution.
pub const MAX_XRES: u16 = 2560;
/// Largest vertical resolution.
pub const MAX_YRES: u16 = 1600;
/// Largest depth.
pub const MAX_BPP: u16 = 32;
/// Bytes of video memory on the adapter.
pub const VIDEO_MEMORY_BYTES: u32 = 16 << 20;
/// Bytes per bank.
pub const BANK_BYTES: u32 = 0x1_0000;

/// The interface's registers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispi {
    index: u16,
    id: u16,
    xres: u16,
    yres: u16,
    bpp: u16,
    enable: u16,
    bank: u16,
    virt_width: u16,
    virt_height: u16,
    x_offset: u16,
    y_offset: u16,
    /// Bytes of video memory to clear from offset 0 (an enable without
    /// NOCLEARMEM), for the machine to do.
    clear: Option<u32>,
}

impl Default for Dispi {
    fn default() -> Self {
        Dispi {
            index: 0,
            id: ID_LAST,
            xres: 640,
            yres: 480,
            bpp: 8,
            enable: 0,
            bank: 0,
            virt_width: 640,
            virt_height: 480,
            x_offset: 0,
            y_offset: 0,
            clear: None,
        }
    }
}

impl Dispi {
    /// Whether `port` is one of the interface's.
    pub fn claims(port: u16) -> bool {
        matches!(port, INDEX_PORT | DATA_PORT | DATA_PORT_ALIAS)
    }

    /// Board reset: disabled, registers as at power-on.
    pub fn reset(&mut self) {
        *self = Dispi::default();
    }

    /// Whether a VBE mode is on.
    pub fn enabled(&self) -> bool {
        self.enable & enable::ENABLED != 0
    }

    /// Whether the DAC takes and gives 8-bit components.
    pub fn dac_8bit(&self) -> bool {
        self.enabled() && self.enable & enable::DAC_8BIT != 0
    }

    /// Visible width, height and depth.
    pub fn geometry(&self) -> (u32, u32, u32) {
        (self.xres as u32, self.yres as u32, self.bpp as u32)
    }

    /// Bytes of one virtual line (for 4 bpp: bytes per plane line).
    pub fn line_bytes(&self) -> u32 {
        line_bytes(self.virt_width, self.bpp)
    }

    /// Offset of the first displayed byte (for 4 bpp: in each plane).
    pub fn start(&self) -> u32 {
        let x = self.x_offset as u32;
        let xb = match self.bpp {
            4 => x / 8,
            b => x * bytes_per_pixel(b),
        };
        self.y_offset as u32 * self.line_bytes() + xb
    }

    /// What the 0xA0000 window shows from video memory: the bank, while a
    /// packed-pixel mode is on (a 4 bpp mode goes through the planes).
    pub fn window_offset(&self) -> Option<u32> {
        (self.enabled() && self.bpp != 4).then(|| self.bank as u32 * BANK_BYTES)
    }

    /// The pending clear (bytes from offset 0), taken once.
    pub fn take_clear(&mut self) -> Option<u32> {
        self.clear.take()
    }

    /// 16-bit read of `port`.
    pub fn read(&self, port: u16) -> u16 {
        if port == INDEX_PORT {
            return self.index;
        }
        let caps = self.enable & enable::GETCAPS != 0;
        match self.index {
            reg::ID => self.id,
            reg::XRES if caps => MAX_XRES,
            reg::YRES if caps => MAX_YRES,
            reg::BPP if caps => MAX_BPP,
            reg::XRES => self.xres,
            reg::YRES => self.yres,
            reg::BPP => self.bpp,
            reg::ENABLE => self.enable,
            reg::BANK => self.bank,
            reg::VIRT_WIDTH => self.virt_width,
            reg::VIRT_HEIGHT => self.virt_height,
            reg::X_OFFSET => self.x_offset,
            reg::Y_OFFSET => self.y_offset,
            reg::VIDEO_MEMORY_64K => (VIDEO_MEMORY_BYTES / BANK_BYTES) as u16,
            _ => 0,
        }
    }

    /// 16-bit write of `v` to `port`.
    pub fn write(&mut self, port: u16, v: u16) {
        if port == INDEX_PORT {
            self.index = v;
            return;
        }
        let enabled = self.enabled();
        match self.index {
            reg::ID if (ID_FIRST..=ID_LAST).contains(&v) => self.id = v,
            // The mode's shape is fixed while it is on (as on Bochs/QEMU).
            reg::XRES if !enabled && v <= MAX_XRES => self.xres = v,
            reg::YRES if !enabled && v <= MAX_YRES => self.yres = v,
            reg::BPP if !enabled => {
                let v = if v == 0 { 8 } else { v };
                if matches!(v, 4 | 8 | 15 | 16 | 24 | 32) {
                    self.bpp = v;
                }
            }
            reg::ENABLE => self.set_enable(v),
            reg::BANK if (v as u32) < VIDEO_MEMORY_BYTES / BANK_BYTES => self.bank = v,
            reg::VIRT_WIDTH => self.set_virt_width(v),
            reg::X_OFFSET => self.x_offset = v,
            reg::Y_OFFSET => self.y_offset = v,
            _ => {}
        }
    }

    fn set_enable(&mut self, v: u16) {
        let on = v & enable::ENABLED != 0;
        if on && !self.enabled() {
            // A mode that does not fit the memory is cut to the lines that do.
            let line = line_bytes(self.xres, self.bpp).max(1);
            let planes = if self.bpp == 4 { 4 } else { 1 };
            let max_lines = (VIDEO_MEMORY_BYTES / planes / line).min(MAX_YRES as u32) as u16;
            self.yres = self.yres.min(max_lines);
            self.virt_width = self.xres;
            self.virt_height = self.yres;
            self.x_offset = 0;
            self.y_offset = 0;
            if v & enable::NOCLEARMEM == 0 {
                self.clear = Some(line * planes * self.yres as u32);
            }
        }
        self.enable = v;
    }

    fn set_virt_width(&mut self, v: u16) {
        let w = v.max(self.xres).min(MAX_XRES * 4);
        let line = line_bytes(w, self.bpp).max(1);
        let planes = if self.bpp == 4 { 4 } else { 1 };
        let lines = VIDEO_MEMORY_BYTES / planes / line;
        if lines < self.yres as u32 {
            return;
        }
        self.virt_width = w;
        self.virt_height = lines.min(0xFFFF) as u16;
    }
}

/// Bytes per pixel of a packed depth.
pub fn bytes_per_pixel(bpp: u16) -> u32 {
    (bpp as u32).div_ceil(8)
}

fn line_bytes(width: u16, bpp: u16) -> u32 {
    match bpp {
        4 => (width as u32).div_ceil(8),
        b => width as u32 * bytes_per_pixel(b),
    }
}
