//! The physical address space of a PC.
//!
//! Layout (as on a 386 AT): RAM from 0 up to the configured size, the system
//! ROM mapped at the top of the first MiB (`0x100000 - rom.len()`) *and*
//! aliased just below 4 GiB so that the reset vector at `0xFFFFFFF0` reaches
//! it, MMIO ranges registered by the board, and everything else unmapped
//! (reads return all ones, writes are dropped, like an open ISA bus).
//!
//! Every 4 KiB page below the RAM size has one flags byte. The write fast path
//! tests that byte once: zero means "plain RAM, no cached code", anything else
//! sends the write down the slow path (ROM: dropped, MMIO: to the bus, CODE:
//! store and queue the page for the CPU's decoded-instruction cache to
//! invalidate). One byte per page instead of a separate code-page bitvec keeps
//! the RAM/ROM/MMIO/code decision to a single load on the hottest path.

use thiserror::Error;

/// Size of a page as tracked for code invalidation and MMIO granularity.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

const F_ROM: u8 = 1;
pub(crate) const F_MMIO: u8 = 2;
pub(crate) const F_CODE: u8 = 4;
/// With `F_MMIO`: the page is the video memory window, served from
/// [`PhysMem`]'s video memory rather than by the bus (see `vram.rs`).
pub(crate) const F_VRAM: u8 = 8;

/// A problem with the memory configuration (a host error, never a guest one).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MemError {
    /// The ROM image has a size the PC map cannot hold.
    #[error("ROM image is {0} bytes; expected 64, 128 or 256 KiB")]
    BadRomSize(usize),
    /// The requested RAM size is outside what the machine supports.
    #[error("memory size {0} MiB is out of range (1..=3584 MiB)")]
    BadRamSize(u32),
    /// An option ROM that does not fit the expansion ROM area
    /// (0xC0000–0xDFFFF), overlaps another, or is not 2 KiB aligned.
    #[error("option ROM of {len} bytes at {base:#x} does not fit the expansion ROM area 0xC0000-0xDFFFF (2 KiB aligned, no overlap)")]
    BadOptionRom {
        /// Where it was to go.
        base: u32,
        /// Its size.
        len: usize,
    },
}

/// First address of the expansion (option) ROM area.
pub const OPTION_ROM_FIRST: u32 = 0xC_0000;
/// Last address of the expansion ROM area.
pub const OPTION_ROM_LAST: u32 = 0xD_FFFF;

/// The guest's physical memory.
#[derive(Clone)]
pub struct PhysMem {
    pub(crate) ram: Vec<u8>,
    /// One flags byte per RAM page (`F_ROM`, `F_MMIO`, `F_CODE`).
    pub(crate) page_flags: Vec<u8>,
    rom: Vec<u8>,
    /// First address of the ROM alias below 4 GiB.
    rom_high_base: u32,
    /// First address of the ROM copy at the top of the first MiB.
    rom_low_base: u32,
    /// Option ROMs in the expansion ROM area (a VGA BIOS at 0xC0000):
    /// base address and image. Their RAM copies are read-only pages, made
    /// writable by the chipset's PAM registers like the system ROM's.
    option_roms: Vec<(u32, Vec<u8>)>,
    pub(crate) a20_mask: u32,
    /// MMIO ranges outside RAM, as (first, last) inclusive.
    mmio_high: Vec<(u32, u32)>,
    /// Pages holding decoded code that were written since the CPU last looked.
    pub(crate) smc_pages: Vec<u32>,
    /// Video memory (the display adapter's, empty without one): behind the
    /// linear frame buffer and, in a VBE mode, the 64 KiB window at
    /// 0xA0000. See `vram.rs`.
    pub(crate) vram: Vec<u8>,
    /// Where the linear frame buffer starts, when it is mapped.
    pub(crate) lfb_base: Option<u32>,
    /// The video memory offset the 0xA0000 window shows, when it is mapped.
    pub(crate) vram_window: Option<u32>,
    /// SMRAM routing of the legacy video window (see [`PhysMem::set_smram_control`]).
    pub(crate) smram: Smram,
}

