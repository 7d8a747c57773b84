//! Property: with random page tables and random accesses, translation through
//! the TLB (hit, or walk-and-fill on a miss) equals a fresh page walk after
//! every permitted sequence of page-table changes and the invalidations the
//! SDM requires for them (INVLPG for a PTE, a full flush for a PDE or a
//! CR3 reload).

use proptest::prelude::*;
use ringside_mmu::tlb::needed;
use ringside_mmu::{walk, Access, FlushCause, PagingMode, PhysMem, Tlb};

const PD: u32 = 0x1000;
const PT_BASE: u32 = 0x2000; // 4 page tables: 0x2000..0x5FFF
const FRAMES: u32 = 0x10_0000;

#[derive(Clone, Debug)]
enum Op {
    Access {
        pde: u32,
        pte: u32,
        off: u32,
        write: bool,
        user: bool,
    },
    SetPte {
        pde: u32,
        pte: u32,
        value: u32,
    },
    SetPde {
        pde: u32,
        value: u32,
    },
    Cr3Reload,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4u32, 0..8u32, 0..4096u32, any::<bool>(), any::<bool>())
            .prop_map(|(pde, pte, off, write, user)| Op::Access { pde, pte, off, write, user }),
        3 => (0..4u32, 0..8u32, any::<u32>()).prop_map(|(pde, pte, bits)| Op::SetPte {
            pde,
            pte,
            // A frame in our RAM and random low bits (P, R/W, U/S, A, D, G).
            value: (FRAMES + ((bits >> 20) & 0xFF) * 0x1000) | (bits & 0x167),
        }),
        1 => (0..4u32, any::<u32>()).prop_map(|(pde, bits)| Op::SetPde {
            pde,
            value: (PT_BASE + pde * 0x1000) | (bits & 0x67),
        }),
        1 => Just(Op::Cr3Reload),
    ]
}

fn tlb_translate(
    tlb: &mut Tlb,
    mem: &mut PhysMem,
    mode: PagingMode,
    lin: u32,
    access: Access,
) -> Result<u32, u32> {
    if let Some(p) = tlb.lookup(lin, needed(access.write, access.user)) {
        return Ok(p);
    }
    match walk(mem, mode, lin, access, true) {
        Ok(t) => {
            tlb.fill(lin, &t);
            Ok(t.phys)
        }
        Err(e) => Err(e.error),
    }
}

/// 256 cases by default; `PROPTEST_CASES` scales the campaign up.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn tlb_equals_fresh_walk(wp in any::<bool>(), pge in any::<bool>(), ops in proptest::collection::vec(op(), 1..200)) {
        let mut mem = PhysMem::new(2 << 20);
        for pde in 0..4 {
            mem.write_u32(PD + pde * 4, (PT_BASE + pde * 0x1000) | 7);
        }
        let mode = PagingMode { cr3: PD, pae: false, pse: false, pge, wp };
        let mut tlb = Tlb::default();
        for op in ops {
            match op {
                Op::Access { pde, pte, off, write, user } => {
                    let lin = (pde << 22) | (pte << 12) | off;
                    let access = Access { write, user, fetch: false };
                    // Without set_ad the walk only reads memory.
                    let fresh = walk(&mut mem, mode, lin, access, false).map(|t| t.phys).map_err(|e| e.error);
                    let got = tlb_translate(&mut tlb, &mut mem, mode, lin, access);
                    prop_assert_eq!(got, fresh, "linear {:#x} write {} user {}", lin, write, user);
                }
                Op::SetPte { pde, pte, value } => {
                    mem.write_u32(PT_BASE + pde * 0x1000 + pte * 4, value);
                    // The SDM's rule: INVLPG the page. With PGE a global
                    // entry survives CR3 loads, so INVLPG is the only way.
                    tlb.invalidate((pde << 22) | (pte << 12));
                }
                Op::SetPde { pde, value } => {
                    mem.write_u32(PD + pde * 4, value);
                    tlb.flush(FlushCause::ControlBits, false);
                }
                Op::Cr3Reload => tlb.flush(FlushCause::Cr3, pge),
            }
        }
    }
}
