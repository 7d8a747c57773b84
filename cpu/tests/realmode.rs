//! Real-mode behaviour that a few instructions can show: exceptions through
//! the IVT with the right saved CS:IP, the interrupt shadows, single-step,
//! segment-limit faults, the 15-byte limit, external interrupts.

use iced_x86::code_asm::*;
use ringside_cpu::{gpr, Bus, Cpu, PhysMem, SegReg, StopReason};

const CODE_SEG: u16 = 0x1000;
const ORG: u32 = 0x100;

/// A bus that records port writes and can raise one interrupt.
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

/// Assemble at CS:ORG; vectors listed in `ivt` point at labels by index of
/// `handlers`. Returns the CPU ready to run.
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

fn asm(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Vec<u8> {
    let mut a = CodeAssembler::new(16).unwrap();
    build(&mut a).unwrap();
    a.assemble(ORG as u64).unwrap()
}

fn set_vector(cpu: &mut Cpu, v: u8, seg: u16, off: u16) {
    let mut b = off.to_le_bytes().to_vec();
    b.extend_from_slice(&seg.to_le_bytes());
    cpu.mem.poke(v as u32 * 4, &b);
}

fn word_at(cpu: &Cpu, lin: u32) -> u16 {
    u16::from_le_bytes([cpu.mem.peek(lin), cpu.mem.peek(lin + 1)])
}

/// A handler that halts, placed at 0000:0500.
fn halting_handler(cpu: &mut Cpu, v: u8) {
    cpu.mem.poke(0x500, &[0xF4]);
    set_vector(cpu, v, 0, 0x500);
}

#[test]
fn divide_error_saves_the_faulting_ip() {
    let code = asm(|a| {
        a.mov(ax, 10)?;
        a.xor(bl, bl)?;
        a.div(bl)?; // at ORG+5
        Ok(())
    });
    let mut cpu = machine(&code);
    halting_handler(&mut cpu, 0);
    let r = cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert_eq!(r, StopReason::Halted);
    let top = 0x3000 * 16 + (cpu.regs[gpr::ESP] & 0xFFFF);
    assert_eq!(
        word_at(&cpu, top) as u32,
        ORG + 5,
        "#DE is a fault: saved IP is the DIV"
    );
    assert_eq!(word_at(&cpu, top + 2), CODE_SEG);
}

#[test]
fn int_n_saves_the_next_ip_and_iret_returns() {
    let code = asm(|a| {
        a.int(0x42)?;
        a.mov(cx, 0x1234)?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    // Handler: mov bx, 0x55; iret
    cpu.mem.poke(0x600, &[0xBB, 0x55, 0x00, 0xCF]);
    set_vector(&mut cpu, 0x42, 0, 0x600);
    let r = cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert_eq!(r, StopReason::Halted);
    assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 0x55);
    assert_eq!(cpu.regs[gpr::ECX] & 0xFFFF, 0x1234);
    assert_eq!(cpu.regs[gpr::ESP] & 0xFFFF, 0x1000);
}

#[test]
fn undefined_opcode_raises_ud() {
    let mut cpu = machine(&[0x0F, 0x0B]); // UD2
    halting_handler(&mut cpu, 6);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert!(cpu.is_halted());
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(6));
}

#[test]
fn sixteen_byte_instruction_is_gp() {
    let mut code = vec![0x66; 15];
    code.push(0x90);
    let mut cpu = machine(&code);
    halting_handler(&mut cpu, 13);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(13));
    let mut ok = vec![0x66; 14];
    ok.push(0x90);
    ok.push(0xF4);
    let mut cpu = machine(&ok);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception, None, "15 bytes is still legal");
    assert!(cpu.is_halted());
}

#[test]
fn word_access_across_segment_limit_is_gp_and_stack_is_ss() {
    let code = asm(|a| {
        a.mov(ax, word_ptr(0xFFFF))?;
        Ok(())
    });
    let mut cpu = machine(&code);
    halting_handler(&mut cpu, 13);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    assert_eq!(cpu.last_exception.map(|f| f.vector), Some(13));

    let code = asm(|a| {
        a.mov(sp, 1)?;
        a.push(ax)?;
        Ok(())
    });
    let mut cpu = machine(&code);
    halting_handler(&mut cpu, 12);
    cpu.run(&mut TestBus::default(), u64::MAX, 10);
    // The #SS delivery itself pushes at SP=1 and faults again: a contributory
    // fault during a contributory one is #DF, whose push faults too: shutdown.
    assert!(
        cpu.is_shutdown(),
        "push at SP=1 in real mode ends in a triple fault"
    );
}