/// The i440FX's SMRAM control (host bridge config 0x72) as the memory map
/// applies it, with the processor's SMM state: together they decide
/// whether 0xA0000–0xBFFFF reaches the VGA window (MMIO) or the RAM
/// underneath it (SMRAM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Smram {
    /// The SMRAM control register as last applied (D_OPEN, D_CLS, D_LCK,
    /// G_SMRAME, C_BASE_SEG).
    pub control: u8,
    /// The processor is in system-management mode.
    pub smm: bool,
    /// The RAM under the window is what accesses reach right now.
    pub(crate) visible: bool,
}

/// SMRAM control bits (i440FX datasheet, register SMRAM, 72h).
pub mod smram {
    /// D_OPEN: SMRAM visible outside SMM too (firmware loads its handler).
    pub const D_OPEN: u8 = 1 << 6;
    /// D_CLS: SMM *data* accesses go to the VGA window (code still SMRAM).
    pub const D_CLS: u8 = 1 << 5;
    /// D_LCK: D_OPEN forced clear, G_SMRAME/D_LCK read-only until reset.
    pub const D_LCK: u8 = 1 << 4;
    /// G_SMRAME: SMRAM enabled at all.
    pub const G_SMRAME: u8 = 1 << 3;
    /// C_BASE_SEG: 010b, the compatible SMRAM at 0xA0000 (fixed).
    pub const C_BASE_SEG: u8 = 0b010;
    /// First address of the compatible SMRAM (the VGA window).
    pub const FIRST: u32 = 0xA_0000;
    /// Last address of the compatible SMRAM.
    pub const LAST: u32 = 0xB_FFFF;
}

impl std::fmt::Debug for PhysMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhysMem")
            .field("ram_bytes", &self.ram.len())
            .field("rom_bytes", &self.rom.len())
            .field("a20", &self.a20_enabled())
            .finish()
    }
}

impl PhysMem {
    /// RAM of `ram_bytes` bytes (rounded up to a page), no ROM, A20 enabled.
    pub fn new(ram_bytes: usize) -> Self {
        let ram_bytes = ram_bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        PhysMem {
            ram: vec![0; ram_bytes],
            page_flags: vec![0; ram_bytes / PAGE_SIZE],
            rom: Vec::new(),
            rom_high_base: 0,
            rom_low_base: 0,
            option_roms: Vec::new(),
            a20_mask: u32::MAX,
            mmio_high: Vec::new(),
            smc_pages: Vec::new(),
            smram: Smram::default(),
            vram: Vec::new(),
            lfb_base: None,
            vram_window: None,
        }
    }

    /// A PC map: `mib` MiB of RAM and `rom` at the top of the first MiB and
    /// below 4 GiB. The A20 gate starts enabled, as QEMU and Bochs start it;
    /// the BIOS closes it if it wants 8086 wrap-around.
    pub fn pc(mib: u32, rom: Vec<u8>) -> Result<Self, MemError> {
        if !(1..=3584).contains(&mib) {
            return Err(MemError::BadRamSize(mib));
        }
        if ![64 * 1024, 128 * 1024, 256 * 1024].contains(&rom.len()) {
            return Err(MemError::BadRomSize(rom.len()));
        }
        let mut m = PhysMem::new(mib as usize * 1024 * 1024);
        m.load_rom(rom);
        Ok(m)
    }

    fn load_rom(&mut self, rom: Vec<u8>) {
        let len = rom.len() as u32;
        self.rom_low_base = 0x10_0000 - len;
        self.rom_high_base = 0u32.wrapping_sub(len);
        let lo = self.rom_low_base as usize;
        self.ram[lo..lo + rom.len()].copy_from_slice(&rom);
        for p in lo / PAGE_SIZE..(lo + rom.len()) / PAGE_SIZE {
            self.page_flags[p] |= F_ROM;
        }
        self.rom = rom;
    }

