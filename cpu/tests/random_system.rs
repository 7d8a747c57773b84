//! Robustness campaign for system code: random programs that build on a
//! valid protected-mode machine (GDT, IDT, TSS) and then scramble it — random
//! GDT and LDT descriptors, IDT gates of every type (task gates to random or
//! invalid TSSs, gates with null or non-code selectors), random TSS images,
//! paging off, on with 4 KiB tables or with 4 MiB (PSE) pages, random control
//! register writes — and run at CPL 0, at CPL 3 (entered through IRET) or in
//! virtual-8086 mode (entered through IRET with VM set), with external
//! interrupts, NMIs and SMIs raised on the way.
//!
//! The only claims: the host neither panics nor aborts (a stack overflow
//! aborts the whole test process), and every program ends in a defined
//! state — still running when its budget ran out, halted, or shut down
//! (where the board would reset) — with the invariants of [`check`].
//!
//! `random_system_code_never_takes_the_host_down` runs a bounded campaign in
//! the normal suite. `RINGSIDE_LONG_CAMPAIGN=1` runs the long one (100,000
//! programs of 200,000 instructions unless `RINGSIDE_CAMPAIGN_PROGRAMS` and
//! `RINGSIDE_CAMPAIGN_INSTRUCTIONS` say otherwise) sharded on two threads;
//! `RINGSIDE_CAMPAIGN_SEED=N` replays one program.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use common::*;
use ringside_cpu::{gpr, Bus, Cpu, CpuMode, SegReg, StopReason};

/// xorshift64*: deterministic, so a seed reproduces its program.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
    fn u32(&mut self) -> u32 {
        (self.next() >> 32) as u32
    }
}

/// Where the random TSS images live (besides the harness's own at `TSS`).
const TSS_AREAS: [u32; 3] = [0x5000, 0x6000, 0x7000];
/// The ROM (64 KiB below 1 MiB): writes to it are lost, so descriptors
/// there keep their type whatever a task switch writes (busy bits).
const ROM: u32 = 0xF_0000;
const PD: u32 = 0x10_0000;
const PT: u32 = 0x10_1000;

/// A selector a program might plausibly use: null, one of the GDT's, an LDT
/// one, or anything, with a random RPL.
fn selector(r: &mut Rng) -> u16 {
    let rpl = r.below(4) as u16;
    match r.below(6) {
        0 => rpl,
        1 | 2 => (r.below(32) as u16 * 8) | rpl,
        3 => (r.below(2) as u16 * 8) | 4 | rpl,
        4 => [CODE0, DATA0, CODE3, DATA3, TSS_SEL, TSS2_SEL, LDT_SEL][r.below(7) as usize],
        _ => r.u32() as u16,
    }
}

/// An offset a program might jump to: its own code, the handlers, anything.
fn target(r: &mut Rng) -> u32 {
    match r.below(5) {
        0 | 1 => CODE + r.below(0x400) as u32,
        2 => HANDLERS + r.below(0x1000) as u32,
        3 => ROM + r.below(0x1_0000) as u32,
        _ => r.u32(),
    }
}

/// A descriptor: structured code/data/system with random fields, or noise.
fn descriptor(r: &mut Rng) -> u64 {
    let present = if r.chance(8) { 0 } else { 0x80 };
    let dpl = (r.below(4) as u8) << 5;
    let flags = r.below(16) as u8;
    let base = match r.below(4) {
        0 => 0,
        1 => TSS_AREAS[r.below(3) as usize],
        2 => r.below(0x40_0000) as u32,
        _ => r.u32(),
    };
    let limit = match r.below(3) {
        0 => 0xFFFFF,
        1 => 0x67 + r.below(0x100) as u32,
        _ => r.u32() & 0xFFFFF,
    };
    match r.below(5) {
        // Code or data, any type.
        0 | 1 => seg(base, limit, present | dpl | 0x10 | r.below(16) as u8, flags),
        // System: TSS, LDT, gates.
        2 | 3 => match r.below(4) {
            0 | 1 => seg(base, limit, present | dpl | r.below(16) as u8, flags & 0x9),
            2 => gate(
                selector(r),
                target(r),
                [4, 5, 12][r.below(3) as usize],
                dpl >> 5,
                r.byte(),
            ),
            _ => seg(base, limit, present | dpl | 2, 0),
        },
        _ => r.next(),
    }
}