#[test]
fn single_step_traps_after_each_instruction() {
    let code = asm(|a| {
        a.pushf()?; // clean image for the final POPF
        a.pushf()?;
        a.pop(ax)?;
        a.or(ax, 0x100)?;
        a.push(ax)?;
        a.popf()?; // sets TF: no trap after POPF itself (TF is sampled at the start)
        a.nop()?; // trap
        a.nop()?; // trap
        a.popf()?; // clears TF, but began with TF set: trap
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    // #DB handler counts in DI and returns.
    cpu.mem.poke(0x700, &[0x47, 0xCF]); // inc di; iret
    set_vector(&mut cpu, 1, 0, 0x700);
    cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.regs[gpr::EDI] & 0xFFFF, 3);
}

#[test]
fn sti_shadow_delays_the_interrupt_by_one_instruction() {
    let code = asm(|a| {
        a.sti()?;
        a.mov(bx, 1)?; // runs before the interrupt
        a.mov(bx, 2)?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    // Handler records BX in DX and halts.
    cpu.mem.poke(0x800, &[0x89, 0xDA, 0xF4]); // mov dx, bx; hlt
    set_vector(&mut cpu, 0x20, 0, 0x800);
    let mut bus = TestBus {
        irq: Some(0x20),
        ..Default::default()
    };
    cpu.run(&mut bus, u64::MAX, 100);
    assert_eq!(cpu.regs[gpr::EDX] & 0xFFFF, 1);
}

#[test]
fn mov_ss_shadow_blocks_interrupts_for_one_instruction() {
    let code = asm(|a| {
        a.mov(ax, 0x3000)?;
        a.sti()?;
        a.nop()?;
        a.mov(ss, ax)?;
        a.mov(sp, 0x900)?; // must run before any interrupt
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    cpu.mem.poke(0x800, &[0x89, 0xE2, 0xF4]); // mov dx, sp; hlt
    set_vector(&mut cpu, 0x20, 0, 0x800);
    let mut bus = TestBus::default();
    // Run to just after STI+NOP, then raise the interrupt before MOV SS.
    cpu.run(&mut bus, u64::MAX, 3);
    bus.irq = Some(0x20);
    cpu.step(&mut bus); // MOV SS: interrupt is taken before it (IF=1, no shadow)
    assert_eq!(
        cpu.segs[SegReg::Cs as usize].selector,
        0,
        "interrupt taken at the boundary"
    );

    let mut cpu = machine(&code);
    cpu.mem.poke(0x800, &[0x89, 0xE2, 0xF4]);
    set_vector(&mut cpu, 0x20, 0, 0x800);
    let mut bus = TestBus::default();
    cpu.run(&mut bus, u64::MAX, 4); // through MOV SS
    bus.irq = Some(0x20);
    cpu.run(&mut bus, u64::MAX, 100);
    assert_eq!(
        cpu.regs[gpr::EDX] & 0xFFFF,
        0x900 - 6,
        "MOV SP ran before the interrupt"
    );
}

#[test]
fn out_reaches_the_bus() {
    let code = asm(|a| {
        a.mov(al, 0x41)?;
        a.out(0xE9, al)?;
        a.mov(dx, 0xF4)?;
        a.mov(ax, 0x1234)?;
        a.out(dx, ax)?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    let mut bus = TestBus::default();
    while cpu.run(&mut bus, u64::MAX, 100) == StopReason::Yield {}
    assert_eq!(bus.writes, vec![(0xE9, 0x41), (0xF4, 0x1234)]);
}

#[test]
fn hlt_wakes_on_interrupt() {
    let code = asm(|a| {
        a.sti()?;
        a.hlt()?;
        a.mov(cx, 7)?;
        a.cli()?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    cpu.mem.poke(0x800, &[0xCF]); // iret
    set_vector(&mut cpu, 0x08, 0, 0x800);
    let mut bus = TestBus::default();
    assert_eq!(cpu.run(&mut bus, u64::MAX, 100), StopReason::Halted);
    bus.irq = Some(0x08);
    assert_eq!(cpu.run(&mut bus, u64::MAX, 100), StopReason::Halted);
    assert_eq!(cpu.regs[gpr::ECX] & 0xFFFF, 7);
    assert!(!cpu.interrupts_enabled());
}

/// A bus with one NMI edge.
#[derive(Default)]
struct NmiBus {
    nmi: bool,
}

impl Bus for NmiBus {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        0xFFFF_FFFF
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
    fn take_nmi(&mut self) -> bool {
        std::mem::take(&mut self.nmi)
    }
}

#[test]
fn nmi_ignores_if_and_is_blocked_until_iret() {
    let code = asm(|a| {
        a.cli()?;
        a.nop()?;
        a.nop()?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    // NMI handler: count in DI, then (first time only) wait for a second NMI
    // edge before IRET: it must not nest.
    cpu.mem.poke(0x900, &[0x47, 0x90, 0x90, 0xCF]); // inc di; nop; nop; iret
    set_vector(&mut cpu, 2, 0, 0x900);
    let mut bus = NmiBus::default();
    cpu.run(&mut bus, u64::MAX, 1); // CLI
    bus.nmi = true;
    cpu.step(&mut bus); // NMI taken despite IF=0 (before the NOP)
    assert_eq!(cpu.segs[SegReg::Cs as usize].selector, 0);
    cpu.step(&mut bus); // inc di
    bus.nmi = true; // a second NMI while the handler runs: held
    cpu.step(&mut bus);
    assert_eq!(cpu.eip, 0x902, "no nesting: still in the first handler");
    cpu.run(&mut bus, u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(
        cpu.regs[gpr::EDI] & 0xFFFF,
        2,
        "the held NMI ran after the IRET"
    );
}

#[test]
fn reset_returns_to_the_power_on_state() {
    let code = asm(|a| {
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    cpu.cr[0] |= 1;
    cpu.set_cpl(3);
    cpu.sysenter = [8, 1, 2];
    cpu.tr.selector = 0x28;
    cpu.reset();
    assert_eq!(cpu.cpl(), 0);
    assert_eq!(cpu.sysenter, [0; 3]);
    assert_eq!(cpu.tr.selector, 0);
    assert_eq!(cpu.cr[0] & 1, 0);
    assert_eq!(
        (cpu.segs[SegReg::Cs as usize].selector, cpu.eip),
        (0xF000, 0xFFF0)
    );
}

#[test]
fn cached_relative_branches_follow_the_alias_they_run_at() {
    // The same physical bytes run as 1000:0100 and then as 1010:0000 (one
    // paragraph apart, so EIP differs by 0x100): a relative CALL/JMP must
    // land relative to the EIP it runs at, not the one it was decoded at.
    let code = asm(|a| {
        let mut f = a.create_label();
        let mut end = a.create_label();
        a.call(f)?;
        a.jmp(end)?;
        a.set_label(&mut f)?;
        a.inc(bx)?;
        a.ret()?;
        a.set_label(&mut end)?;
        a.hlt()?;
        Ok(())
    });
    let mut cpu = machine(&code);
    cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 1);
    cpu.wake();
    cpu.load_seg_real(SegReg::Cs, CODE_SEG + 0x10);
    cpu.eip = 0;
    cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(
        cpu.regs[gpr::EBX] & 0xFFFF,
        2,
        "the cached CALL/JMP/RET ran correctly at the alias"
    );
    assert!(
        cpu.eip < 0x100,
        "stayed in the aliased segment's offsets: {:#x}",
        cpu.eip
    );
}

#[test]
fn rep_bsf_is_bsf_and_hint_nops_are_nops_on_a_p6() {
    // 66 B9 10 00 00 00   mov ecx, 0x10
    // 66 F3 0F BC C1      tzcnt eax, ecx  (REP BSF on a P6: eax = 4)
    // F3 0F 1E FB         endbr32 (a hint NOP)
    // 0F 18 06 00 00      prefetchnta [0] (a hint NOP)
    // F4                  hlt
    let code = [
        0x66, 0xB9, 0x10, 0, 0, 0, 0x66, 0xF3, 0x0F, 0xBC, 0xC1, 0xF3, 0x0F, 0x1E, 0xFB, 0x0F,
        0x18, 0x06, 0, 0, 0xF4,
    ];
    let mut cpu = machine(&code);
    cpu.regs[gpr::EAX] = 0xDEAD;
    cpu.run(&mut TestBus::default(), u64::MAX, 100);
    assert!(cpu.is_halted());
    assert_eq!(cpu.last_exception, None);
    assert_eq!(cpu.regs[gpr::EAX], 4);
}
