//! The decoded-instruction cache.
//!
//! iced-x86 decodes each instruction once; the result is kept as an [`Entry`]
//! that carries the handler chosen for it, keyed by the physical address of
//! its first byte and the code size (16/32). Pages holding cached entries are
//! marked in the memory map; a store to such a page queues it, and the CPU
//! drops the whole page of entries before its next fetch, so self-modifying
//! code (including a store into the very next instruction) sees its new bytes.
//! Instructions that cross a page boundary are not cached: their second page
//! is not tracked, and they are rare.

use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};

use crate::exec::Handler;

/// One decoded instruction, ready to execute.
#[derive(Clone, Copy)]
pub struct Entry {
    /// The decoded instruction.
    pub ins: Instruction,
    /// Its handler, chosen once at decode time.
    pub(crate) handler: Handler,
    /// Operand size of the first operand in bytes (1, 2, 4), or the
    /// instruction's operand size when it has no sized first operand.
    pub size: u8,
    /// 32-bit addressing (0x67 in 16-bit code, or 32-bit code).
    pub addr32: bool,
    /// Code size this was decoded for.
    pub code32: bool,
    /// Length in bytes.
    pub len: u8,
    /// Base cycle cost.
    pub cycles: u8,
    /// Offset of the instruction within its physical page.
    pub off: u16,
    /// Index + 1 (in the same page) of the entry that ran after this one last
    /// time, or 0: a successor prediction that lets the run loop find the
    /// next entry without waiting for EIP (see [`DecodeCache::find`]).
    pub(crate) next: u16,
    /// Whether the entry may be kept in the cache (not crossing a page or
    /// the segment end, not fetched from MMIO).
    pub cacheable: bool,
    /// Operand 0 as a general-register slot ([`crate::exec::operand::gpr_slot`]),
    /// or 0xFF: lets hot handlers skip iced's operand-kind dispatch.
    pub r0: u8,
    /// Operand 1 as a general-register slot, or 0xFF.
    pub r1: u8,
    /// Operand 1's immediate, sign-extended as encoded and truncated to the
    /// operand size (0 when operand 1 is not an immediate).
    pub imm: u32,
}

const PAGE_SLOTS: usize = 4096;
const PAGES: usize = 1 << 20;

pub(crate) struct CachePage {
    /// Entry index + 1 for each byte offset, 0 when nothing is cached there.
    slots: [u16; PAGE_SLOTS],
    entries: Vec<Entry>,
}

/// Where the previously executed entry lives (page number, entry index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub page: u32,
    pub idx: u16,
}

impl Link {
    /// No previous entry.
    pub const NONE: Link = Link {
        page: u32::MAX,
        idx: 0,
    };
}

/// Decoded-instruction cache with hit/miss/invalidation counters.
pub struct DecodeCache {
    pages: Vec<Option<Box<CachePage>>>,
    /// Page numbers that were given a page since the last flush, so a flush
    /// touches only those, not all 2^20 slots.
    live: Vec<u32>,
    /// Emptied pages kept for reuse: self-modifying code invalidates the
    /// same pages over and over, and an 8 KiB allocation each time is waste.
    spare: Vec<Box<CachePage>>,
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that had to decode.
    pub misses: u64,
    /// Pages dropped because their bytes were written.
    pub invalidations: u64,
}

/// An empty placeholder that owns no page table (no allocation); the run
/// loop leaves one in the CPU while it works on the real cache.
impl Default for DecodeCache {
    fn default() -> Self {
        DecodeCache {
            pages: Vec::new(),
            live: Vec::new(),
            spare: Vec::new(),
            hits: 0,
            misses: 0,
            invalidations: 0,
        }
    }
}

impl DecodeCache {
    /// An empty cache covering the 4 GiB physical space.
    pub fn new() -> Self {
        let mut pages = Vec::new();
        pages.resize_with(PAGES, || None);
        DecodeCache {
            pages,
            live: Vec::new(),
            spare: Vec::new(),
            hits: 0,
            misses: 0,
            invalidations: 0,
        }
    }