/// An IDT gate of any type, pointing anywhere plausible.
fn idt_gate(r: &mut Rng) -> u64 {
    let dpl = r.below(4) as u8;
    let mut g = match r.below(6) {
        0 => gate(selector(r), 0, 5, dpl, 0),
        1 => gate(selector(r) & !4, 0, 5, dpl, 0),
        2 => gate(
            CODE0,
            target(r),
            [6, 7, 14, 15][r.below(4) as usize],
            dpl,
            0,
        ),
        3 => gate(
            selector(r),
            target(r),
            [6, 7, 14, 15][r.below(4) as usize],
            dpl,
            0,
        ),
        4 => gate(selector(r), target(r), r.below(16) as u8, dpl, 0),
        _ => r.next(),
    };
    if r.chance(10) {
        g &= !(0x80u64 << 40); // not present
    }
    g
}

/// A TSS image (32-bit layout; a 16-bit TSS reads the same bytes its way).
fn tss_image(r: &mut Rng, at: u32, cpu: &mut Cpu) {
    let mut b = [0u8; 0x68];
    for x in b.iter_mut() {
        *x = r.byte();
    }
    let put32 =
        |b: &mut [u8; 0x68], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    if !r.chance(4) {
        // Mostly sensible: selectors from the pool, a real EIP and stacks.
        for i in 0..3 {
            put32(&mut b, 4 + 8 * i, 0x8000 + r.below(0x1000) as u32);
            put32(&mut b, 8 + 8 * i, selector(r) as u32);
        }
        put32(
            &mut b,
            0x1C,
            if r.chance(2) { PD } else { r.u32() & !0xFFF },
        );
        put32(&mut b, 0x20, target(r));
        let vm = if r.chance(4) { 1 << 17 } else { 0 };
        put32(&mut b, 0x24, (r.u32() & 0x0025_7FD5 & !(1 << 17)) | vm | 2);
        put32(&mut b, 0x38, 0x8000 + r.below(0x1000) as u32);
        for i in 0..6 {
            let s = if vm != 0 { 0x1000 } else { selector(r) };
            put32(&mut b, 0x48 + 4 * i, s as u32);
        }
        put32(&mut b, 0x60, selector(r) as u32);
        put32(
            &mut b,
            0x64,
            (r.below(2) as u32) | ((0x68 + r.below(0x40) as u32) << 16),
        );
    }
    write(cpu, at, &b);
}

