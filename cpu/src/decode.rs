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
//!
//! All entries live in one arena, addressed by a global index (a [`Link`]).
//! With each entry the arena keeps its key and the index of the entry that
//! ran after it last time, so the run loop finds the next instruction with
//! two loads whose addresses are known before the current one finishes: the
//! successor index, then the successor's key, compared with the new
//! (physical address, code size), next to the successor entry itself. An entry whose page was invalidated gets a
//! key nothing matches, so a stale index never hits.

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
    /// The memory operand's base register (0–7, [`crate::Cpu::regs`]
    /// order), [`EA_NONE`] without one, or [`EA_SLOW`] when the effective
    /// address must be computed from `ins` (8-bit index of XLAT).
    pub(crate) mbase: u8,
    /// The memory operand's index register (0–7), or [`EA_NONE`].
    pub(crate) mindex: u8,
    /// log2 of the index scale.
    pub(crate) mscale: u8,
    /// The memory operand's segment (override or default).
    pub(crate) mseg: crate::regs::SegReg,
}

/// [`Entry::mbase`]/[`Entry::mindex`]: no register.
pub(crate) const EA_NONE: u8 = 0xFF;
/// [`Entry::mbase`]: compute the effective address from the instruction.
pub(crate) const EA_SLOW: u8 = 0xFE;

// One entry per host cache line.
const _: () = assert!(std::mem::size_of::<Entry>() <= 64);

const PAGE_SLOTS: usize = 4096;
const PAGES: usize = 1 << 20;

/// A page holding more entries than this (code run alternately as 16- and
/// 32-bit leaves replaced entries behind) is emptied before the next insert.
const PAGE_MEMBERS_MAX: usize = 2 * PAGE_SLOTS;

pub(crate) struct CachePage {
    /// Arena index of the entry starting at each byte offset, 0 when none.
    slots: [u32; PAGE_SLOTS],
    /// Arena indices of every entry that belongs to this page.
    members: Vec<u32>,
}

/// Arena index of a cached entry. Index 0 is a sentinel that never matches.
pub(crate) type Link = u32;

/// No entry (the sentinel).
pub(crate) const LINK_NONE: Link = 0;

/// The lookup key of an entry: physical address and code size.
#[inline(always)]
fn key(phys: u32, code32: bool) -> u64 {
    phys as u64 | (code32 as u64) << 32
}

/// [`key`] from the CS attributes (D bit 14 moved to bit 32: a mask and a
/// shift, where the `bool` form costs a compare and a select).
#[inline(always)]
pub(crate) fn key_cs(phys: u32, cs_attrs: u16) -> u64 {
    phys as u64 | ((cs_attrs as u64 & 0x4000) << 18)
}

/// The key of a dead entry (and of the sentinel): no lookup produces it.
const DEAD: u64 = u64::MAX;

/// One arena slot: an entry with its lookup key and successor.
#[derive(Clone, Copy)]
struct Slot {
    key: u64,
    /// The entry that ran after this one last time (or the sentinel).
    next: Link,
    entry: Entry,
}