    /// Put an option ROM (`image`, a whole number of 512-byte blocks) at
    /// `base` in the expansion ROM area, as a card's ROM appears there:
    /// read-only pages holding the image, which the PAM registers can turn
    /// into writable shadow RAM. `base` must be 2 KiB aligned, and the ROM
    /// must fit below 0xE0000 without overlapping another.
    pub fn add_option_rom(&mut self, base: u32, image: Vec<u8>) -> Result<(), MemError> {
        let bad = MemError::BadOptionRom {
            base,
            len: image.len(),
        };
        let end = base as u64 + image.len() as u64;
        if image.is_empty()
            || !base.is_multiple_of(0x800)
            || base < OPTION_ROM_FIRST
            || end > OPTION_ROM_LAST as u64 + 1
            || end > self.ram.len() as u64
            || self
                .option_roms
                .iter()
                .any(|(b, r)| (*b as u64) < end && base < b + r.len() as u32)
        {
            return Err(bad);
        }
        let lo = base as usize;
        self.ram[lo..lo + image.len()].copy_from_slice(&image);
        for p in lo / PAGE_SIZE..(lo + image.len()).div_ceil(PAGE_SIZE) {
            self.page_flags[p] |= F_ROM;
        }
        self.option_roms.push((base, image));
        Ok(())
    }

    /// The option ROMs: base address and image.
    pub fn option_roms(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.option_roms.iter().map(|(b, r)| (*b, r.as_slice()))
    }

    /// Every ROM's RAM copy in the first MiB: (first address, image).
    fn low_roms(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let system = (!self.rom.is_empty()).then_some((self.rom_low_base as usize, &self.rom[..]));
        system.into_iter().chain(
            self.option_roms
                .iter()
                .map(|(b, r)| (*b as usize, r.as_slice())),
        )
    }

    /// Shadow RAM (the chipset's PAM registers): make the ROMs' copies in
    /// `[first, last]` of the first MiB writable (as RAM) or read-only
    /// again. Reads always come from the copy, which holds the ROM image
    /// until the guest writes it; pages outside a ROM are not touched.
    pub fn set_rom_writable(&mut self, first: u32, last: u32, writable: bool) {
        let ram_last = self.ram.len().saturating_sub(1);
        let mut pages = Vec::new();
        for (lo, image) in self.low_roms() {
            let f = (first as usize).max(lo);
            let l = (last as usize)
                .min(lo + image.len().div_ceil(PAGE_SIZE) * PAGE_SIZE - 1)
                .min(0xF_FFFF)
                .min(ram_last);
            if f <= l {
                pages.push(f / PAGE_SIZE..=l / PAGE_SIZE);
            }
        }
        for range in pages {
            for p in range {
                if writable {
                    self.page_flags[p] &= !F_ROM;
                } else {
                    self.page_flags[p] |= F_ROM;
                }
            }
        }
    }

    /// Back to the power-on view of the ROMs (a reset clears the PAM
    /// registers): the low copies hold the ROM images again, read-only.
    /// Pages with decoded code are queued for invalidation.
    pub fn restore_rom(&mut self) {
        // Copies of the images (at most a few hundred KiB, once per reset)
        // so the RAM can be written while they are read.
        let regions: Vec<(usize, Vec<u8>)> = self
            .low_roms()
            .map(|(lo, image)| (lo, image.to_vec()))
            .collect();
        for (lo, image) in regions {
            let hi = (lo + image.len()).min(self.ram.len());
            if lo >= hi {
                continue;
            }
            if self.ram[lo..hi] != image[..hi - lo] {
                self.ram[lo..hi].copy_from_slice(&image[..hi - lo]);
                for p in lo / PAGE_SIZE..hi.div_ceil(PAGE_SIZE) {
                    if self.page_flags[p] & F_CODE != 0 {
                        self.page_flags[p] &= !F_CODE;
                        self.smc_pages.push(p as u32);
                    }
                }
            }
            for p in lo / PAGE_SIZE..hi.div_ceil(PAGE_SIZE) {
                self.page_flags[p] |= F_ROM;
            }
        }
    }

    /// Bytes of RAM.
    pub fn ram_size(&self) -> usize {
        self.ram.len()
    }

    /// The whole RAM array (ROM shadow included), for snapshots and tests.
    pub fn ram(&self) -> &[u8] {
        &self.ram
    }