/// A stream of instructions that exercise system state, with random bytes
/// between them.
fn program(r: &mut Rng, len: usize) -> Vec<u8> {
    let mut c = Vec::with_capacity(len + 32);
    let imm32 = |c: &mut Vec<u8>, v: u32| c.extend_from_slice(&v.to_le_bytes());
    let imm16 = |c: &mut Vec<u8>, v: u16| c.extend_from_slice(&v.to_le_bytes());
    while c.len() < len {
        match r.below(28) {
            // MOV Sreg, AX with a plausible selector.
            0 => {
                c.push(0xB8);
                imm32(&mut c, selector(r) as u32);
                c.extend_from_slice(&[0x8E, [0xD8, 0xC0, 0xD0, 0xE0, 0xE8][r.below(5) as usize]]);
            }
            // MOV CRn, EAX with random or flipped bits.
            1 => {
                let n = [0u8, 3, 4][r.below(3) as usize];
                c.extend_from_slice(&[0x0F, 0x20, 0xC0 | (n << 3)]); // mov eax, crn
                c.push(0x35); // xor eax, imm32
                imm32(&mut c, 1 << r.below(32));
                c.extend_from_slice(&[0x0F, 0x22, 0xC0 | (n << 3)]);
            }
            // A whole new CR0/CR3/CR4 now and then (usually fatal); more
            // often CR3 reloaded (a TLB flush) or pointed at other tables.
            2 => {
                c.push(0xB8);
                if r.chance(4) {
                    imm32(&mut c, r.u32());
                    c.extend_from_slice(&[0x0F, 0x22, [0xC0, 0xD8, 0xE0][r.below(3) as usize]]);
                } else {
                    imm32(
                        &mut c,
                        if r.chance(2) {
                            PD
                        } else {
                            r.below(0x400) as u32 * 0x1000
                        },
                    );
                    c.extend_from_slice(&[0x0F, 0x22, 0xD8]);
                }
            }
            // LTR / LLDT.
            3 => {
                c.push(0xB8);
                imm32(&mut c, selector(r) as u32);
                c.extend_from_slice(&[0x0F, 0x00, if r.chance(2) { 0xD8 } else { 0xD0 }]);
            }
            // Far JMP / CALL.
            4 | 5 => {
                c.push(if r.chance(2) { 0xEA } else { 0x9A });
                imm32(&mut c, target(r));
                imm16(&mut c, selector(r));
            }
            // IRET / RETF with a built frame: EIP, CS, EFLAGS, ESP, SS (and
            // the V86 segment registers below them).
            6 | 7 => {
                let vm = r.chance(3);
                if vm {
                    for _ in 0..4 {
                        c.push(0x68);
                        imm32(
                            &mut c,
                            if r.chance(2) {
                                0x1000
                            } else {
                                r.u32() & 0xFFFF
                            },
                        );
                    }
                }
                c.push(0x68);
                imm32(&mut c, selector(r) as u32); // SS
                c.push(0x68);
                imm32(&mut c, 0x8000 + r.below(0x1000) as u32); // ESP
                c.push(0x68);
                let fl = (r.u32() & 0x0025_7FD5) | 2;
                imm32(&mut c, if vm { fl | (1 << 17) } else { fl & !(1 << 17) });
                c.push(0x68);
                imm32(&mut c, if vm { 0x1000 } else { selector(r) as u32 });
                c.push(0x68);
                imm32(&mut c, if vm { r.below(0x400) as u32 } else { target(r) });
                c.push(match r.below(4) {
                    0 => 0xCB, // retf (skips EFLAGS: a different frame)
                    _ => 0xCF,
                });
            }
            // INT n, INT3, INTO, INT1, UD2, BOUND-ish faults, HLT, STI/CLI.
            8 => c.extend_from_slice(&[0xCD, r.byte()]),
            9 => c.push([0xCC, 0xCE, 0xF1, 0xF4, 0xFB, 0xFA, 0x9D, 0x9C][r.below(8) as usize]),
            10 => c.extend_from_slice(&[0x0F, 0x0B]),
            // Stack: POP Sreg, LSS, MOV ESP, ENTER/LEAVE, PUSH imm.
            11 => {
                c.push(0x68);
                imm32(&mut c, selector(r) as u32);
                match r.below(5) {
                    0 => c.push(0x17),
                    1 => c.push(0x1F),
                    2 => c.push(0x07),
                    3 => c.extend_from_slice(&[0x0F, 0xA1]),
                    _ => c.extend_from_slice(&[0x0F, 0xA9]),
                }
            }
            12 => {
                c.extend_from_slice(&[0x0F, 0xB2, 0x25]); // lss esp, [disp32]
                imm32(&mut c, target(r));
            }
            13 => {
                c.push(0xBC);
                imm32(
                    &mut c,
                    match r.below(3) {
                        0 => 0x8000 + r.below(0x1000) as u32,
                        1 => r.u32() & 0xFFFF,
                        _ => r.u32(),
                    },
                );
            }
            14 => {
                c.push(0xC8);
                imm16(&mut c, r.u32() as u16);
                c.push(r.byte());
                if r.chance(2) {
                    c.push(0xC9);
                }
            }
            // Descriptor tables: LGDT/LIDT from random memory, SGDT.
            // LGDT/LIDT from anywhere (rarely), SGDT/SIDT/STR/SLDT more often.
            15 => {
                let modrm = if r.chance(4) {
                    [0x15, 0x1D][r.below(2) as usize]
                } else {
                    [0x05, 0x0D][r.below(2) as usize]
                };
                c.extend_from_slice(&[0x0F, 0x01, modrm]);
                imm32(&mut c, target(r));
            }
            // CLTS, INVLPG [EAX], WBINVD, RSM, SYSENTER/SYSEXIT, WRMSR.
            16 => c.extend_from_slice(
                [
                    &[0x0F, 0x06][..],
                    &[0x0F, 0x01, 0x38],
                    &[0x0F, 0x09],
                    &[0x0F, 0xAA],
                    &[0x0F, 0x34],
                    &[0x0F, 0x35],
                    &[0x0F, 0x30],
                    &[0x0F, 0x31],
                ][r.below(8) as usize],
            ),
            // Stores into the system tables themselves.
            17 => {
                c.push(0xC7);
                c.push(0x05);
                let table = [GDT, IDT, TSS, LDT, TSS_AREAS[0], PD, PT][r.below(7) as usize];
                imm32(&mut c, table + r.below(0x100) as u32 * 4);
                imm32(&mut c, r.u32());
            }
            // IN/OUT (I/O bitmap), ARPL/LAR/LSL/VERR.
            18 => c.extend_from_slice(&[[0xE4, 0xE6, 0xEC, 0xEE][r.below(4) as usize], r.byte()]),
            19 => {
                c.push(0xB8);
                imm32(&mut c, selector(r) as u32);
                c.extend_from_slice(
                    [
                        &[0x0F, 0x02, 0xC0][..],
                        &[0x0F, 0x03, 0xC0],
                        &[0x0F, 0x00, 0xE0],
                        &[0x63, 0xC0],
                    ][r.below(4) as usize],
                );
            }
            // Random bytes, often harmless, sometimes anything.
            _ => {
                for _ in 0..1 + r.below(8) {
                    c.push(r.byte());
                }
            }
        }
    }
    c
}

