//! The page walk (SDM Vol. 3A chapter 4): two-level 32-bit paging with
//! 4 KiB pages and 4 MiB pages (CR4.PSE), PAE paging with its
//! page-directory-pointer table and 2 MiB pages, accessed and dirty bits,
//! user/supervisor and read/write checks with CR0.WP, reserved-bit checks,
//! and the #PF error code.
//!
//! The same walk serves the CPU's TLB misses ([`walk`], which sets A/D as
//! the processor does) and every tool that looks at the tables without
//! touching them ([`peek`] on a shared `&PhysMem`: the debugger's `page`
//! command and address translation, the trap log's page-fault lines, the
//! teaching views). Both return every level visited.

use crate::phys::PhysMem;

/// Paging controls, from CR0, CR3 and CR4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PagingMode {
    /// CR3: page-directory (or PDPT) base.
    pub cr3: u32,
    /// CR4.PAE.
    pub pae: bool,
    /// CR4.PSE (large pages in 32-bit paging; always on with PAE).
    pub pse: bool,
    /// CR4.PGE (global pages).
    pub pge: bool,
    /// CR0.WP (supervisor writes honour R/W).
    pub wp: bool,
}

/// What the access wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// A write.
    pub write: bool,
    /// A user-mode access (CPL 3 and not an implicit supervisor access).
    pub user: bool,
    /// An instruction fetch (reported in the error code only with NX, which
    /// a P6 does not have).
    pub fetch: bool,
}

/// Page-table entry bits.
pub mod pte {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Read/write.
    pub const RW: u64 = 1 << 1;
    /// User/supervisor.
    pub const US: u64 = 1 << 2;
    /// Page-level write-through.
    pub const PWT: u64 = 1 << 3;
    /// Page-level cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// Page size (in a directory entry).
    pub const PS: u64 = 1 << 7;
    /// Global.
    pub const G: u64 = 1 << 8;
}

/// #PF error-code bits (SDM Vol. 3A §4.7).
pub mod pf {
    /// The fault was a protection violation (else: not present).
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was in user mode.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in a paging-structure entry.
    pub const RSVD: u32 = 1 << 3;
}

/// One paging-structure entry the walk read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// "PDPTE", "PDE" or "PTE".
    pub name: &'static str,
    /// Physical address of the entry.
    pub addr: u32,
    /// Its value (after the walk set A/D, when it did).
    pub value: u64,
}

/// Result of a successful walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the linear address walked.
    pub phys: u32,
    /// Page size in bytes (4 KiB, 2 MiB or 4 MiB).
    pub page_size: u32,
    /// Writable at user level (R/W set at every level).
    pub user_writable: bool,
    /// Accessible at user level (U/S set at every level).
    pub user: bool,
    /// Writable at supervisor level given CR0.WP.
    pub supervisor_writable: bool,
    /// The final entry's D bit is set (a write needs no walk to set it).
    pub dirty: bool,
    /// Global page (G bit and CR4.PGE).
    pub global: bool,
    /// Levels visited, outermost first.
    pub levels: [Option<Level>; 3],
}

/// A failed walk: the #PF error code and the levels visited up to the fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// Error code to push.
    pub error: u32,
    /// Levels visited.
    pub levels: [Option<Level>; 3],
}

fn read_entry(mem: &PhysMem, addr: u32, pae: bool) -> u64 {
    if pae {
        let lo = mem.read_u32(addr).unwrap_or(u32::MAX) as u64;
        let hi = mem.read_u32(addr.wrapping_add(4)).unwrap_or(u32::MAX) as u64;
        lo | (hi << 32)
    } else {
        mem.read_u32(addr).unwrap_or(u32::MAX) as u64
    }
}

fn write_entry(mem: &mut PhysMem, addr: u32, value: u64) {
    // A/D live in the low dword in both formats.
    mem.write_u32(addr, value as u32);
}

/// Reserved bits of PAE entries on a part with 36-bit physical addresses
/// and no NX (bits 63:36 everywhere).
const PAE_HIGH_RSVD: u64 = 0xFFFF_FFF0_0000_0000;

