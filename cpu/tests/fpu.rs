//! x87 guest programs: #MF (CR0.NE = 1) and legacy FERR#/IRQ13 (CR0.NE = 0)
//! error reporting, #NM with CR0.TS handled the way Linux switches FPU
//! state lazily (CLTS in the handler, then the instruction restarts),
//! CR0.EM and MP, and the FSAVE/FSTENV/FXSAVE images.
//!
//! Programs are hand-assembled 16-bit real-mode code at 1000:0100 (the
//! bytes are spelled out next to each mnemonic).

use ringside_cpu::fpu::{f80, F80};
use ringside_cpu::{gpr, Bus, Cpu, PhysMem, SegReg, StopReason};

const CODE_SEG: u16 = 0x1000;
const ORG: u32 = 0x100;
const NE: u32 = 1 << 5;
const TS: u32 = 1 << 3;
const MP: u32 = 1 << 1;
const EM: u32 = 1 << 2;

#[derive(Default)]
struct TestBus {
    writes: Vec<(u16, u32)>,
    irq: Option<u8>,
}

impl Bus for TestBus {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        0xFFFF_FFFF
    }
    fn io_write(&mut self, port: u16, _size: u8, value: u32) {
        self.writes.push((port, value));
    }
    fn interrupt_pending(&mut self) -> bool {
        self.irq.is_some()
    }
    fn acknowledge_interrupt(&mut self) -> u8 {
        self.irq.take().unwrap_or(0xFF)
    }
}

fn machine(code: &[u8]) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.mem.poke((CODE_SEG as u32) * 16 + ORG, code);
    cpu.load_seg_real(SegReg::Cs, CODE_SEG);
    cpu.load_seg_real(SegReg::Ds, 0);
    cpu.load_seg_real(SegReg::Ss, 0x3000);
    cpu.regs[gpr::ESP] = 0x1000;
    cpu.eip = ORG;
    cpu
}

fn set_vector(cpu: &mut Cpu, v: u8, off: u16, handler: &[u8]) {
    cpu.mem.poke(off as u32, handler);
    let mut b = off.to_le_bytes().to_vec();
    b.extend_from_slice(&0u16.to_le_bytes());
    cpu.mem.poke(v as u32 * 4, &b);
}

/// Run through yields (port I/O, CR writes) until something else stops it.
fn run(cpu: &mut Cpu, bus: &mut TestBus) -> StopReason {
    for _ in 0..20 {
        let r = cpu.run(bus, u64::MAX, 100);
        if r != StopReason::Yield {
            return r;
        }
    }
    StopReason::Yield
}

fn word(cpu: &Cpu, lin: u32) -> u16 {
    u16::from_le_bytes([cpu.mem.peek(lin), cpu.mem.peek(lin + 1)])
}

fn dword(cpu: &Cpu, lin: u32) -> u32 {
    word(cpu, lin) as u32 | (word(cpu, lin + 2) as u32) << 16
}

fn f80_at(cpu: &Cpu, lin: u32) -> F80 {
    let mut b = [0u8; 10];
    for (i, x) in b.iter_mut().enumerate() {
        *x = cpu.mem.peek(lin + i as u32);
    }
    F80::from_bytes(b)
}

/// FNINIT; FLDCW [0800] (ZE unmasked); FLD1; FLDZ; FDIVP ST(1),ST → a
/// pending zero-divide; FLD1 (waiting: reports it); HLT.
const ZERO_DIVIDE: &[u8] = &[
    0xDB, 0xE3, // fninit
    0xD9, 0x2E, 0x00, 0x08, // fldcw [0x800]
    0xD9, 0xE8, // fld1
    0xD9, 0xEE, // fldz
    0xDE, 0xF9, // fdivp st(1), st
    0xD9, 0xE8, // fld1            (ORG + 12)
    0xF4, // hlt
];