    /// Mark `[first, last]` as MMIO: accesses go to the board's bus.
    pub fn add_mmio(&mut self, first: u32, last: u32) {
        let ram_pages = self.page_flags.len() as u32;
        for p in first >> PAGE_SHIFT..=last >> PAGE_SHIFT {
            if p < ram_pages {
                self.page_flags[p as usize] |= F_MMIO;
            }
        }
        if last as usize >= self.ram.len() {
            self.mmio_high
                .push((first.max(self.ram.len() as u32), last));
        }
    }

    /// Apply the chipset's SMRAM control register (i440FX config 0x72).
    /// With G_SMRAME set, the RAM under the VGA window becomes reachable
    /// when D_OPEN is set or the processor is in SMM (and D_CLS is clear:
    /// D_CLS sends SMM's data accesses to the VGA; this map does not tell
    /// code fetches from data, so with D_CLS both go to the VGA).
    pub fn set_smram_control(&mut self, control: u8) {
        if self.smram.control != control {
            self.smram.control = control;
            self.update_smram();
        }
    }

    /// The processor entered (`true`) or left system-management mode; the
    /// CPU calls this on SMI and RSM.
    pub fn set_smm(&mut self, smm: bool) {
        if self.smram.smm != smm {
            self.smram.smm = smm;
            self.update_smram();
        }
    }

    /// The SMRAM state as applied.
    pub fn smram(&self) -> Smram {
        self.smram
    }

    /// Route 0xA0000–0xBFFFF as the SMRAM state says. The window's pages
    /// flip between MMIO (VGA) and RAM; the TLB holds physical addresses
    /// only and asks this map on every access, so it stays right, and
    /// decoded code from SMRAM is queued for invalidation when it goes.
    fn update_smram(&mut self) {
        use smram::*;
        let c = self.smram.control;
        let visible = c & G_SMRAME != 0 && (c & D_OPEN != 0 || (self.smram.smm && c & D_CLS == 0));
        if visible == self.smram.visible {
            return;
        }
        self.smram.visible = visible;
        let pages = self.page_flags.len();
        for p in (FIRST as usize >> PAGE_SHIFT)..=(LAST as usize >> PAGE_SHIFT) {
            if p >= pages {
                break;
            }
            let f = &mut self.page_flags[p];
            if *f & F_CODE != 0 {
                *f &= !F_CODE;
                self.smc_pages.push(p as u32);
            }
            if visible {
                *f &= !F_MMIO;
            } else {
                *f |= F_MMIO;
            }
        }
    }

    /// Whether address line 20 passes through (true) or is forced to zero.
    pub fn a20_enabled(&self) -> bool {
        self.a20_mask == u32::MAX
    }

    /// Open or close the A20 gate.
    pub fn set_a20(&mut self, enabled: bool) {
        self.a20_mask = if enabled { u32::MAX } else { !(1 << 20) };
    }

    /// The mask the A20 gate applies to every physical address.
    #[inline(always)]
    pub fn a20_mask(&self) -> u32 {
        self.a20_mask
    }

    /// Read a byte, or `None` if the address is MMIO (the caller asks the bus).
    #[inline(always)]
    pub fn read_u8(&self, addr: u32) -> Option<u8> {
        let a = (addr & self.a20_mask) as usize;
        if a < self.ram.len() {
            if self.page_flags[a >> PAGE_SHIFT] & F_MMIO == 0 {
                return Some(self.ram[a]);
            }
            return self.vram_read(a as u32, 1).map(|v| v as u8);
        }
        self.read_u8_high(a as u32)
    }

    #[cold]
    fn read_u8_high(&self, a: u32) -> Option<u8> {
        if !self.rom.is_empty() && a >= self.rom_high_base {
            return Some(self.rom[(a - self.rom_high_base) as usize]);
        }
        if let Some(v) = self.vram_read(a, 1) {
            return Some(v as u8);
        }
        if self.is_mmio_high(a) {
            return None;
        }
        Some(0xFF)
    }

    fn is_mmio_high(&self, a: u32) -> bool {
        self.mmio_high.iter().any(|&(f, l)| a >= f && a <= l) || self.in_lfb(a)
    }

