//! The memory loop in flat 32-bit protected mode with paging off, then on
//! (4 KiB pages identity-mapping the first 4 MiB), reporting guest MIPS and
//! the cost of paging. A plain harness: figures are printed, not asserted.

use std::time::Instant;

use iced_x86::code_asm::*;
use ringside_cpu::segment::Descriptor;
use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg};

const CODE: u32 = 0x10000;
const PD: u32 = 0x10_0000;
const PT: u32 = 0x10_1000;
const ITERATIONS: u32 = 5_000_000;

fn flat(access: u8) -> Descriptor {
    Descriptor(0xFFFF | (0xFu64 << 48) | (0xCu64 << 52) | ((access as u64) << 40))
}

/// Flat protected mode at CPL 0, optionally with paging, and the loop at CODE.
fn machine(paging: bool) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(4 << 20));
    cpu.cr[0] |= 1;
    cpu.segs[SegReg::Cs as usize] = flat(0x9A).to_segment(0x08);
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es] {
        cpu.segs[s as usize] = flat(0x92).to_segment(0x10);
    }
    let mut a = CodeAssembler::new(32).unwrap();
    if paging {
        a.mov(eax, PD).unwrap();
        a.mov(cr3, eax).unwrap();
        a.mov(eax, cr0).unwrap();
        a.or(eax, 0x8000_0000u32).unwrap();
        a.mov(cr0, eax).unwrap();
    }
    // The foundation issue's memory loop: load, add, store, step through a
    // 64 KiB buffer (16 pages, so the TLB hit path is what is measured).
    a.mov(ecx, ITERATIONS).unwrap();
    a.mov(esi, 0x20_0000u32).unwrap();
    let mut top = a.create_label();
    a.set_label(&mut top).unwrap();
    a.mov(eax, dword_ptr(esi)).unwrap();
    a.add(eax, 1).unwrap();
    a.mov(dword_ptr(esi + 0x10000), eax).unwrap();
    a.add(esi, 4).unwrap();
    a.and(esi, 0x20_FFFFu32).unwrap();
    a.dec(ecx).unwrap();
    a.jnz(top).unwrap();
    a.hlt().unwrap();
    cpu.mem.poke(CODE, &a.assemble(CODE as u64).unwrap());
    cpu.mem.poke(PD, &(PT | 3).to_le_bytes());
    for i in 0..1024u32 {
        cpu.mem.poke(PT + 4 * i, &((i << 12) | 3).to_le_bytes());
    }
    cpu.eip = CODE;
    cpu.regs[gpr::ESP] = 0x9000;
    cpu
}

fn measure(paging: bool) -> f64 {
    let mut best = f64::MAX;
    let mut mips = 0.0;
    for _ in 0..3 {
        let mut cpu = machine(paging);
        let t = Instant::now();
        while !cpu.is_halted() && !cpu.is_shutdown() {
            cpu.run(&mut NullBus, u64::MAX, u64::MAX);
        }
        let dt = t.elapsed().as_secs_f64();
        assert!(cpu.is_halted());
        if dt < best {
            best = dt;
            mips = cpu.instructions as f64 / dt / 1e6;
        }
    }
    mips
}

fn main() {
    let off = measure(false);
    let on = measure(true);
    println!("memory loop, paging off: {off:.1} MIPS");
    println!("memory loop, paging on:  {on:.1} MIPS");
    println!(
        "paging costs {:.1}% of guest MIPS (target: at most 15%)",
        (1.0 - on / off) * 100.0
    );
}
