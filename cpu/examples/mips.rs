//! Quick MIPS probe of the bare core (no board): `cargo run --release -p ringside-cpu --example mips`.
use iced_x86::code_asm::*;
use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg};
use std::time::Instant;

fn prog(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    build(&mut a).unwrap();
    a.hlt().unwrap();
    a.assemble(0x100).unwrap()
}

fn bench(name: &str, bytes: &[u8]) {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.mem.poke(0x10100, bytes);
    cpu.load_seg_real(SegReg::Cs, 0x1000);
    cpu.load_seg_real(SegReg::Ds, 0x2000);
    cpu.load_seg_real(SegReg::Es, 0x3000);
    cpu.load_seg_real(SegReg::Ss, 0x4000);
    cpu.regs[gpr::ESP] = 0xFFFE;
    cpu.eip = 0x100;
    let t = Instant::now();
    cpu.run(&mut NullBus, u64::MAX, 2_000_000_000);
    let dt = t.elapsed().as_secs_f64();
    println!(
        "{name}: {} instr in {:.3}s = {:.1} MIPS ({:.2} ns/instr)",
        cpu.instructions,
        dt,
        cpu.instructions as f64 / dt / 1e6,
        dt * 1e9 / cpu.instructions as f64
    );
}

fn main() {
    // MIPS_DIV shrinks the loops (e.g. for callgrind, which counts host instructions).
    let div: u32 = std::env::var("MIPS_DIV")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    bench(
        "integer",
        &prog(|a| {
            a.mov(ecx, 20_000_000u32 / div)?;
            a.xor(eax, eax)?;
            a.mov(ebx, 3)?;
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.add(eax, ebx)?;
            a.xor(edx, eax)?;
            a.shl(ebx, 1)?;
            a.or(ebx, 1)?;
            a.dec(ecx)?;
            a.jnz(top)?;
            Ok(())
        }),
    );
    bench(
        "memory",
        &prog(|a| {
            a.mov(ecx, 10_000_000u32 / div)?;
            a.xor(si, si)?;
            let mut top = a.create_label();
            a.set_label(&mut top)?;
            a.mov(ax, word_ptr(si))?;
            a.add(ax, 1)?;
            a.mov(word_ptr(si + 0x100), ax)?;
            a.add(si, 2)?;
            a.and(si, 0xFF)?;
            a.dec(ecx)?;
            a.jnz(top)?;
            Ok(())
        }),
    );
    bench(
        "callret",
        &prog(|a| {
            let mut f = a.create_label();
            let mut top = a.create_label();
            let mut end = a.create_label();
            a.mov(ecx, 5_000_000u32 / div)?;
            a.set_label(&mut top)?;
            a.call(f)?;
            a.dec(ecx)?;
            a.jnz(top)?;
            a.jmp(end)?;
            a.set_label(&mut f)?;
            a.push(ax)?;
            a.pop(ax)?;
            a.ret()?;
            a.set_label(&mut end)?;
            Ok(())
        }),
    );
}