fn zero_divide_machine() -> Cpu {
    let mut cpu = machine(ZERO_DIVIDE);
    cpu.mem.poke(0x800, &0x037Bu16.to_le_bytes());
    cpu
}

#[test]
fn unmasked_exception_raises_mf_at_the_next_waiting_instruction() {
    let mut cpu = zero_divide_machine();
    cpu.cr[0] |= NE;
    // #MF handler: fnstsw ax; hlt
    set_vector(&mut cpu, 16, 0x500, &[0xDF, 0xE0, 0xF4]);
    let r = cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert_eq!(r, StopReason::Halted);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(16));
    let top = 0x3000 * 16 + (cpu.regs[gpr::ESP] & 0xFFFF);
    assert_eq!(
        word(&cpu, top) as u32,
        ORG + 12,
        "#MF is reported at the FLD1"
    );
    let sw = cpu.regs[gpr::EAX] as u16;
    assert_eq!(
        sw & (f80::ZE | f80::ES | f80::B),
        f80::ZE | f80::ES | f80::B
    );
    // The division stored ∞ (ZE is a pre-computation exception: unmasked,
    // the destination is left alone, so ST(1) keeps 1.0 and is not popped).
    assert_eq!(cpu.fpu.st(0), F80::ZERO);
    assert_eq!(cpu.fpu.st(1), F80::ONE);
}

#[test]
fn legacy_reporting_asserts_ferr_and_irq13_handler_clears_it() {
    let mut cpu = zero_divide_machine();
    cpu.set_eflags(0x202);
    // IRQ13 handler (INT 75h on a PC): fnclex; out 0F0h, al; iret
    set_vector(&mut cpu, 0x75, 0x520, &[0xDB, 0xE2, 0xE6, 0xF0, 0xCF]);
    let mut bus = TestBus::default();
    let r = cpu.run(&mut bus, u64::MAX, 100);
    assert_eq!(r, StopReason::Yield, "the waiting FLD1 stalls for FERR#");
    assert!(cpu.fpu.ferr());
    assert_eq!(cpu.eip, ORG + 12, "the FLD1 has not executed");
    // The board turns FERR# into IRQ13.
    bus.irq = Some(0x75);
    let r = run(&mut cpu, &mut bus);
    assert_eq!(r, StopReason::Halted);
    assert!(bus.writes.iter().any(|w| w.0 == 0xF0), "IRQ13 handler ran");
    assert!(!cpu.fpu.ferr());
    assert_eq!(cpu.fpu.status_word() & f80::ES, 0);
    assert_eq!(cpu.fpu.st(0), F80::ONE, "FLD1 ran after the handler");
    assert_eq!(cpu.last_exception, None);
}

#[test]
fn legacy_reporting_without_a_board_proceeds_like_ignne() {
    let mut cpu = zero_divide_machine();
    let mut bus = TestBus::default();
    assert_eq!(cpu.run(&mut bus, u64::MAX, 100), StopReason::Yield);
    assert_eq!(cpu.run(&mut bus, u64::MAX, 100), StopReason::Halted);
    assert_eq!(cpu.fpu.st(0), F80::ONE);
    assert_ne!(cpu.fpu.status_word() & f80::ES, 0, "still pending");
}

#[test]
fn lazy_fpu_switching_with_ts_and_clts() {
    // mov eax, cr0; or al, 8; mov cr0, eax  (set TS)
    // fninit; fld1; fld1; faddp; hlt
    let code = [
        0x0F, 0x20, 0xC0, 0x0C, 0x08, 0x0F, 0x22, 0xC0, // set CR0.TS
        0xDB, 0xE3, // fninit (ORG + 8): #NM
        0xD9, 0xE8, 0xD9, 0xE8, 0xDE, 0xC1, // fld1; fld1; faddp
        0xF4,
    ];
    let mut cpu = machine(&code);
    // #NM handler: inc byte [0600]; clts; iret
    set_vector(
        &mut cpu,
        7,
        0x540,
        &[0xFE, 0x06, 0x00, 0x06, 0x0F, 0x06, 0xCF],
    );
    let r = run(&mut cpu, &mut TestBus::default());
    assert_eq!(r, StopReason::Halted);
    assert_eq!(cpu.mem.peek(0x600), 1, "exactly one #NM, then CLTS");
    assert_eq!(cpu.cr[0] & TS, 0);
    assert_eq!(cpu.fpu.st(0), F80::from_f64(2.0));
}