    /// Find the entry for `phys`/`code32`, trying the successor that followed
    /// `prev` last time first. Returns the entry, its index, and whether the
    /// prediction was right. The predicted path indexes memory only with
    /// values known before the previous instruction finished, so the host
    /// CPU can load the next entry while the current one still executes.
    #[inline(always)]
    pub(crate) fn find(&self, prev: Link, phys: u32, code32: bool) -> Option<(&Entry, u16, bool)> {
        let pno = phys >> 12;
        let off = (phys & 0xFFF) as u16;
        if let Some(Some(page)) = self.pages.get(prev.page as usize) {
            if let Some(pe) = page.entries.get(prev.idx as usize) {
                let n = pe.next;
                if n != 0 {
                    if let Some(c) = page.entries.get(n as usize - 1) {
                        if c.off == off && c.code32 == code32 && prev.page == pno {
                            return Some((c, n - 1, true));
                        }
                    }
                }
            }
        }
        let page = self.pages.get(pno as usize)?.as_deref()?;
        let slot = page.slots[off as usize];
        if slot == 0 {
            return None;
        }
        let e = &page.entries[slot as usize - 1];
        (e.code32 == code32).then_some((e, slot - 1, false))
    }

    /// Record that entry `idx` ran after `prev` (same page only).
    #[inline(always)]
    pub(crate) fn link(&mut self, prev: Link, page: u32, idx: u16) {
        if prev.page != page {
            return;
        }
        if let Some(Some(p)) = self.pages.get_mut(page as usize) {
            if let Some(pe) = p.entries.get_mut(prev.idx as usize) {
                pe.next = idx + 1;
            }
        }
    }

    /// Number of pages currently holding decoded instructions.
    pub fn cached_pages(&self) -> usize {
        self.live
            .iter()
            .filter(|&&p| self.pages[p as usize].is_some())
            .count()
    }

    /// Remember `e` at `phys`; returns its index in the page.
    pub(crate) fn insert(&mut self, phys: u32, e: Entry) -> Option<u16> {
        if self.pages.is_empty() {
            return None;
        }
        let pno = (phys >> 12) as usize;
        if self.pages[pno].is_none() {
            let page = self.spare.pop().unwrap_or_else(|| {
                Box::new(CachePage {
                    slots: [0; PAGE_SLOTS],
                    entries: Vec::with_capacity(64),
                })
            });
            self.pages[pno] = Some(page);
            self.live.push(pno as u32);
            if self.live.len() >= 8192 {
                // Invalidated pages stay listed until here: keep the list
                // bounded by the pages really present.
                let pages = &self.pages;
                self.live.retain(|&p| pages[p as usize].is_some());
                self.live.sort_unstable();
                self.live.dedup();
            }
        }
        let p = self.pages[pno].as_deref_mut()?;
        if p.entries.len() >= u16::MAX as usize - 1 {
            p.entries.clear();
            p.slots.fill(0);
        }
        p.entries.push(e);
        p.slots[(phys & 0xFFF) as usize] = p.entries.len() as u16;
        Some(p.entries.len() as u16 - 1)
    }

    /// Drop every entry of physical page `page`.
    pub fn invalidate_page(&mut self, page: u32) {
        if let Some(slot) = self.pages.get_mut(page as usize) {
            if let Some(p) = slot.take() {
                self.invalidations += 1;
                self.recycle(p);
            }
        }
    }

    fn recycle(&mut self, mut p: Box<CachePage>) {
        if self.spare.len() < 64 {
            p.slots.fill(0);
            p.entries.clear();
            self.spare.push(p);
        }
    }

    /// Drop everything.
    pub fn flush(&mut self) {
        let live = std::mem::take(&mut self.live);
        for &pno in &live {
            if let Some(p) = self.pages[pno as usize].take() {
                self.recycle(p);
            }
        }
        self.live = live;
        self.live.clear();
    }
}