/// Walk the page tables for `linear`. With `set_ad`, set the accessed bits
/// (and the dirty bit for a permitted write) as the CPU does (SDM Vol. 3A
/// §4.8); without it the walk is [`peek`]'s. Permission checks follow SDM
/// Vol. 3A §4.6.
pub fn walk(
    mem: &mut PhysMem,
    mode: PagingMode,
    linear: u32,
    access: Access,
    set_ad: bool,
) -> Result<Translation, PageFault> {
    let (mut t, entries, n) = translate(mem, mode, linear, access)?;
    if set_ad {
        for (i, &(addr, e)) in entries[..n].iter().enumerate() {
            let mut v = e | pte::A;
            if i == n - 1 && access.write {
                v |= pte::D;
                t.dirty = true;
            }
            if v != e {
                write_entry(mem, addr, v);
                for l in t.levels.iter_mut().flatten() {
                    if l.addr == addr {
                        l.value = v;
                    }
                }
            }
        }
    }
    Ok(t)
}

/// Look `linear` up as a supervisor read would, without side effects (no
/// accessed or dirty bits set): for the debugger, the trap log and the
/// teaching views, which must not change what they show. `mem` is only
/// read.
pub fn peek(mem: &PhysMem, mode: PagingMode, linear: u32) -> Result<Translation, PageFault> {
    let access = Access {
        write: false,
        user: false,
        fetch: false,
    };
    translate(mem, mode, linear, access).map(|(t, _, _)| t)
}

/// The entries whose A (and, last, D) bits a walk sets: (address, value).
type Entries = [(u32, u64); 3];