/// Decoded-instruction cache with hit/miss/invalidation counters.
pub struct DecodeCache {
    /// The arena; index 0 is the sentinel.
    slots: Vec<Slot>,
    /// Arena indices of dead entries, for reuse.
    free: Vec<u32>,
    pages: Vec<Option<Box<CachePage>>>,
    /// Page numbers that were given a page since the last flush, so a flush
    /// touches only those, not all 2^20 slots.
    live: Vec<u32>,
    /// Emptied pages kept for reuse: self-modifying code invalidates the
    /// same pages over and over, and a 16 KiB allocation each time is waste.
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
            slots: Vec::new(),
            free: Vec::new(),
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
        let mut c = DecodeCache {
            pages,
            ..DecodeCache::default()
        };
        c.reset_arena();
        c
    }

    /// Empty the arena, leaving only the sentinel.
    fn reset_arena(&mut self) {
        self.slots.clear();
        self.free.clear();
        self.slots.push(Slot {
            key: DEAD,
            next: LINK_NONE,
            entry: crate::exec::sentinel_entry(),
        });
    }

    /// Find the entry for `phys`/`code32`, trying `pred` (the successor
    /// [`DecodeCache::entry`] returned for the previous entry) first. Returns the entry, its
    /// index ([`DecodeCache::entry`]) and whether the prediction was right.
    #[cfg(test)]
    pub(crate) fn find(&self, pred: Link, phys: u32, code32: bool) -> Option<(Link, bool)> {
        if matches!(self.slots.get(pred as usize), Some(s) if s.key == key(phys, code32)) {
            return Some((pred, true));
        }
        self.find_by_address(phys, code32).map(|i| (i, false))
    }

    /// The entry `pred` names and its successor, if `pred` is the entry
    /// for `phys`/`code32`: the run loop's usual case, one bounds check and
    /// one compare, with the entry in the same slot. `k` is the wanted
    /// [`key_cs`]. Counts the hit.
    #[inline(always)]
    pub(crate) fn predicted(&mut self, pred: Link, k: u64) -> Option<(&Entry, Link)> {
        let s = self.slots.get(pred as usize)?;
        if s.key != k {
            return None;
        }
        self.hits += 1;
        Some((&s.entry, s.next))
    }

    /// The lookup by address, for a wrong or missing prediction.
    #[inline]
    pub(crate) fn find_by_address(&self, phys: u32, code32: bool) -> Option<Link> {
        let page = self.pages.get((phys >> 12) as usize)?.as_deref()?;
        let idx = page.slots[(phys & 0xFFF) as usize];
        if idx == LINK_NONE || self.slots.get(idx as usize)?.key != key(phys, code32) {
            return None;
        }
        Some(idx)
    }

    /// The entry at `idx`, an index [`DecodeCache::find`] returned, and
    /// the entry that followed it last time.
    #[inline(always)]
    pub(crate) fn entry(&self, idx: Link) -> (&Entry, Link) {
        let s = &self.slots[idx as usize];
        (&s.entry, s.next)
    }

    /// Record that entry `idx` ran after `prev`.
    #[inline(always)]
    pub(crate) fn link(&mut self, prev: Link, idx: Link) {
        if let Some(m) = self.slots.get_mut(prev as usize) {
            m.next = idx;
        }
    }

    /// Number of pages currently holding decoded instructions.
    pub fn cached_pages(&self) -> usize {
        self.live
            .iter()
            .filter(|&&p| self.pages[p as usize].is_some())
            .count()
    }

    /// Remember `e` at `phys`; returns its index.
    pub(crate) fn insert(&mut self, phys: u32, e: Entry) -> Option<Link> {
        if self.pages.is_empty() {
            return None;
        }
        let pno = phys >> 12;
        if let Some(p) = self.pages[pno as usize].as_deref() {
            if p.members.len() >= PAGE_MEMBERS_MAX {
                self.drop_page(pno);
            }
        }
        if self.pages[pno as usize].is_none() {
            let page = self.spare.pop().unwrap_or_else(|| {
                Box::new(CachePage {
                    slots: [LINK_NONE; PAGE_SLOTS],
                    members: Vec::with_capacity(64),
                })
            });
            self.pages[pno as usize] = Some(page);
            self.live.push(pno);
            if self.live.len() >= 8192 {
                // Invalidated pages stay listed until here: keep the list
                // bounded by the pages really present.
                let pages = &self.pages;
                self.live.retain(|&p| pages[p as usize].is_some());
                self.live.sort_unstable();
                self.live.dedup();
            }
        }
        let slot = Slot {
            key: key(phys, e.code32),
            next: LINK_NONE,
            entry: e,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                let i = u32::try_from(self.slots.len()).ok()?;
                self.slots.push(slot);
                i
            }
        };
        let p = self.pages[pno as usize].as_deref_mut()?;
        p.members.push(idx);
        p.slots[(phys & 0xFFF) as usize] = idx;
        Some(idx)
    }

    /// Drop every entry of physical page `page`.
    pub fn invalidate_page(&mut self, page: u32) {
        if self.drop_page(page) {
            self.invalidations += 1;
        }
    }

    /// Kill the entries of `page` (their keys then match nothing) and free
    /// their arena slots. Whether the page held any.
    fn drop_page(&mut self, page: u32) -> bool {
        let Some(p) = self.pages.get_mut(page as usize).and_then(Option::take) else {
            return false;
        };
        for &i in &p.members {
            let s = &mut self.slots[i as usize];
            s.key = DEAD;
            s.next = LINK_NONE;
            self.free.push(i);
        }
        self.recycle(p);
        true
    }

    fn recycle(&mut self, mut p: Box<CachePage>) {
        if self.spare.len() < 64 {
            p.slots.fill(LINK_NONE);
            p.members.clear();
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
        if !self.pages.is_empty() {
            self.reset_arena();
        }
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
        assert!(c.find(LINK_NONE, 0x7C00, false).is_some());
        assert!(
            c.find(LINK_NONE, 0x7C00, true).is_none(),
            "code size is part of the key"
        );
        c.invalidate_page(7);
        assert!(c.find(LINK_NONE, 0x7C00, false).is_none());
        assert_eq!(c.cached_pages(), 1);
        c.flush();
        assert!(c.find(LINK_NONE, 0x8000, false).is_none());
        assert_eq!(c.cached_pages(), 0);
    }

    #[test]
    fn key_from_cs_attributes_matches_the_code_size_key() {
        for phys in [0, 0x7C00, 0xFFFF_FFF0] {
            assert_eq!(key_cs(phys, 0x4093), key(phys, true));
            assert_eq!(key_cs(phys, 0xC09B), key(phys, true));
            assert_eq!(key_cs(phys, 0x0093), key(phys, false));
            assert_ne!(key_cs(phys, 0x809B), key(phys, true));
        }
    }

    #[test]
    fn stale_prediction_never_matches() {
        let mut c = DecodeCache::new();
        let a = c.insert(0x7C00, entry()).unwrap();
        let b = c.insert(0x7C01, entry()).unwrap();
        c.link(a, b);
        assert_eq!(c.entry(a).1, b);
        assert_eq!(c.find(b, 0x7C01, false), Some((b, true)));
        // Wrong address or code size: found by address, not predicted.
        assert_eq!(c.find(b, 0x7C00, false), Some((a, false)));
        assert!(c.find(b, 0x7C01, true).is_none());
        // The page is dropped: the old index no longer hits, and its arena
        // slot may come back for another address.
        c.invalidate_page(7);
        assert!(c.find(b, 0x7C01, false).is_none());
        let d = c.insert(0x9000, entry()).unwrap();
        assert!(c.find(b, 0x7C01, false).is_none());
        assert!(c.find(d, 0x9000, false).is_some());
        // A flush empties the arena: old indices are out of range.
        c.flush();
        assert!(c.find(d, 0x9000, false).is_none());
        assert!(c.find(LINK_NONE, 0x9000, false).is_none());
    }

    #[test]
    fn alternating_code_size_stays_bounded() {
        let mut c = DecodeCache::new();
        for i in 0..50_000 {
            let mut e = entry();
            e.code32 = i % 2 == 0;
            c.insert(0x7C00, e);
        }
        assert!(c.slots.len() <= PAGE_MEMBERS_MAX + 2);
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
