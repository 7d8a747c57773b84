//! End-to-end smoke tests of the real-mode core: small programs assembled
//! with iced's code_asm, run until HLT, checked register by register.

use iced_x86::code_asm::*;
use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg, StopReason};

fn run16(build: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Cpu {
    let mut a = CodeAssembler::new(16).unwrap();
    build(&mut a).unwrap();
    a.hlt().unwrap();
    let bytes = a.assemble(0x100).unwrap();
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.mem.poke(0x1000 * 16 + 0x100, &bytes);
    cpu.load_seg_real(SegReg::Cs, 0x1000);
    cpu.load_seg_real(SegReg::Ds, 0x2000);
    cpu.load_seg_real(SegReg::Ss, 0x3000);
    cpu.regs[gpr::ESP] = 0xFFFE;
    cpu.eip = 0x100;
    let r = cpu.run(&mut NullBus, u64::MAX, 100_000);
    assert_eq!(r, StopReason::Halted, "program did not reach HLT: {cpu:?}");
    cpu
}

#[test]
fn loop_sums_one_to_hundred() {
    let cpu = run16(|a| {
        a.xor(ax, ax)?;
        a.mov(cx, 100)?;
        let mut top = a.create_label();
        a.set_label(&mut top)?;
        a.add(ax, cx)?;
        a.loop_(top)?;
        Ok(())
    });
    assert_eq!(cpu.regs[gpr::EAX] & 0xFFFF, 5050);
    assert_eq!(cpu.regs[gpr::ECX] & 0xFFFF, 0);
}

#[test]
fn call_ret_and_stack() {
    let cpu = run16(|a| {
        let mut f = a.create_label();
        let mut end = a.create_label();
        a.mov(bx, 7)?;
        a.call(f)?;
        a.jmp(end)?;
        a.set_label(&mut f)?;
        a.push(bx)?;
        a.imul_3(bx, bx, 6)?;
        a.pop(dx)?;
        a.ret()?;
        a.set_label(&mut end)?;
        Ok(())
    });
    assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 42);
    assert_eq!(cpu.regs[gpr::EDX] & 0xFFFF, 7);
    assert_eq!(cpu.regs[gpr::ESP] & 0xFFFF, 0xFFFE);
}

#[test]
fn rep_movsb_copies() {
    let cpu = run16(|a| {
        a.mov(ax, 0x2000)?;
        a.mov(es, ax)?;
        a.mov(word_ptr(0x10), 0x1234)?;
        a.mov(word_ptr(0x12), 0x5678)?;
        a.mov(si, 0x10)?;
        a.mov(di, 0x20)?;
        a.mov(cx, 4)?;
        a.cld()?;
        a.rep().movsb()?;
        a.mov(eax, dword_ptr(0x20))?;
        Ok(())
    });
    assert_eq!(cpu.regs[gpr::EAX], 0x5678_1234);
    assert_eq!(cpu.regs[gpr::ESI] & 0xFFFF, 0x14);
}

#[test]
fn divide_by_zero_goes_through_ivt() {
    let cpu = run16(|a| {
        // IVT[0] = 1000:handler; handler sets BX and halts.
        let mut handler = a.create_label();
        let mut body = a.create_label();
        a.jmp(body)?;
        a.set_label(&mut handler)?;
        a.mov(bx, 0xBEEF)?;
        a.hlt()?;
        a.set_label(&mut body)?;
        a.xor(ax, ax)?;
        a.mov(ds, ax)?;
        a.mov(word_ptr(0), 0x100 + 2)?; // handler offset (after the 2-byte short JMP)
        a.mov(word_ptr(2), 0x1000)?;
        a.xor(cx, cx)?;
        a.div(cx)?;
        Ok(())
    });
    assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 0xBEEF);
}
