//! Video memory as part of the memory map: the display adapter's memory
//! (16 MiB on the Bochs/QEMU standard VGA) seen at its linear frame buffer
//! (the PCI BAR, anywhere above RAM) and, while a VBE mode is on, through
//! the 64 KiB bank window at 0xA0000.
//!
//! Why here and not behind the bus: a guest that clears a 1024x768x32
//! screen stores 3 MiB; through the bus that is one dynamic call per byte.
//! Kept in the memory map, a store is a range check and a copy, with no
//! allocation or lock. The VGA model keeps the registers and decides what
//! is mapped; the machine tells this map ([`PhysMem::map_lfb`],
//! [`PhysMem::map_vram_window`]) after each port write, before the next
//! instruction.
//!
//! Decoded code: both ranges answer [`PhysMem::is_mmio`], so the CPU never
//! caches instructions fetched from them (a bank switch or a store changes
//! the bytes without any code-page bookkeeping, and stays correct).

use crate::phys::{PhysMem, F_CODE, F_MMIO, F_VRAM, PAGE_SHIFT};

/// First address of the VBE bank window.
const WINDOW_FIRST: u32 = 0xA_0000;
/// Bytes in the bank window (one 64 KiB bank).
const WINDOW_BYTES: u32 = 0x1_0000;

impl PhysMem {
    /// Give the map `bytes` of video memory (zeroed); 0 removes it. The
    /// frame buffer and window are unmapped until the machine maps them.
    pub fn set_video_memory_size(&mut self, bytes: usize) {
        self.map_vram_window(None);
        self.lfb_base = None;
        self.vram = vec![0; bytes];
    }

    /// The video memory (empty without a VBE adapter).
    pub fn video_memory(&self) -> &[u8] {
        &self.vram
    }

    /// The video memory for host-side writes (the adapter clearing it on a
    /// mode set, the BIOS, snapshots). Code is never cached from it, so no
    /// invalidation is needed.
    pub fn video_memory_mut(&mut self) -> &mut [u8] {
        &mut self.vram
    }

    /// Map the linear frame buffer at `base` (the whole video memory), or
    /// unmap it with `None`. RAM and the ROM alias keep priority where a
    /// guest puts the BAR over them.
    pub fn map_lfb(&mut self, base: Option<u32>) {
        self.lfb_base = base.filter(|_| !self.vram.is_empty());
    }

    /// Where the linear frame buffer is mapped.
    pub fn lfb_base(&self) -> Option<u32> {
        self.lfb_base
    }

    /// Show video memory from `offset` in the 64 KiB window at 0xA0000
    /// (a VBE bank), or give the window back to the bus (`None`: the
    /// legacy VGA's planes). The window pages keep their MMIO mark, so
    /// whatever else routes them (SMRAM) still sees them as device pages.
    pub fn map_vram_window(&mut self, offset: Option<u32>) {
        let offset = offset.filter(|&o| o as usize + WINDOW_BYTES as usize <= self.vram.len());
        let first = (WINDOW_FIRST >> PAGE_SHIFT) as usize;
        let last = ((WINDOW_FIRST + WINDOW_BYTES - 1) >> PAGE_SHIFT) as usize;
        for p in first..=last.min(self.page_flags.len().saturating_sub(1)) {
            if offset.is_some() {
                self.page_flags[p] |= F_VRAM;
            } else {
                self.page_flags[p] &= !F_VRAM;
            }
        }
        self.vram_window = offset;
    }

    /// The video memory offset the 0xA0000 window shows.
    pub fn vram_window(&self) -> Option<u32> {
        self.vram_window
    }

    /// Whether `a` is inside the mapped linear frame buffer.
    pub(crate) fn in_lfb(&self, a: u32) -> bool {
        self.lfb_base
            .is_some_and(|b| a >= b && ((a - b) as usize) < self.vram.len())
    }

    /// The video memory index of the `len` bytes at physical `a` (A20
    /// applied), if all of them are video memory.
    #[inline]
    fn vram_index(&self, a: u32, len: u32) -> Option<usize> {
        if let Some(o) = self.vram_window {
            let w = a.wrapping_sub(WINDOW_FIRST);
            if w < WINDOW_BYTES {
                let page = self.page_flags.get((a >> PAGE_SHIFT) as usize)?;
                if page & (F_MMIO | F_VRAM) != F_MMIO | F_VRAM || w + len > WINDOW_BYTES {
                    return None;
                }
                return Some((o + w) as usize);
            }
        }
        let b = self.lfb_base?;
        let off = a.wrapping_sub(b) as usize;
        (a >= b && off + len as usize <= self.vram.len()).then_some(off)
    }

