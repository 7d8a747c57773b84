//! Random code in protected mode (CPL 0 and 3) and virtual-8086 mode, with
//! random descriptors in the GDT, random IDT gates and random page tables
//! never panic the host, and leave the CPU in a consistent state: a bounded
//! run returns, CPL is 0–3 and matches the mode, EFLAGS bit 1 is set, and
//! unless the CPU shut down, EIP lies within CS's limit.

mod common;

use common::*;
use proptest::prelude::*;
use ringside_cpu::{gpr, Cpu, CpuMode, SegReg};

#[derive(Clone, Debug)]
struct Setup {
    code: Vec<u8>,
    cpl3: bool,
    v86: bool,
    paging: bool,
    gdt: Vec<(u8, u64)>,
    idt: Vec<(u8, u64)>,
    ptes: Vec<(u16, u32)>,
    eflags: u32,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        proptest::collection::vec(any::<u8>(), 1..64),
        any::<bool>(),
        0..4u8,
        any::<bool>(),
        proptest::collection::vec((0..32u8, any::<u64>()), 0..8),
        proptest::collection::vec((any::<u8>(), any::<u64>()), 0..16),
        proptest::collection::vec((any::<u16>(), any::<u32>()), 0..32),
        any::<u32>(),
    )
        .prop_map(|(code, cpl3, v86, paging, gdt, idt, ptes, eflags)| Setup {
            code,
            cpl3,
            v86: v86 == 0,
            paging,
            gdt,
            idt,
            ptes,
            eflags,
        })
}

fn prepare(s: &Setup) -> Cpu {
    let mut cpu = machine();
    // Random descriptors in the upper part of the GDT (selectors 0x88–0xF8)
    // and random gates over the handlers.
    for &(slot, d) in &s.gdt {
        set_gdt(&mut cpu, 0x88 + 8 * (slot as u16 % 15), d);
    }
    for &(v, d) in &s.idt {
        set_idt(&mut cpu, v, d);
    }
    write(&mut cpu, CODE, &s.code);
    if s.paging {
        // Identity map 4 MiB, then scribble random PTEs.
        write(&mut cpu, 0x10_0000, &(0x10_1000u32 | 7).to_le_bytes());
        for i in 0..1024u32 {
            write(&mut cpu, 0x10_1000 + 4 * i, &((i << 12) | 7).to_le_bytes());
        }
        for &(i, v) in &s.ptes {
            write(
                &mut cpu,
                0x10_1000 + 4 * (i as u32 % 1024),
                &v.to_le_bytes(),
            );
        }
    }
    cpu
}

fn check(cpu: &Cpu) -> Result<(), TestCaseError> {
    prop_assert!(cpu.cpl() <= 3);
    prop_assert!(cpu.eflags() & 2 != 0);
    if cpu.is_shutdown() {
        return Ok(());
    }
    match cpu.mode() {
        CpuMode::Virtual8086 => prop_assert_eq!(cpu.cpl(), 3),
        CpuMode::Real => prop_assert_eq!(cpu.cpl(), 0),
        CpuMode::Protected => {}
    }
    let cs = &cpu.segs[SegReg::Cs as usize];
    prop_assert!(
        cpu.eip <= cs.limit || cpu.is_halted(),
        "EIP {:#x} beyond CS limit {:#x}",
        cpu.eip,
        cs.limit
    );
    Ok(())
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
    fn random_protected_mode_code_never_panics(s in setup()) {
        let mut cpu = prepare(&s);
        let mut bus = TestBus::default();
        let cpl = if s.cpl3 { 3 } else { 0 };
        if s.paging {
            cpu.write_control_register(3, 0x10_0000).unwrap();
            let cr0 = cpu.cr[0] | 0x8000_0000;
            cpu.write_control_register(0, cr0).unwrap();
        }
        let (v86, eflags) = (s.v86, s.eflags);
        enter(&mut cpu, cpl, &s.code);
        let _ = cpu.run(&mut bus, cpu.cycles + 200_000, 2_000);
        check(&cpu)?;
        // Once more from wherever it stopped, with random flags, possibly in
        // virtual-8086 mode, for a bounded number of instructions.
        cpu.wake();
        if v86 {
            cpu.set_eflags((eflags & 0x0000_3FD5) | 0x0002_0002);
            for sreg in SegReg::ALL {
                cpu.load_seg_real(sreg, 0x1000);
            }
            cpu.eip = 0;
        }
        cpu.regs[gpr::ESP] = 0x8000;
        let _ = cpu.run(&mut bus, cpu.cycles + 200_000, 2_000);
        check(&cpu)?;
    }
}