/// Result of decoding raw bytes.
pub(crate) enum Decoded {
    /// A valid instruction.
    Ok(Instruction),
    /// Not an instruction this CPU knows: #UD.
    Invalid,
    /// Longer than 15 bytes: #GP(0).
    TooLong,
    /// The bytes ran out before the instruction did (the next byte could
    /// not be fetched).
    Truncated,
}

/// Decode one instruction from `bytes` (at least 16 bytes for the length check).
pub(crate) fn decode_bytes(bytes: &[u8], ip: u32, code32: bool) -> Decoded {
    let mut d = Decoder::with_ip(
        if code32 { 32 } else { 16 },
        bytes,
        ip as u64,
        DecoderOptions::NONE,
    );
    let ins = d.decode();
    if d.last_error() == DecoderError::None {
        return Decoded::Ok(ins);
    }
    if d.last_error() == DecoderError::NoMoreBytes && bytes.len() < 16 {
        return Decoded::Truncated;
    }
    // iced reports an over-long instruction as invalid. Tell the two apart:
    // keep one copy of each prefix and decode again; if that is a valid
    // instruction, the original was only too long (#GP(0), SDM Vol. 2 §2.3.11).
    let prefixes = bytes.iter().take_while(|b| is_prefix(**b)).count();
    if prefixes == 0 {
        return Decoded::Invalid;
    }
    let mut short: Vec<u8> = Vec::with_capacity(32);
    for &b in &bytes[..prefixes] {
        if let Some(i) = short.iter().position(|&x| x == b) {
            short.remove(i);
        }
        short.push(b);
    }
    let kept = short.len();
    short.extend_from_slice(&bytes[prefixes..]);
    short.resize(kept + 16, 0);
    let mut d2 = Decoder::with_ip(
        if code32 { 32 } else { 16 },
        &short,
        ip as u64,
        DecoderOptions::NONE,
    );
    let ins2 = d2.decode();
    if d2.last_error() == DecoderError::None && prefixes + ins2.len() - kept > 15 {
        Decoded::TooLong
    } else {
        Decoded::Invalid
    }
}

fn is_prefix(b: u8) -> bool {
    matches!(
        b,
        0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        let ins = match decode_bytes(&[0x90; 32], 0, false) {
            Decoded::Ok(i) => i,
            _ => unreachable!("NOP decodes"),
        };
        crate::exec::make_entry(ins, false)
    }

    #[test]
    fn invalidate_and_flush_drop_entries() {
        let mut c = DecodeCache::new();
        c.insert(0x7C00, entry());
        c.insert(0x8000, entry());
        assert!(c.find(Link::NONE, 0x7C00, false).is_some());
        assert!(
            c.find(Link::NONE, 0x7C00, true).is_none(),
            "code size is part of the key"
        );
        c.invalidate_page(7);
        assert!(c.find(Link::NONE, 0x7C00, false).is_none());
        assert_eq!(c.cached_pages(), 1);
        c.flush();
        assert!(c.find(Link::NONE, 0x8000, false).is_none());
        assert_eq!(c.cached_pages(), 0);
    }

    #[test]
    fn live_list_stays_bounded_under_repeated_invalidation() {
        let mut c = DecodeCache::new();
        for _ in 0..20_000 {
            c.insert(0x7C00, entry());
            c.invalidate_page(7);
        }
        assert!(c.live.len() < 8192);
    }

    #[test]
    fn sixteen_prefixes_are_too_long_not_invalid() {
        let mut b = vec![0x66u8; 15];
        b.extend_from_slice(&[0x90; 17]);
        assert!(matches!(decode_bytes(&b, 0, false), Decoded::TooLong));
        assert!(matches!(
            decode_bytes(
                &[0x0F, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                0,
                false
            ),
            Decoded::Ok(_)
        ));
        assert!(matches!(
            decode_bytes(
                &[0x0F, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                0,
                false
            ),
            Decoded::Invalid
        ));
    }
}