    /// Read `N` bytes little-endian as u32 (N = 2 or 4), `None` if any byte is MMIO.
    #[inline(always)]
    pub fn read_u16(&self, addr: u32) -> Option<u16> {
        let a = (addr & self.a20_mask) as usize;
        if a & 0xFFF <= 0xFFE && a + 1 < self.ram.len() {
            if self.page_flags[a >> PAGE_SHIFT] & F_MMIO == 0 {
                return Some(u16::from_le_bytes([self.ram[a], self.ram[a + 1]]));
            }
            return self.vram_read(a as u32, 2).map(|v| v as u16);
        }
        if let Some(v) = self.vram_read(a as u32, 2) {
            return Some(v as u16);
        }
        let lo = self.read_u8(addr)?;
        let hi = self.read_u8(addr.wrapping_add(1))?;
        Some(u16::from_le_bytes([lo, hi]))
    }

    /// Read a dword, `None` if any byte is MMIO.
    #[inline(always)]
    pub fn read_u32(&self, addr: u32) -> Option<u32> {
        let a = (addr & self.a20_mask) as usize;
        if a & 0xFFF <= 0xFFC && a + 3 < self.ram.len() {
            if self.page_flags[a >> PAGE_SHIFT] & F_MMIO == 0 {
                let b: [u8; 4] = self.ram[a..a + 4].try_into().unwrap_or([0; 4]);
                return Some(u32::from_le_bytes(b));
            }
            return self.vram_read(a as u32, 4);
        }
        if let Some(v) = self.vram_read(a as u32, 4) {
            return Some(v);
        }
        let mut v = 0u32;
        for i in 0..4 {
            v |= (self.read_u8(addr.wrapping_add(i))? as u32) << (8 * i);
        }
        Some(v)
    }

    /// Write a byte. Returns `false` if the address is MMIO (the caller tells
    /// the bus); ROM and unmapped writes are dropped and return `true`.
    #[inline(always)]
    pub fn write_u8(&mut self, addr: u32, v: u8) -> bool {
        let a = (addr & self.a20_mask) as usize;
        if a < self.ram.len() {
            let f = self.page_flags[a >> PAGE_SHIFT];
            if f == 0 {
                self.ram[a] = v;
                return true;
            }
            return self.write_slow(a, v, f);
        }
        self.write_u8_high(a as u32, v)
    }

    #[cold]
    fn write_u8_high(&mut self, a: u32, v: u8) -> bool {
        self.vram_write(a, 1, v as u32) || !self.is_mmio_high(a)
    }

    #[cold]
    fn write_slow(&mut self, a: usize, v: u8, f: u8) -> bool {
        if f & F_MMIO != 0 {
            return self.vram_write(a as u32, 1, v as u32);
        }
        if f & F_ROM != 0 {
            return true;
        }
        if f & F_CODE != 0 {
            let page = a >> PAGE_SHIFT;
            self.page_flags[page] &= !F_CODE;
            self.smc_pages.push(page as u32);
        }
        self.ram[a] = v;
        true
    }

    /// Write a word; `false` if any byte is MMIO (nothing is written then).
    #[inline(always)]
    pub fn write_u16(&mut self, addr: u32, v: u16) -> bool {
        let a = addr & self.a20_mask;
        self.write_ram_u16(addr, v)
            || self.vram_write(a, 2, v as u32)
            || self.write_bytes_checked(addr, &v.to_le_bytes())
    }

    /// Write a dword; `false` if any byte is MMIO (nothing is written then).
    #[inline(always)]
    pub fn write_u32(&mut self, addr: u32, v: u32) -> bool {
        let a = addr & self.a20_mask;
        self.write_ram_u32(addr, v)
            || self.vram_write(a, 4, v)
            || self.write_bytes_checked(addr, &v.to_le_bytes())
    }