    /// Read `len` (1, 2 or 4) bytes of video memory at `a`, little-endian.
    #[inline]
    pub(crate) fn vram_read(&self, a: u32, len: u32) -> Option<u32> {
        let i = self.vram_index(a, len)?;
        let mut v = 0u32;
        for (k, b) in self.vram[i..i + len as usize].iter().enumerate() {
            v |= (*b as u32) << (8 * k);
        }
        Some(v)
    }

    /// Write `len` bytes of `v` into video memory at `a`; false if `a` is
    /// not (all) video memory.
    #[inline]
    pub(crate) fn vram_write(&mut self, a: u32, len: u32, v: u32) -> bool {
        let Some(i) = self.vram_index(a, len) else {
            return false;
        };
        self.vram[i..i + len as usize].copy_from_slice(&v.to_le_bytes()[..len as usize]);
        // A window page that held code while it was RAM (SMRAM open) and
        // kept the mark.
        if let Some(f) = self.page_flags.get_mut((a >> PAGE_SHIFT) as usize) {
            if *f & F_CODE != 0 && a < WINDOW_FIRST + WINDOW_BYTES {
                *f &= !F_CODE;
                self.smc_pages.push(a >> PAGE_SHIFT);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use crate::PhysMem;

    fn mem() -> PhysMem {
        let mut m = PhysMem::new(1 << 20);
        m.add_mmio(0xA0000, 0xBFFFF);
        m.set_video_memory_size(1 << 20);
        m
    }

    #[test]
    fn lfb_is_plain_memory_where_mapped() {
        let mut m = mem();
        assert_eq!(m.read_u8(0xE000_0000), Some(0xFF), "unmapped: open bus");
        m.map_lfb(Some(0xE000_0000));
        assert!(m.write_u32(0xE000_0010, 0x1122_3344));
        assert_eq!(m.video_memory()[0x10..0x14], [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(m.read_u16(0xE000_0011), Some(0x2233));
        assert!(m.write_u8(0xE00F_FFFF, 7));
        assert_eq!(m.read_u8(0xE00F_FFFF), Some(7));
        assert_eq!(m.read_u8(0xE010_0000), Some(0xFF), "past the end");
        assert!(m.is_mmio(0xE000_0000), "never cached as code");
        m.map_lfb(Some(0xF000_0000));
        assert_eq!(m.read_u32(0xF000_0010), Some(0x1122_3344), "BAR moved");
        assert_eq!(m.read_u8(0xE000_0010), Some(0xFF));
    }

    /// What a guest's clear of a 1024x768x32 screen costs in the memory
    /// map (3 MiB of dword stores), by hand: `cargo test --release -p
    /// ringside-mmu lfb_clear -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand"]
    fn lfb_clear_timing() {
        let mut m = mem();
        m.set_video_memory_size(16 << 20);
        m.map_lfb(Some(0xE000_0000));
        let t = std::time::Instant::now();
        for round in 0..10u32 {
            for i in 0..1024 * 768u32 {
                assert!(m.write_u32(0xE000_0000 + 4 * i, round));
            }
        }
        let per = t.elapsed() / (10 * 1024 * 768);
        eprintln!("{per:?} per dword store to the frame buffer");
    }

    #[test]
    fn window_shows_the_selected_bank() {
        let mut m = mem();
        m.video_memory_mut()[0x2_0005] = 0x5A;
        assert_eq!(m.read_u8(0xA0005), None, "unmapped: the bus (legacy VGA)");
        m.map_vram_window(Some(0x2_0000));
        assert_eq!(m.read_u8(0xA0005), Some(0x5A));
        assert!(m.write_u32(0xAFFFC, 0xAABB_CCDD));
        assert_eq!(m.video_memory()[0x2_FFFC], 0xDD);
        assert_eq!(m.read_u8(0xB0000), None, "0xB0000 stays the bus's");
        assert!(!m.write_u16(0xAFFFF, 1), "straddles the window's end");
        m.map_vram_window(Some(0x1_0000));
        assert_eq!(m.read_u8(0xA0005), Some(0));
        m.map_vram_window(Some(0xFF_0000));
        assert_eq!(m.vram_window(), None, "a bank past the memory is refused");
        assert_eq!(m.read_u8(0xA0005), None);
    }
}