#[test]
fn em_traps_every_x87_instruction_and_wait_needs_mp_and_ts() {
    // fld1; hlt with EM set → #NM
    let mut cpu = machine(&[0xD9, 0xE8, 0xF4]);
    cpu.cr[0] |= EM;
    set_vector(&mut cpu, 7, 0x540, &[0xF4]);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(7));
    // WAIT with TS alone runs; with MP and TS it is #NM.
    let mut cpu = machine(&[0x9B, 0xF4]);
    cpu.cr[0] |= TS;
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception, None);
    let mut cpu = machine(&[0x9B, 0xF4]);
    cpu.cr[0] |= TS | MP;
    set_vector(&mut cpu, 7, 0x540, &[0xF4]);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(7));
}

/// FNINIT; FLD1; FLD QWORD [0900]; then `save` (an FNSAVE/FNSTENV form at
/// [0700]); HLT. The FLD m64 is at ORG + 4.
fn save_program(save: &[u8]) -> Cpu {
    let mut code = vec![0xDB, 0xE3, 0xD9, 0xE8, 0xDD, 0x06, 0x00, 0x09];
    code.extend_from_slice(save);
    code.push(0xF4);
    let mut cpu = machine(&code);
    cpu.mem.poke(0x900, &2.5f64.to_bits().to_le_bytes());
    let r = cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert_eq!(r, StopReason::Halted);
    assert_eq!(cpu.last_exception, None);
    cpu
}

#[test]
fn fsave_16bit_real_mode_layout() {
    let cpu = save_program(&[0xDD, 0x36, 0x00, 0x07]); // fnsave [0700]
    let b = 0x700;
    assert_eq!(word(&cpu, b), 0x037F, "FCW");
    assert_eq!(word(&cpu, b + 2), 6 << 11, "FSW: TOP = 6");
    assert_eq!(word(&cpu, b + 4), 0x0FFF, "FTW: R6, R7 valid");
    // Real-mode layout: 20-bit linear FIP (1000:0104 = 10104h) split into
    // its low word and bits 16–19 above the 11-bit opcode (DD 06 → 506h).
    assert_eq!(word(&cpu, b + 6), 0x0104);
    assert_eq!(word(&cpu, b + 8), 0x1000 | 0x506);
    assert_eq!(word(&cpu, b + 10), 0x0900, "FDP");
    assert_eq!(word(&cpu, b + 12), 0);
    assert_eq!(f80_at(&cpu, b + 14), F80::from_f64(2.5), "ST(0)");
    assert_eq!(f80_at(&cpu, b + 24), F80::ONE, "ST(1)");
    // FSAVE reinitialises the FPU.
    assert_eq!(cpu.fpu.cw, 0x037F);
    assert_eq!(cpu.fpu.tag_word(), 0xFFFF);
}