/// A bus that raises INTR, NMI and SMI now and then.
struct NoisyBus {
    rng: Rng,
    irq: Option<u8>,
}

impl Bus for NoisyBus {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        self.rng.u32()
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
    fn take_nmi(&mut self) -> bool {
        self.rng.chance(20_000)
    }
    fn take_smi(&mut self) -> bool {
        self.rng.chance(200_000)
    }
    fn interrupt_pending(&mut self) -> bool {
        if self.irq.is_none() && self.rng.chance(2_000) {
            self.irq = Some(self.rng.byte());
        }
        self.irq.is_some()
    }
    fn acknowledge_interrupt(&mut self) -> u8 {
        self.irq.take().unwrap_or(0xFF)
    }
}

/// How a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// Its instruction budget ran out.
    Running,
    /// HLT with no interrupt to wake it.
    Halted,
    /// Triple fault: the board would reset.
    Shutdown,
}

/// Build the machine for `seed` on `cpu` (a fresh one, or one a previous
/// program used: RESET and new memory make it the same machine, and it saves
/// the decode cache's allocation per program).
fn build(cpu: &mut Cpu, seed: u64) -> NoisyBus {
    let mut r = Rng::new(seed);
    cpu.reset();
    cpu.flush_decode_cache();
    // A ROM of noise and descriptors; sometimes the GDT itself lives there.
    let mut rom: Vec<u8> = (0..0x1_0000).map(|_| r.byte()).collect();
    for i in 0..r.below(64) as usize {
        rom[i * 8..i * 8 + 8].copy_from_slice(&descriptor(&mut r).to_le_bytes());
    }
    cpu.mem = ringside_cpu::PhysMem::pc(4, rom.clone()).expect("a 64 KiB ROM");
    setup_machine(cpu);
    let gdt_in_rom = r.chance(6);
    if gdt_in_rom {
        for i in 0..0x100u32 {
            rom[(0x8000 + i) as usize] = cpu.mem.peek(GDT + i);
        }
        cpu.mem = ringside_cpu::PhysMem::pc(4, rom).expect("a 64 KiB ROM");
        setup_machine(cpu);
    }
    // The start state's segment caches hold the harness's flat segments,
    // whatever the scribbling below does to their descriptors.
    load(cpu, SegReg::Cs, CODE0);
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs] {
        load(cpu, s, DATA0);
    }
    for _ in 0..r.below(24) {
        // Mostly the upper, unused slots; sometimes over the harness's own,
        // and rarely over the ring-0 code, data and TSS descriptors every
        // delivery needs (which ends most programs at their first fault).
        let mut slot = if r.chance(4) {
            1 + r.below(31)
        } else {
            17 + r.below(15)
        };
        if matches!(slot, 1 | 2 | 5) && !r.chance(8) {
            slot += 16;
        }
        let d = descriptor(&mut r);
        set_gdt(cpu, slot as u16 * 8, d);
    }
    for i in 0..r.below(8) {
        let d = descriptor(&mut r);
        write(cpu, LDT + i as u32 * 8, &d.to_le_bytes());
    }
    for _ in 0..r.below(24) {
        let v = if r.chance(4) {
            r.below(20) as u8
        } else {
            r.byte()
        };
        let g = idt_gate(&mut r);
        set_idt(cpu, v, g);
    }
    if r.chance(6) {
        // The harness's own TSS scrambled too.
        tss_image(&mut r, TSS, cpu);
    }
    for at in TSS_AREAS {
        tss_image(&mut r, at, cpu);
    }
    if gdt_in_rom {
        cpu.gdtr.base = ROM + 0x8000;
    }
    if r.chance(20) {
        cpu.gdtr.limit = r.u32() as u16;
    }
    if r.chance(20) {
        cpu.idtr.limit = r.u32() as u16;
    }
    // Code: the program, and more of it where the handlers are (a fault
    // whose gate points there keeps running random system code).
    let code = program(&mut r, 0x400);
    write(cpu, CODE, &code);
    let handlers = program(&mut r, 0x1000);
    write(cpu, HANDLERS + 0x10, &handlers[..0xFF0]);
    // Most vectors' own handlers return past the fault instead (drop the
    // error code, add 1-8 to the saved EIP, IRET): the program goes on in
    // its own mode and ring, rather than nearly always ending in a handler
    // that faults on itself until the stack runs out.
    for v in 1..=255u32 {
        if r.chance(4) {
            continue;
        }
        let mut h = Vec::with_capacity(8);
        if matches!(v, 8 | 10..=14 | 17) {
            h.extend_from_slice(&[0x83, 0xC4, 0x04]); // add esp, 4
        }
        h.extend_from_slice(&[0x83, 0x04, 0x24, 1 + r.below(8) as u8]); // add dword [esp], k
        h.push(0xCF); // iretd
        write(cpu, HANDLERS + v * 16, &h);
    }
    // Paging: off, 4 KiB tables with scribbles, or one 4 MiB page.
    match r.below(3) {
        0 => {}
        1 => {
            write(cpu, PD, &(PT | 7).to_le_bytes());
            for i in 0..1024u32 {
                write(cpu, PT + 4 * i, &((i << 12) | 7).to_le_bytes());
            }
            for _ in 0..r.below(16) {
                let i = r.below(1024) as u32;
                let v = r.u32();
                write(cpu, PT + 4 * i, &v.to_le_bytes());
            }
            let _ = cpu.write_control_register(3, PD);
            let cr0 = cpu.cr[0] | 0x8000_0000;
            let _ = cpu.write_control_register(0, cr0);
        }
        _ => {
            let flags = if r.chance(16) { r.u32() & 0xFFF } else { 0x87 };
            write(cpu, PD, &(flags | 0x80).to_le_bytes());
            let cr4 = cpu.cr[4] | 0x10;
            let _ = cpu.write_control_register(4, cr4);
            let _ = cpu.write_control_register(3, PD);
            let cr0 = cpu.cr[0] | 0x8000_0000;
            let _ = cpu.write_control_register(0, cr0);
        }
    }
    // Start: CPL 0 directly, or through an IRET from CPL 0 to CPL 3 or to
    // virtual-8086 mode.
    let mut stub = Vec::new();
    let push = |s: &mut Vec<u8>, v: u32| {
        s.push(0x68);
        s.extend_from_slice(&v.to_le_bytes());
    };
    let fl = (r.u32() & 0x0000_0ED5) | 2;
    match r.below(3) {
        0 => {}
        1 => {
            push(&mut stub, DATA3 as u32);
            push(&mut stub, STACK3);
            push(&mut stub, fl);
            push(&mut stub, CODE3 as u32);
            push(&mut stub, CODE + 0x100);
            stub.push(0xCF);
        }
        _ => {
            for _ in 0..4 {
                push(&mut stub, 0x1000);
            }
            push(&mut stub, 0x0000);
            push(&mut stub, STACK3);
            push(
                &mut stub,
                fl | (1 << 17) | if r.chance(2) { 3 << 12 } else { 0 },
            );
            push(&mut stub, 0x1000);
            push(&mut stub, r.below(0x400) as u32);
            stub.push(0xCF);
        }
    }
    let start = HANDLERS + 0x1800;
    write(cpu, start, &stub);
    write(cpu, start + stub.len() as u32, &[0xE9]);
    let rel = (CODE + 0x100).wrapping_sub(start + stub.len() as u32 + 5);
    write(cpu, start + stub.len() as u32 + 1, &rel.to_le_bytes());
    cpu.set_cpl(0);
    cpu.eip = start;
    cpu.regs[gpr::ESP] = STACK0;
    for i in [gpr::EAX, gpr::ECX, gpr::EDX, gpr::EBX, gpr::ESI, gpr::EDI] {
        cpu.regs[i] = match r.below(3) {
            0 => r.u32(),
            1 => CODE + r.below(0x400) as u32,
            _ => selector(&mut r) as u32,
        };
    }
    NoisyBus {
        rng: Rng::new(seed ^ 0x5EED),
        irq: None,
    }
}

