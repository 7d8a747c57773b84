//! MIPS of an x87-heavy guest loop on the bare core:
//! `cargo run --release -p ringside-cpu --example fpu_bench`.
//!
//! The kernel integrates √(x² + c) by the rectangle rule: per iteration a
//! FILD, three multiplies/adds with memory and register operands, FSQRT, a
//! popping add and a register pop, plus the loop counter (11 instructions,
//! 8 of them x87). A second loop measures FSIN/FCOS, which run in
//! software on a 128-bit working float.
use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg};
use std::time::Instant;

fn run(name: &str, code: &[u8], iterations: u32, per_iter: u32) -> f64 {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.mem.poke(0x10100, code);
    cpu.load_seg_real(SegReg::Cs, 0x1000);
    cpu.load_seg_real(SegReg::Ds, 0x2000);
    cpu.load_seg_real(SegReg::Ss, 0x4000);
    cpu.regs[gpr::ESP] = 0xFFFE;
    cpu.regs[gpr::ECX] = iterations;
    cpu.mem.poke(
        0x20020,
        &(1.0f64 / iterations as f64).to_bits().to_le_bytes(),
    );
    cpu.mem.poke(0x20028, &0.25f64.to_bits().to_le_bytes());
    cpu.eip = 0x100;
    let t = Instant::now();
    cpu.run(&mut NullBus, u64::MAX, 4_000_000_000);
    let dt = t.elapsed().as_secs_f64();
    let mips = cpu.instructions as f64 / dt / 1e6;
    let mut r = [0u8; 8];
    for (i, b) in r.iter_mut().enumerate() {
        *b = cpu.mem.peek(0x20030 + i as u32);
    }
    println!(
        "{name}: {} instructions ({} per iteration) in {:.3}s = {:.1} MIPS; result {}",
        cpu.instructions,
        per_iter,
        dt,
        mips,
        f64::from_le_bytes(r)
    );
    mips
}

fn main() {
    let n: u32 = std::env::var("FPU_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    // 16-bit real-mode code; data at DS:0010 (counter), 0020 (h), 0028 (c),
    // 0030 (result).
    let mut k = vec![
        0xDB, 0xE3, // fninit
        0xD9, 0xEE, // fldz                      acc
    ];
    let top = k.len();
    k.extend_from_slice(&[
        0xDB, 0x06, 0x10, 0x00, // fild dword [0010]    i
        0xDC, 0x0E, 0x20, 0x00, // fmul qword [0020]    x = i·h
        0xD9, 0xC0, // fld st0
        0xD8, 0xC9, // fmul st0, st1              x²
        0xDC, 0x06, 0x28, 0x00, // fadd qword [0028]    x² + c
        0xD9, 0xFA, // fsqrt
        0xDE, 0xC2, // faddp st2, st0             acc += √(x² + c)
        0xDD, 0xD8, // fstp st0
        0x66, 0xFF, 0x06, 0x10, 0x00, // inc dword [0010]
        0x66, 0x49, // dec ecx
    ]);
    let rel = top as i32 - (k.len() as i32 + 2);
    k.extend_from_slice(&[0x75, rel as i8 as u8]); // jnz top
    k.extend_from_slice(&[
        0xDC, 0x0E, 0x20, 0x00, // fmul qword [0020]
        0xDD, 0x1E, 0x30, 0x00, // fstp qword [0030]
        0xF4,
    ]);
    run("x87 integration kernel", &k, n, 11);

    let mut t = vec![0xDB, 0xE3, 0xD9, 0xE8];
    let top = t.len();
    t.extend_from_slice(&[
        0xD9, 0xFE, // fsin
        0xD9, 0xFF, // fcos
        0x66, 0x49, // dec ecx
    ]);
    let rel = top as i32 - (t.len() as i32 + 2);
    t.extend_from_slice(&[0x75, rel as i8 as u8]);
    t.extend_from_slice(&[0xDD, 0x1E, 0x30, 0x00, 0xF4]);
    run("FSIN/FCOS loop", &t, n / 20, 4);
}