    /// The fast half of [`PhysMem::write_u8`]: write only to a plain RAM
    /// page (not ROM, MMIO or holding decoded code). `false`: nothing was
    /// written, use `write_u8`. A caller that takes the other path knows
    /// that is where a code page can be queued ([`PhysMem::smc_pending`]).
    #[inline(always)]
    pub fn write_ram_u8(&mut self, addr: u32, v: u8) -> bool {
        let a = (addr & self.a20_mask) as usize;
        if a < self.ram.len() && self.page_flags[a >> PAGE_SHIFT] == 0 {
            self.ram[a] = v;
            return true;
        }
        false
    }

    /// [`PhysMem::write_ram_u8`] for a word within one page.
    #[inline(always)]
    pub fn write_ram_u16(&mut self, addr: u32, v: u16) -> bool {
        let a = (addr & self.a20_mask) as usize;
        if a & 0xFFF <= 0xFFE && a + 1 < self.ram.len() && self.page_flags[a >> PAGE_SHIFT] == 0 {
            self.ram[a..a + 2].copy_from_slice(&v.to_le_bytes());
            return true;
        }
        false
    }

    /// [`PhysMem::write_ram_u8`] for a dword within one page.
    #[inline(always)]
    pub fn write_ram_u32(&mut self, addr: u32, v: u32) -> bool {
        let a = (addr & self.a20_mask) as usize;
        if a & 0xFFF <= 0xFFC && a + 3 < self.ram.len() && self.page_flags[a >> PAGE_SHIFT] == 0 {
            self.ram[a..a + 4].copy_from_slice(&v.to_le_bytes());
            return true;
        }
        false
    }

    fn write_bytes_checked(&mut self, addr: u32, bytes: &[u8]) -> bool {
        for i in 0..bytes.len() as u32 {
            if self.is_mmio(addr.wrapping_add(i)) {
                return false;
            }
        }
        for (i, &b) in bytes.iter().enumerate() {
            self.write_u8(addr.wrapping_add(i as u32), b);
        }
        true
    }

    /// Copy `len` bytes from `src` to `dst` (physical) in host memory, for a
    /// string move's run of elements: only when the source is RAM or ROM
    /// (not MMIO) and the destination plain RAM (not ROM, MMIO or holding
    /// decoded code), each range within one page, and the destination does
    /// not start inside the source (a forward element-by-element move there
    /// repeats a pattern that a block copy would not). `false`: nothing was
    /// copied.
    pub fn copy_within_pages(&mut self, src: u32, dst: u32, len: u32) -> bool {
        let (s, d, n) = (
            (src & self.a20_mask) as usize,
            (dst & self.a20_mask) as usize,
            len as usize,
        );
        if n == 0
            || (s & 0xFFF) + n > PAGE_SIZE
            || (d & 0xFFF) + n > PAGE_SIZE
            || s + n > self.ram.len()
            || d + n > self.ram.len()
            || self.page_flags[s >> PAGE_SHIFT] & F_MMIO != 0
            || self.page_flags[d >> PAGE_SHIFT] != 0
            || (d > s && d < s + n)
        {
            return false;
        }
        self.ram.copy_within(s..s + n, d);
        true
    }

    /// Fill `count` elements of `size` bytes (1, 2, 4) at `dst` with the low
    /// bytes of `v`, for a string store's run: only plain RAM within one
    /// page, as [`PhysMem::copy_within_pages`]. `false`: nothing was written.
    pub fn fill_within_page(&mut self, dst: u32, size: u8, count: u32, v: u32) -> bool {
        let d = (dst & self.a20_mask) as usize;
        let n = size as usize * count as usize;
        if n == 0
            || (d & 0xFFF) + n > PAGE_SIZE
            || d + n > self.ram.len()
            || self.page_flags[d >> PAGE_SHIFT] != 0
        {
            return false;
        }
        let bytes = v.to_le_bytes();
        for chunk in self.ram[d..d + n].chunks_exact_mut(size as usize) {
            chunk.copy_from_slice(&bytes[..size as usize]);
        }
        true
    }

    /// Whether `addr` (after the A20 gate) is MMIO.
    pub fn is_mmio(&self, addr: u32) -> bool {
        let a = (addr & self.a20_mask) as usize;
        if a < self.ram.len() {
            self.page_flags[a >> PAGE_SHIFT] & F_MMIO != 0
        } else {
            self.is_mmio_high(a as u32)
        }
    }