#[test]
fn fsave_32bit_real_mode_layout_and_frstor_round_trip() {
    // o32 fnsave [0700]; frstor (o32) [0700]
    let cpu = save_program(&[0x66, 0xDD, 0x36, 0x00, 0x07, 0x66, 0xDD, 0x26, 0x00, 0x07]);
    let b = 0x700;
    assert_eq!(word(&cpu, b), 0x037F);
    assert_eq!(word(&cpu, b + 4), 6 << 11);
    assert_eq!(word(&cpu, b + 8), 0x0FFF);
    assert_eq!(word(&cpu, b + 12), 0x0104);
    assert_eq!(dword(&cpu, b + 16), (0x1 << 12) | 0x506);
    assert_eq!(word(&cpu, b + 20), 0x0900);
    assert_eq!(f80_at(&cpu, b + 28), F80::from_f64(2.5));
    assert_eq!(f80_at(&cpu, b + 38), F80::ONE);
    // FRSTOR brought everything back.
    assert_eq!(cpu.fpu.top, 6);
    assert_eq!(cpu.fpu.st(0), F80::from_f64(2.5));
    assert_eq!(cpu.fpu.st(1), F80::ONE);
    assert_eq!(cpu.fpu.tag_word(), 0x0FFF);
}

#[test]
fn fstenv_masks_exceptions_and_fldenv_restores() {
    // fldcw [0800] (all unmasked); fnstenv [0700]; fstcw [0802]; fldenv [0700]
    let cpu = {
        let mut code = vec![0xDB, 0xE3, 0xD9, 0x2E, 0x00, 0x08];
        code.extend_from_slice(&[0xD9, 0x36, 0x00, 0x07, 0xD9, 0x3E, 0x02, 0x08]);
        code.extend_from_slice(&[0xD9, 0x26, 0x00, 0x07, 0xF4]);
        let mut cpu = machine(&code);
        cpu.mem.poke(0x800, &0x0340u16.to_le_bytes());
        cpu.run(&mut TestBus::default(), u64::MAX, 100);
        cpu
    };
    assert_eq!(word(&cpu, 0x700), 0x0340);
    assert_eq!(word(&cpu, 0x802), 0x037F, "FSTENV masked every exception");
    assert_eq!(cpu.fpu.cw, 0x0340, "FLDENV restored the control word");
}

#[test]
fn fxsave_layout_alignment_and_fxrstor() {
    // fninit; fld1; fxsave [0800]; fninit; fxrstor [0800]; hlt
    let code = [
        0xDB, 0xE3, 0xD9, 0xE8, 0x0F, 0xAE, 0x06, 0x00, 0x08, 0xDB, 0xE3, 0x0F, 0xAE, 0x0E, 0x00,
        0x08, 0xF4,
    ];
    let mut cpu = machine(&code);
    cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert_eq!(cpu.last_exception, None);
    assert_eq!(word(&cpu, 0x800), 0x037F);
    assert_eq!(word(&cpu, 0x802), 7 << 11);
    assert_eq!(cpu.mem.peek(0x804), 0x80, "abridged tag: R7 valid");
    assert_eq!(f80_at(&cpu, 0x800 + 32), F80::ONE);
    assert_eq!(cpu.fpu.st(0), F80::ONE);
    assert_eq!(cpu.fpu.top, 7);
    // Misaligned: #GP(0).
    let mut cpu = machine(&[0x0F, 0xAE, 0x06, 0x08, 0x08, 0xF4]);
    set_vector(&mut cpu, 13, 0x540, &[0xF4]);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(13));
}

#[test]
fn cpuid_advertises_fpu_and_fxsr() {
    // mov eax, 1; cpuid; hlt
    let mut cpu = machine(&[0x66, 0xB8, 1, 0, 0, 0, 0x0F, 0xA2, 0xF4]);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    let edx = cpu.regs[gpr::EDX];
    assert_ne!(edx & 1, 0, "FPU");
    assert_ne!(edx & (1 << 24), 0, "FXSR");
}

#[test]
fn debugger_view_lists_the_stack() {
    let cpu = save_program(&[]);
    let v = cpu.fpu.view();
    assert_eq!(v.st[0].value, F80::from_f64(2.5));
    assert_eq!(v.st[0].phys, 6);
    assert_eq!(v.physical()[7].0, 1, "R7 is ST(1)");
    let s = v.to_string();
    assert!(s.contains("ST(0) R6 valid"), "{s}");
    assert!(s.contains("PC=64-bit RC=nearest"), "{s}");
}
