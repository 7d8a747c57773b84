//! A software TLB: direct-mapped, combined for instructions and data (one
//! array serves fetches, reads and writes; a P6 has split TLBs, but nothing
//! architectural depends on it).
//!
//! An entry holds the linear page tag, the physical page, and one permission
//! bit per (privilege, access) pair. A hit is a tag compare, a mask test and
//! an add; the physical address then goes through [`crate::PhysMem`]'s fast
//! path, which is where MMIO is told apart — so an MMIO page can never be
//! reached without the bus. (A raw host pointer in the entry would save the
//! RAM bounds check but needs `unsafe`; the safe addend is within a few
//! percent, see the paging benchmark.)
//!
//! A write permission is only granted once the walk has set the page's D
//! bit, so the first write to a clean page always walks and sets D, as the
//! SDM requires.

use crate::paging::Translation;

/// Entries in the TLB (a power of two).
pub const TLB_SIZE: usize = 1024;

/// Permission bits of an entry.
pub mod perm {
    /// Supervisor read/fetch.
    pub const SUP_READ: u8 = 1;
    /// Supervisor write.
    pub const SUP_WRITE: u8 = 2;
    /// User read/fetch.
    pub const USER_READ: u8 = 4;
    /// User write.
    pub const USER_WRITE: u8 = 8;
}

/// Why the TLB was flushed (for statistics and the trap log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushCause {
    /// MOV to CR3 (non-global entries).
    Cr3,
    /// CR0.PG/WP or CR4.PGE/PSE/PAE changed (everything).
    ControlBits,
    /// INVLPG (one page).
    Invlpg,
    /// A task switch loaded CR3.
    TaskSwitch,
}

/// One TLB entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbEntry {
    /// Linear page number + 1 (0 = empty).
    pub tag: u32,
    /// Physical page base.
    pub phys: u32,
    /// [`perm`] bits.
    pub perms: u8,
    /// Global page (survives CR3 loads).
    pub global: bool,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlbStats {
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed (or lacked the permission).
    pub misses: u64,
    /// Entries filled after a walk.
    pub fills: u64,
    /// Flushes by MOV CR3.
    pub flush_cr3: u64,
    /// Full flushes by control-bit changes.
    pub flush_control: u64,
    /// INVLPG invalidations.
    pub flush_invlpg: u64,
    /// Flushes by task switches.
    pub flush_task: u64,
}

/// The TLB.
#[derive(Clone, Debug)]
pub struct Tlb {
    entries: Box<[TlbEntry; TLB_SIZE]>,
    /// The page the last instruction fetch hit: its linear base with the
    /// permission bit it was granted in the low bits (0 = none). Code runs
    /// from one page for long stretches, so most fetches compare this one
    /// word instead of indexing the array. Every change to the entries
    /// (fill, flush, INVLPG) clears it.
    fetch_key: u32,
    /// Physical base of that page.
    fetch_phys: u32,
    /// Counters.
    pub stats: TlbStats,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            entries: Box::new([TlbEntry::default(); TLB_SIZE]),
            fetch_key: 0,
            fetch_phys: 0,
            stats: TlbStats::default(),
        }
    }
}

/// The permission bit an access needs.
#[inline(always)]
pub fn needed(write: bool, user: bool) -> u8 {
    match (user, write) {
        (false, false) => perm::SUP_READ,
        (false, true) => perm::SUP_WRITE,
        (true, false) => perm::USER_READ,
        (true, true) => perm::USER_WRITE,
    }
}

impl Tlb {
    /// The physical address of `linear` if a valid entry grants `need`.
    #[inline(always)]
    pub fn lookup(&mut self, linear: u32, need: u8) -> Option<u32> {
        let page = linear >> 12;
        let e = &self.entries[page as usize & (TLB_SIZE - 1)];
        if e.tag == page.wrapping_add(1) && e.perms & need != 0 {
            self.stats.hits += 1;
            return Some(e.phys | (linear & 0xFFF));
        }
        self.stats.misses += 1;
        None
    }

    /// [`Tlb::lookup`] for an instruction fetch: the page of the last
    /// fetch first (same counters: a hit is a hit).
    #[inline(always)]
    pub fn lookup_fetch(&mut self, linear: u32, need: u8) -> Option<u32> {
        let key = (linear & !0xFFF) | need as u32;
        if key == self.fetch_key {
            self.stats.hits += 1;
            return Some(self.fetch_phys | (linear & 0xFFF));
        }
        let p = self.lookup(linear, need)?;
        self.fetch_key = key;
        self.fetch_phys = p & !0xFFF;
        Some(p)
    }