/// The CPU's state is one a real processor can be in.
fn check(cpu: &Cpu, seed: u64) {
    assert!(cpu.cpl() <= 3, "seed {seed}: CPL {}", cpu.cpl());
    assert!(cpu.eflags() & 2 != 0, "seed {seed}: EFLAGS bit 1 clear");
    if cpu.is_shutdown() {
        return;
    }
    match cpu.mode() {
        CpuMode::Virtual8086 => assert_eq!(cpu.cpl(), 3, "seed {seed}: V86 at CPL != 3"),
        CpuMode::Real => assert_eq!(cpu.cpl(), 0, "seed {seed}: real mode at CPL != 0"),
        CpuMode::Protected => {}
    }
}

/// Run program `seed` for `instructions` instructions.
fn run_program(cpu: &mut Cpu, seed: u64, instructions: u64) -> Outcome {
    let mut bus = build(cpu, seed);
    let (i0, c0) = (cpu.instructions, cpu.cycles);
    // Each `run` call is bounded by instructions and by cycles (a delivery
    // that retires nothing still costs cycles); the call count bounds the
    // whole, whatever the CPU does.
    let mut calls = 0u64;
    let cycle_guard = instructions.saturating_mul(400);
    let outcome = loop {
        calls += 1;
        let left = instructions.saturating_sub(cpu.instructions - i0);
        if left == 0 || calls > instructions / 16 + 1_000 || cpu.cycles - c0 >= cycle_guard {
            break Outcome::Running;
        }
        match cpu.run(&mut bus, c0 + cycle_guard, left.min(50_000)) {
            StopReason::Shutdown => break Outcome::Shutdown,
            StopReason::Halted => {
                if cpu.is_shutdown() {
                    break Outcome::Shutdown;
                }
                // Wake it with an interrupt if it can take one, else it
                // stays halted for good.
                if cpu.eflags() & (1 << 9) != 0 && bus.rng.chance(2) {
                    bus.irq = Some(bus.rng.byte());
                } else {
                    break Outcome::Halted;
                }
            }
            StopReason::Budget | StopReason::Yield => {}
        }
        if cpu.is_shutdown() {
            break Outcome::Shutdown;
        }
    };
    check(cpu, seed);
    outcome
}