    /// Host-side write that ignores ROM protection and never touches MMIO:
    /// for loaders and test harnesses. Invalidates cached code like a store.
    pub fn poke(&mut self, addr: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            let a = addr.wrapping_add(i as u32) as usize;
            if a < self.ram.len() {
                let page = a >> PAGE_SHIFT;
                if self.page_flags[page] & F_CODE != 0 {
                    self.page_flags[page] &= !F_CODE;
                    self.smc_pages.push(page as u32);
                }
                self.ram[a] = b;
            }
        }
    }

    /// Host-side read of one byte (MMIO reads as 0xFF), for debuggers and tests.
    pub fn peek(&self, addr: u32) -> u8 {
        self.read_u8(addr).unwrap_or(0xFF)
    }

    /// Record that the page holding `addr` (a physical address) has decoded
    /// code cached, so that a store to it must be reported.
    #[inline]
    pub fn mark_code_page(&mut self, addr: u32) {
        let page = addr as usize >> PAGE_SHIFT;
        if page < self.page_flags.len() {
            self.page_flags[page] |= F_CODE;
        }
    }

    /// Whether any code page was written since the last [`PhysMem::take_smc_pages`].
    #[inline(always)]
    pub fn smc_pending(&self) -> bool {
        !self.smc_pages.is_empty()
    }

    /// Take the list of written code pages (page numbers), leaving it empty.
    pub fn take_smc_pages(&mut self, out: &mut Vec<u32>) {
        out.clear();
        out.append(&mut self.smc_pages);
    }

    /// Forget all code-page marks (when the whole decode cache is flushed).
    pub fn clear_code_pages(&mut self) {
        for f in &mut self.page_flags {
            *f &= !F_CODE;
        }
        self.smc_pages.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_is_mapped_low_and_high_and_read_only() {
        let mut rom = vec![0u8; 64 * 1024];
        rom[0xFFF0] = 0xEA;
        let mut m = PhysMem::pc(2, rom).unwrap();
        assert_eq!(m.read_u8(0xFFFF0), Some(0xEA));
        assert_eq!(m.read_u8(0xFFFF_FFF0), Some(0xEA));
        assert!(m.write_u8(0xFFFF0, 0x90));
        assert_eq!(m.read_u8(0xFFFF0), Some(0xEA));
        assert_eq!(m.read_u8(0x8000_0000), Some(0xFF), "unmapped reads as ones");
    }

    #[test]
    fn option_rom_is_read_only_shadowable_and_restored() {
        let mut m = PhysMem::pc(2, vec![0; 64 * 1024]).unwrap();
        let mut rom = vec![0u8; 0x1200];
        rom[0] = 0x55;
        rom[1] = 0xAA;
        m.add_option_rom(0xC0000, rom).unwrap();
        assert_eq!(m.read_u16(0xC0000), Some(0xAA55));
        m.write_u8(0xC0000, 0);
        assert_eq!(m.read_u8(0xC0000), Some(0x55), "read-only until shadowed");
        m.write_u8(0xC2000, 7);
        assert_eq!(m.read_u8(0xC2000), Some(7), "past the ROM's last page: RAM");
        m.set_rom_writable(0xC0000, 0xC3FFF, true);
        m.write_u8(0xC0000, 0x12);
        assert_eq!(m.read_u8(0xC0000), Some(0x12), "shadow RAM takes writes");
        m.set_rom_writable(0xC0000, 0xC3FFF, false);
        m.write_u8(0xC0000, 0x34);
        assert_eq!(m.read_u8(0xC0000), Some(0x12));
        m.restore_rom();
        assert_eq!(
            m.read_u8(0xC0000),
            Some(0x55),
            "a reset brings the image back"
        );
        let roms: Vec<_> = m.option_roms().map(|(b, r)| (b, r.len())).collect();
        assert_eq!(roms, vec![(0xC0000, 0x1200)]);
    }

    #[test]
    fn option_roms_must_fit_the_expansion_area() {
        let mut m = PhysMem::pc(2, vec![0; 64 * 1024]).unwrap();
        for (base, len) in [
            (0xB0000, 0x800),
            (0xC0100, 0x800),
            (0xDF800, 0x1000),
            (0xC0000, 0),
        ] {
            assert_eq!(
                m.add_option_rom(base, vec![0; len]),
                Err(MemError::BadOptionRom { base, len }),
                "{base:#x}+{len:#x}"
            );
        }
        m.add_option_rom(0xC0000, vec![0; 0x8000]).unwrap();
        assert!(
            m.add_option_rom(0xC7800, vec![0; 0x800]).is_err(),
            "overlap"
        );
        m.add_option_rom(0xC8000, vec![0; 0x800]).unwrap();
    }

    #[test]
    fn bad_rom_size_is_an_error() {
        assert_eq!(
            PhysMem::pc(1, vec![0; 1000]).unwrap_err(),
            MemError::BadRomSize(1000)
        );
    }

    #[test]
    fn a20_gate_wraps_at_one_mib() {
        let mut m = PhysMem::new(2 << 20);
        m.write_u8(0x10_0005, 7);
        assert_eq!(m.read_u8(0x5), Some(0));
        m.set_a20(false);
        assert_eq!(m.read_u8(0x10_0005), Some(0));
        m.write_u8(0x10_0005, 9);
        assert_eq!(m.read_u8(0x5), Some(9));
    }

    #[test]
    fn code_page_write_is_reported_once() {
        let mut m = PhysMem::new(1 << 20);
        m.mark_code_page(0x7C00);
        assert!(!m.smc_pending());
        m.write_u16(0x7C10, 0x9090);
        m.write_u8(0x7C11, 0x90);
        let mut v = Vec::new();
        m.take_smc_pages(&mut v);
        assert_eq!(v, vec![7]);
    }

    #[test]
    fn smram_routes_the_vga_window_to_ram_as_the_register_says() {
        use smram::*;
        let mut m = PhysMem::new(1 << 20);
        m.add_mmio(FIRST, LAST);
        m.poke(0xA8000, &[0x5A]);
        assert_eq!(m.read_u8(0xA8000), None, "power-on: the VGA");
        m.set_smm(true);
        assert_eq!(m.read_u8(0xA8000), None, "SMM without G_SMRAME: the VGA");
        m.set_smm(false);
        m.set_smram_control(C_BASE_SEG | G_SMRAME | D_OPEN);
        assert_eq!(m.read_u8(0xA8000), Some(0x5A), "D_OPEN: RAM for everyone");
        assert_eq!(m.read_u8(0xBFFFF), Some(0));
        assert_eq!(m.read_u8(0xC0000), Some(0), "outside the window: untouched");
        assert!(m.write_u8(0xA8001, 7));
        m.mark_code_page(0xA8000);
        m.set_smram_control(C_BASE_SEG | G_SMRAME);
        assert_eq!(m.read_u8(0xA8001), None, "closed: the VGA again");
        let mut pages = Vec::new();
        m.take_smc_pages(&mut pages);
        assert_eq!(pages, vec![0xA8], "decoded SMRAM code is dropped");
        m.set_smm(true);
        assert_eq!(m.read_u8(0xA8001), Some(7), "in SMM: SMRAM");
        m.set_smram_control(C_BASE_SEG | G_SMRAME | D_CLS);
        assert_eq!(m.read_u8(0xA8001), None, "D_CLS: SMM data goes to the VGA");
        m.set_smram_control(C_BASE_SEG | G_SMRAME);
        m.set_smm(false);
        assert_eq!(m.read_u8(0xA8001), None);
    }

    #[test]
    fn mmio_is_reported_to_the_caller() {
        let mut m = PhysMem::new(1 << 20);
        m.add_mmio(0xA0000, 0xBFFFF);
        assert_eq!(m.read_u8(0xA0000), None);
        assert!(!m.write_u32(0x9FFFE, 1), "straddling write touches MMIO");
        assert_eq!(m.read_u16(0x9FFFF), None, "straddling read touches MMIO");
        assert_eq!(m.read_u16(0x9FFFE), Some(0));
    }
}