/// The walk proper, read-only: the translation, and the entries to mark.
#[inline]
fn translate(
    mem: &PhysMem,
    mode: PagingMode,
    linear: u32,
    access: Access,
) -> Result<(Translation, Entries, usize), PageFault> {
    let mut levels: [Option<Level>; 3] = [None; 3];
    let ecode_base = if access.write { pf::W } else { 0 } | if access.user { pf::U } else { 0 };
    let not_present = |levels| PageFault {
        error: ecode_base,
        levels,
    };
    let reserved = |levels| PageFault {
        error: ecode_base | pf::P | pf::RSVD,
        levels,
    };
    let mut entries: Entries = [(0, 0); 3];
    let mut n = 0usize;
    let (phys, page_size, large);
    if mode.pae {
        let pdpte_addr = (mode.cr3 & 0xFFFF_FFE0) + ((linear >> 30) & 3) * 8;
        let pdpte = read_entry(mem, pdpte_addr, true);
        levels[0] = Some(Level {
            name: "PDPTE",
            addr: pdpte_addr,
            value: pdpte,
        });
        if pdpte & pte::P == 0 {
            return Err(not_present(levels));
        }
        if pdpte & (PAE_HIGH_RSVD | 0x1E6) != 0 {
            return Err(reserved(levels));
        }
        let pde_addr = (pdpte as u32 & 0xFFFF_F000) + ((linear >> 21) & 0x1FF) * 8;
        let pde = read_entry(mem, pde_addr, true);
        levels[1] = Some(Level {
            name: "PDE",
            addr: pde_addr,
            value: pde,
        });
        if pde & pte::P == 0 {
            return Err(not_present(levels));
        }
        entries[n] = (pde_addr, pde);
        n += 1;
        if pde & pte::PS != 0 {
            if pde & (PAE_HIGH_RSVD | 0x1F_E000) != 0 {
                return Err(reserved(levels));
            }
            phys = (pde as u32 & 0xFFE0_0000) | (linear & 0x1F_FFFF);
            page_size = 2 << 20;
            large = true;
        } else {
            if pde & PAE_HIGH_RSVD != 0 {
                return Err(reserved(levels));
            }
            let pte_addr = (pde as u32 & 0xFFFF_F000) + ((linear >> 12) & 0x1FF) * 8;
            let e = read_entry(mem, pte_addr, true);
            levels[2] = Some(Level {
                name: "PTE",
                addr: pte_addr,
                value: e,
            });
            if e & pte::P == 0 {
                return Err(not_present(levels));
            }
            if e & PAE_HIGH_RSVD != 0 {
                return Err(reserved(levels));
            }
            entries[n] = (pte_addr, e);
            n += 1;
            phys = (e as u32 & 0xFFFF_F000) | (linear & 0xFFF);
            page_size = 4096;
            large = false;
        }
    } else {
        let pde_addr = (mode.cr3 & 0xFFFF_F000) + (linear >> 22) * 4;
        let pde = read_entry(mem, pde_addr, false);
        levels[0] = Some(Level {
            name: "PDE",
            addr: pde_addr,
            value: pde,
        });
        if pde & pte::P == 0 {
            return Err(not_present(levels));
        }
        entries[n] = (pde_addr, pde);
        n += 1;
        if pde & pte::PS != 0 && mode.pse {
            // 4 MiB page; without PSE-36, bits 21:13 are reserved.
            if pde & 0x3F_E000 != 0 {
                return Err(reserved(levels));
            }
            phys = (pde as u32 & 0xFFC0_0000) | (linear & 0x3F_FFFF);
            page_size = 4 << 20;
            large = true;
        } else {
            let pte_addr = (pde as u32 & 0xFFFF_F000) + ((linear >> 12) & 0x3FF) * 4;
            let e = read_entry(mem, pte_addr, false);
            levels[1] = Some(Level {
                name: "PTE",
                addr: pte_addr,
                value: e,
            });
            if e & pte::P == 0 {
                return Err(not_present(levels));
            }
            entries[n] = (pte_addr, e);
            n += 1;
            phys = (e as u32 & 0xFFFF_F000) | (linear & 0xFFF);
            page_size = 4096;
            large = false;
        }
    }
    let _ = large;
    // Permissions are the AND over the levels (the PDPTE has no R/W or U/S).
    let user = entries[..n].iter().all(|(_, e)| e & pte::US != 0);
    let rw = entries[..n].iter().all(|(_, e)| e & pte::RW != 0);
    let user_writable = user && rw;
    let supervisor_writable = rw || !mode.wp;
    let last = entries[n - 1];
    let global = mode.pge && last.1 & pte::G != 0;
    let allowed = if access.user {
        user && (!access.write || rw)
    } else {
        !access.write || supervisor_writable
    };
    if !allowed {
        return Err(PageFault {
            error: ecode_base | pf::P,
            levels,
        });
    }
    let dirty = last.1 & pte::D != 0;
    let t = Translation {
        phys,
        page_size,
        user_writable,
        user,
        supervisor_writable,
        dirty,
        global,
        levels,
    };
    Ok((t, entries, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RD: Access = Access {
        write: false,
        user: false,
        fetch: false,
    };
    const WR_USER: Access = Access {
        write: true,
        user: true,
        fetch: false,
    };

    fn mem_with_tables() -> PhysMem {
        let mut m = PhysMem::new(8 << 20);
        // Page directory at 0x1000: PDE 0 → page table at 0x2000 (user, rw).
        m.write_u32(0x1000, 0x2000 | 0x7);
        // PTE 5 → 0x5000, present, user, read-only.
        m.write_u32(0x2000 + 5 * 4, 0x5000 | 0x5);
        // PDE 1: a 4 MiB page at 0x400000, supervisor, rw.
        m.write_u32(0x1004, 0x40_0000 | 0x83);
        m
    }

    fn mode() -> PagingMode {
        PagingMode {
            cr3: 0x1000,
            pae: false,
            pse: true,
            pge: false,
            wp: false,
        }
    }

    #[test]
    fn four_k_walk_sets_accessed_and_reports_levels() {
        let mut m = mem_with_tables();
        let t = walk(&mut m, mode(), 0x5123, RD, true).unwrap();
        assert_eq!(t.phys, 0x5123);
        assert_eq!(t.levels[0].unwrap().name, "PDE");
        assert_eq!(t.levels[1].unwrap().addr, 0x2014);
        assert_eq!(m.read_u32(0x2014).unwrap() & 0x20, 0x20, "PTE.A set");
        assert_eq!(m.read_u32(0x1000).unwrap() & 0x20, 0x20, "PDE.A set");
        assert_eq!(m.read_u32(0x2014).unwrap() & 0x40, 0, "no D on a read");
    }

    #[test]
    fn user_write_to_read_only_page_is_a_protection_fault() {
        let mut m = mem_with_tables();
        let e = walk(&mut m, mode(), 0x5000, WR_USER, true).unwrap_err();
        assert_eq!(e.error, pf::P | pf::W | pf::U);
        assert_eq!(
            m.read_u32(0x2014).unwrap() & 0x60,
            0,
            "no A/D on a faulting access"
        );
    }

    #[test]
    fn not_present_and_wp() {
        let mut m = mem_with_tables();
        assert_eq!(walk(&mut m, mode(), 0x6000, RD, true).unwrap_err().error, 0);
        // Supervisor write to a read-only page: allowed without WP, not with.
        let sw = Access {
            write: true,
            user: false,
            fetch: false,
        };
        assert!(walk(&mut m, mode(), 0x5000, sw, true).is_ok());
        let wp = PagingMode { wp: true, ..mode() };
        assert_eq!(
            walk(&mut m, wp, 0x5000, sw, true).unwrap_err().error,
            pf::P | pf::W
        );
    }

    #[test]
    fn large_pages_and_reserved_bits() {
        let mut m = mem_with_tables();
        let t = walk(&mut m, mode(), 0x45_6789, RD, true).unwrap();
        assert_eq!((t.phys, t.page_size), (0x45_6789, 4 << 20));
        // Without CR4.PSE the PS bit is ignored: the PDE points at a table.
        let no_pse = PagingMode {
            pse: false,
            ..mode()
        };
        let t = walk(&mut m, no_pse, 0x40_0000, RD, false);
        assert!(t.is_err() || t.unwrap().page_size == 4096);
        // A reserved bit in a 4 MiB PDE.
        m.write_u32(0x1004, 0x40_0000 | 0x83 | (1 << 13));
        assert_eq!(
            walk(&mut m, mode(), 0x40_0000, RD, true).unwrap_err().error,
            pf::P | pf::RSVD
        );
    }

    #[test]
    fn pae_walk_with_two_mib_page() {
        let mut m = PhysMem::new(8 << 20);
        // PDPT at 0x3000: entry 0 → PD at 0x4000.
        m.write_u32(0x3000, 0x4000 | 1);
        // PDE 1: 2 MiB page at 0x600000, user rw.
        m.write_u32(0x4008, 0x60_0000 | 0x87);
        let pae = PagingMode {
            cr3: 0x3000,
            pae: true,
            pse: true,
            pge: false,
            wp: false,
        };
        let t = walk(&mut m, pae, 0x20_1234, WR_USER, true).unwrap();
        assert_eq!((t.phys, t.page_size), (0x60_1234, 2 << 20));
        assert!(t.dirty);
        assert_eq!(m.read_u32(0x4008).unwrap() & 0x60, 0x60);
        // A reserved bit in the PDPTE.
        m.write_u32(0x3000, 0x4000 | 1 | (1 << 5));
        assert_eq!(
            walk(&mut m, pae, 0x20_1234, RD, true).unwrap_err().error,
            pf::P | pf::RSVD
        );
    }

    #[test]
    fn peek_reads_the_tables_through_a_shared_reference_and_marks_nothing() {
        let m = mem_with_tables();
        let before = (m.read_u32(0x1000), m.read_u32(0x2000 + 5 * 4));
        let t = peek(&m, mode(), 0x5123).unwrap();
        assert_eq!(t.phys, 0x5123);
        assert_eq!(t.levels[0].unwrap().value, 0x2007, "PDE as stored");
        assert_eq!((m.read_u32(0x1000), m.read_u32(0x2000 + 5 * 4)), before);
        // The same answer as the CPU's walk, which then sets A.
        let mut m2 = mem_with_tables();
        assert_eq!(
            walk(&mut m2, mode(), 0x5123, RD, true).unwrap().phys,
            t.phys
        );
        assert_ne!(m2.read_u32(0x1000), before.0);
        assert_eq!(peek(&m, mode(), 0x6000).unwrap_err().error, 0);
    }
}