#[derive(Default)]
struct Tally {
    programs: AtomicU64,
    running: AtomicU64,
    halted: AtomicU64,
    shutdown: AtomicU64,
    panics: AtomicU64,
}

/// Run seeds `shard`, `shard + shards`, ... below `programs`; panicking
/// seeds are collected.
fn campaign_shard(
    tally: &Tally,
    shard: u64,
    shards: u64,
    programs: u64,
    instructions: u64,
) -> Vec<u64> {
    let mut failed = Vec::new();
    let mut seed = shard;
    let mut cpu = Cpu::new(ringside_cpu::PhysMem::new(4096));
    // RINGSIDE_CAMPAIGN_TRACE=PATH: each shard appends the seed it starts to
    // PATH.N, so a seed that aborts the process (which no catch_unwind
    // sees) can be found and replayed.
    let mut trace = std::env::var("RINGSIDE_CAMPAIGN_TRACE")
        .ok()
        .map(|p| std::fs::File::create(format!("{p}.{shard}")).expect("trace file"));
    while seed < programs {
        if let Some(t) = trace.as_mut() {
            use std::io::Write;
            let _ = writeln!(t, "{seed}");
        }
        match catch_unwind(AssertUnwindSafe(|| {
            run_program(&mut cpu, seed, instructions)
        })) {
            Ok(o) => {
                let c = match o {
                    Outcome::Running => &tally.running,
                    Outcome::Halted => &tally.halted,
                    Outcome::Shutdown => &tally.shutdown,
                };
                c.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                tally.panics.fetch_add(1, Ordering::Relaxed);
                failed.push(seed);
                // The panic may have left it mid-instruction.
                cpu = Cpu::new(ringside_cpu::PhysMem::new(4096));
            }
        }
        tally.programs.fetch_add(1, Ordering::Relaxed);
        seed += shards;
    }
    failed
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Run the campaign on two threads and report its counts.
fn campaign(programs: u64, instructions: u64) {
    let tally = Tally::default();
    let t0 = Instant::now();
    let failed: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|shard| {
                let tally = &tally;
                std::thread::Builder::new()
                    .name(format!("campaign-{shard}"))
                    .spawn_scoped(s, move || {
                        campaign_shard(tally, shard, 2, programs, instructions)
                    })
                    .unwrap()
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    eprintln!(
        "campaign: {} programs x {} instructions in {:.1} s: {} running, {} halted, {} shutdown, {} host failures {:?}",
        l(&tally.programs),
        instructions,
        t0.elapsed().as_secs_f64(),
        l(&tally.running),
        l(&tally.halted),
        l(&tally.shutdown),
        l(&tally.panics),
        failed
    );
    assert!(
        failed.is_empty(),
        "seeds that panicked the host: {failed:?}"
    );
    assert_eq!(l(&tally.programs), programs);
}

#[test]
fn random_system_code_never_takes_the_host_down() {
    if let Some(seed) = env_u64("RINGSIDE_CAMPAIGN_SEED") {
        let mut cpu = Cpu::new(ringside_cpu::PhysMem::new(4096));
        let n = env_u64("RINGSIDE_CAMPAIGN_INSTRUCTIONS").unwrap_or(200_000);
        let o = run_program(&mut cpu, seed, n);
        eprintln!(
            "seed {seed}: {o:?} after {} instructions, {} exceptions, last {:?}, mode {:?} CPL {}",
            cpu.instructions,
            cpu.exceptions_raised,
            cpu.last_exception,
            cpu.mode(),
            cpu.cpl()
        );
        return;
    }
    if std::env::var("RINGSIDE_LONG_CAMPAIGN").is_ok_and(|v| v == "1") {
        campaign(
            env_u64("RINGSIDE_CAMPAIGN_PROGRAMS").unwrap_or(100_000),
            env_u64("RINGSIDE_CAMPAIGN_INSTRUCTIONS").unwrap_or(200_000),
        );
    } else {
        campaign(4_000, 10_000);
    }
}
