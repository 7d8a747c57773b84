//! REP MOVS/STOS runs that stay inside a page are moved in host memory at
//! once; these compare the result with the architectural element-by-element
//! loop (SDM Vol. 2B "MOVS", "STOS", "REP"), written out here over a plain
//! byte array: overlapping moves repeat their pattern, page crossings and
//! 16-bit offset wrap behave as element steps, and the registers end where
//! the loop leaves them.

use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg, StopReason};

const CODE_SEG: u16 = 0x0800;

/// Real mode, the given code at 0800:0000 followed by HLT, run to the HLT.
fn run(code: &[u8], setup: impl FnOnce(&mut Cpu)) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    let mut bytes = code.to_vec();
    bytes.push(0xF4);
    cpu.mem.poke((CODE_SEG as u32) << 4, &bytes);
    cpu.load_seg_real(SegReg::Cs, CODE_SEG);
    cpu.eip = 0;
    setup(&mut cpu);
    let mut bus = NullBus;
    for _ in 0..1000 {
        if cpu.run(&mut bus, u64::MAX, 1_000_000) == StopReason::Halted {
            return cpu;
        }
    }
    panic!("no HLT");
}

/// The reference: `count` forward element moves of `size` bytes, offsets
/// wrapping at `wrap` within their segments.
#[allow(clippy::too_many_arguments)]
fn model_movs(
    mem: &mut [u8],
    src_base: u32,
    mut si: u32,
    dst_base: u32,
    mut di: u32,
    size: u32,
    count: u32,
    wrap: u32,
) -> (u32, u32) {
    for _ in 0..count {
        let mut e = [0u8; 4];
        for (i, b) in e.iter_mut().enumerate().take(size as usize) {
            *b = mem[(src_base + ((si + i as u32) % wrap)) as usize];
        }
        for (i, b) in e.iter().enumerate().take(size as usize) {
            mem[(dst_base + ((di + i as u32) % wrap)) as usize] = *b;
        }
        si = (si + size) % wrap;
        di = (di + size) % wrap;
    }
    (si, di)
}

fn snapshot(cpu: &Cpu) -> Vec<u8> {
    (0..1u32 << 20).map(|a| cpu.mem.peek(a)).collect()
}

fn fill_pattern(cpu: &mut Cpu, at: u32, len: u32) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    cpu.mem.poke(at, &bytes);
}

#[test]
fn overlapping_rep_movsb_repeats_its_pattern() {
    let setup = |cpu: &mut Cpu| {
        cpu.load_seg_real(SegReg::Ds, 0x2000);
        cpu.load_seg_real(SegReg::Es, 0x2000);
        fill_pattern(cpu, 0x2_0000, 0x100);
        cpu.regs[gpr::ESI] = 0x10;
        cpu.regs[gpr::EDI] = 0x13;
        cpu.regs[gpr::ECX] = 0x60;
    };
    let mut want = {
        let mut c = Cpu::new(PhysMem::new(1 << 20));
        setup(&mut c);
        snapshot(&c)
    };
    let (si, di) = model_movs(&mut want, 0x2_0000, 0x10, 0x2_0000, 0x13, 1, 0x60, 0x1_0000);
    let cpu = run(&[0xF3, 0xA4], setup);
    assert_eq!(
        &snapshot(&cpu)[0x2_0000..0x2_0100],
        &want[0x2_0000..0x2_0100]
    );
    assert_eq!(
        (cpu.regs[gpr::ESI], cpu.regs[gpr::EDI], cpu.regs[gpr::ECX]),
        (si, di, 0)
    );
}

#[test]
fn rep_movsd_across_pages_and_the_offset_wrap() {
    // 16-bit addressing: SI wraps from FFFC to 0000 in the middle; the
    // destination is misaligned and crosses two page boundaries.
    let setup = |cpu: &mut Cpu| {
        cpu.load_seg_real(SegReg::Ds, 0x4000);
        cpu.load_seg_real(SegReg::Es, 0x6000);
        fill_pattern(cpu, 0x4_0000, 0x1_0000);
        cpu.regs[gpr::ESI] = 0xF000;
        cpu.regs[gpr::EDI] = 0x0FFE;
        cpu.regs[gpr::ECX] = 0x0C00;
    };
    let mut want = {
        let mut c = Cpu::new(PhysMem::new(1 << 20));
        setup(&mut c);
        snapshot(&c)
    };
    let (si, di) = model_movs(
        &mut want, 0x4_0000, 0xF000, 0x6_0000, 0x0FFE, 4, 0x0C00, 0x1_0000,
    );
    let cpu = run(&[0xF3, 0x66, 0xA5], setup);
    assert_eq!(
        &snapshot(&cpu)[0x6_0000..0x7_0000],
        &want[0x6_0000..0x7_0000]
    );
    assert_eq!(
        (cpu.regs[gpr::ESI], cpu.regs[gpr::EDI], cpu.regs[gpr::ECX]),
        (si, di, 0)
    );
}

#[test]
fn rep_movsw_with_32_bit_addressing() {
    // 0x67: ESI/EDI/ECX are used whole (offsets stay inside the real-mode
    // 64 KiB limit); the source is misaligned, the destination crosses pages.
    let setup = |cpu: &mut Cpu| {
        cpu.load_seg_real(SegReg::Ds, 0x3000);
        cpu.load_seg_real(SegReg::Es, 0x5000);
        fill_pattern(cpu, 0x3_0000, 0x4000);
        cpu.regs[gpr::ESI] = 0x0001;
        cpu.regs[gpr::EDI] = 0x0FF0;
        cpu.regs[gpr::ECX] = 0x1001;
    };
    let mut want = {
        let mut c = Cpu::new(PhysMem::new(1 << 20));
        setup(&mut c);
        snapshot(&c)
    };
    let (si, di) = model_movs(&mut want, 0x3_0000, 1, 0x5_0000, 0x0FF0, 2, 0x1001, 1 << 31);
    let cpu = run(&[0x67, 0xF3, 0xA5], setup);
    assert_eq!(
        &snapshot(&cpu)[0x5_0000..0x5_3000],
        &want[0x5_0000..0x5_3000]
    );
    assert_eq!(
        (cpu.regs[gpr::ESI], cpu.regs[gpr::EDI], cpu.regs[gpr::ECX]),
        (si, di, 0)
    );
}

#[test]
fn rep_stosd_across_a_page_and_stops_at_zero_count() {
    let setup = |cpu: &mut Cpu| {
        cpu.load_seg_real(SegReg::Es, 0x3000);
        cpu.regs[gpr::EAX] = 0x1122_3344;
        cpu.regs[gpr::EDI] = 0x0FF6;
        cpu.regs[gpr::ECX] = 0xABCD_0007;
    };
    let cpu = run(&[0xF3, 0x66, 0xAB], setup);
    let mem = snapshot(&cpu);
    for k in 0..7u32 {
        let a = (0x3_0FF6 + 4 * k) as usize;
        assert_eq!(&mem[a..a + 4], &[0x44, 0x33, 0x22, 0x11], "element {k}");
    }
    assert_eq!(mem[0x3_0FF5], 0);
    assert_eq!(mem[0x3_1012], 0);
    // 16-bit addressing: CX counts, the upper half of ECX stays.
    assert_eq!(cpu.regs[gpr::ECX], 0xABCD_0000);
    assert_eq!(cpu.regs[gpr::EDI], 0x1012);
}