    /// [`Tlb::lookup`] without touching the counters, for a caller that
    /// counts the hit itself once the access is sure to complete.
    #[inline(always)]
    pub fn probe(&self, linear: u32, need: u8) -> Option<u32> {
        let page = linear >> 12;
        let e = &self.entries[page as usize & (TLB_SIZE - 1)];
        if e.tag == page.wrapping_add(1) && e.perms & need != 0 {
            return Some(e.phys | (linear & 0xFFF));
        }
        None
    }

    /// Remember a walk's result for the 4 KiB page holding `linear` (large
    /// pages are cached 4 KiB at a time).
    pub fn fill(&mut self, linear: u32, t: &Translation) {
        let page = linear >> 12;
        let mut perms = perm::SUP_READ;
        if t.supervisor_writable && t.dirty {
            perms |= perm::SUP_WRITE;
        }
        if t.user {
            perms |= perm::USER_READ;
            if t.user_writable && t.dirty {
                perms |= perm::USER_WRITE;
            }
        }
        self.fetch_key = 0;
        self.entries[page as usize & (TLB_SIZE - 1)] = TlbEntry {
            tag: page.wrapping_add(1),
            phys: t.phys & 0xFFFF_F000,
            perms,
            global: t.global,
        };
        self.stats.fills += 1;
    }

    /// Drop entries: all, or only the non-global ones.
    pub fn flush(&mut self, cause: FlushCause, keep_global: bool) {
        match cause {
            FlushCause::Cr3 => self.stats.flush_cr3 += 1,
            FlushCause::ControlBits => self.stats.flush_control += 1,
            FlushCause::TaskSwitch => self.stats.flush_task += 1,
            FlushCause::Invlpg => self.stats.flush_invlpg += 1,
        }
        self.fetch_key = 0;
        for e in self.entries.iter_mut() {
            if !(keep_global && e.global) {
                *e = TlbEntry::default();
            }
        }
    }

    /// INVLPG: drop the entry for `linear` (global or not).
    pub fn invalidate(&mut self, linear: u32) {
        self.stats.flush_invlpg += 1;
        self.fetch_key = 0;
        let page = linear >> 12;
        let e = &mut self.entries[page as usize & (TLB_SIZE - 1)];
        if e.tag == page.wrapping_add(1) {
            *e = TlbEntry::default();
        }
    }

    /// The valid entries, for the debugger's `tlb` command: (linear page
    /// base, entry).
    pub fn dump(&self) -> Vec<(u32, TlbEntry)> {
        self.entries
            .iter()
            .filter(|e| e.tag != 0)
            .map(|e| ((e.tag - 1) << 12, *e))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(t: &mut Tlb, linear: u32, phys: u32, user: bool) {
        t.fill(
            linear,
            &Translation {
                phys,
                page_size: 4096,
                user_writable: user,
                user,
                supervisor_writable: true,
                dirty: true,
                global: false,
                levels: [None; 3],
            },
        );
    }

    #[test]
    fn fetch_page_follows_every_change_to_the_entries() {
        let mut t = Tlb::default();
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), None);
        map(&mut t, 0x40_1000, 0x9000, false);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), Some(0x9234));
        // The remembered page answers with the same hit count.
        let hits = t.stats.hits;
        assert_eq!(t.lookup_fetch(0x40_1FFF, perm::SUP_READ), Some(0x9FFF));
        assert_eq!(t.stats.hits, hits + 1);
        // A user fetch needs the user bit, which this page lacks.
        assert_eq!(t.lookup_fetch(0x40_1234, perm::USER_READ), None);
        // A refill of the page (a new mapping after a walk) is seen.
        map(&mut t, 0x40_1000, 0xA000, true);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), Some(0xA234));
        assert_eq!(t.lookup_fetch(0x40_1234, perm::USER_READ), Some(0xA234));
        // INVLPG and flushes drop it.
        t.invalidate(0x40_1000);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), None);
        map(&mut t, 0x40_1000, 0xB000, false);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), Some(0xB234));
        t.flush(FlushCause::Cr3, false);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), None);
        map(&mut t, 0x40_1000, 0xC000, false);
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), Some(0xC234));
        t.flush(FlushCause::ControlBits, true);
        // Not global: gone from the array, and from the fetch page.
        assert_eq!(t.lookup_fetch(0x40_1234, perm::SUP_READ), None);
    }
}
