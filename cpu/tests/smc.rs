//! Self-modifying code: a store into code that is about to run (or that ran
//! before and sits in the decoded-instruction cache) takes effect at once,
//! as on a P6 (SDM Vol. 3A §11.6 "Self-Modifying Code").

use iced_x86::code_asm::*;
use iced_x86::BlockEncoderOptions;
use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg, StopReason};

/// Real-mode segment for code, data and stack, and the code's offset.
const SEG: u16 = 0x1000;
const ORG: u16 = 0x0100;

/// Assemble 16-bit code at `ORG` twice: the first pass learns where `label`
/// lands, the second gets that address as `addr` (code_asm labels are branch
/// targets only, so data references need the second pass).
fn assemble(
    f: impl Fn(&mut CodeAssembler, &mut CodeLabel, u16) -> Result<(), IcedError>,
) -> (Vec<u8>, u16) {
    let pass = |addr: u16| {
        let mut a = CodeAssembler::new(16).unwrap();
        let mut label = a.create_label();
        f(&mut a, &mut label, addr).unwrap();
        let r = a
            .assemble_options(
                ORG as u64,
                BlockEncoderOptions::RETURN_NEW_INSTRUCTION_OFFSETS,
            )
            .unwrap();
        (
            r.inner.code_buffer.clone(),
            r.label_ip(&label).unwrap() as u16,
        )
    };
    let (_, addr) = pass(0);
    let (code, again) = pass(addr);
    assert_eq!(addr, again, "label moved between passes");
    (code, addr)
}

fn machine(code: &[u8]) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    for s in SegReg::ALL {
        cpu.load_seg_real(s, SEG);
    }
    cpu.regs[gpr::ESP] = 0xFFFE;
    cpu.eip = ORG as u32;
    cpu.mem.poke(((SEG as u32) << 4) + ORG as u32, code);
    cpu
}

/// Run to HLT with the run loop.
fn run_to_hlt(code: &[u8]) -> Cpu {
    let mut cpu = machine(code);
    let mut r = StopReason::Yield;
    for _ in 0..100 {
        r = cpu.run(&mut NullBus, u64::MAX, 1000);
        if r != StopReason::Yield {
            break;
        }
    }
    assert_eq!(
        r,
        StopReason::Halted,
        "did not reach HLT; last exception {:?}",
        cpu.last_exception
    );
    assert_eq!(cpu.last_exception, None);
    cpu
}

/// Run to HLT one `step` at a time.
fn step_to_hlt(code: &[u8]) -> Cpu {
    let mut cpu = machine(code);
    for _ in 0..1000 {
        if cpu.step(&mut NullBus) == StopReason::Halted {
            assert_eq!(cpu.last_exception, None);
            return cpu;
        }
    }
    panic!("did not reach HLT; last exception {:?}", cpu.last_exception);
}

fn both(code: &[u8], check: impl Fn(&Cpu, &str)) {
    check(&run_to_hlt(code), "run");
    check(&step_to_hlt(code), "step");
}

#[test]
fn store_into_the_next_instructions_immediate_takes_effect() {
    // mov word [next+1], 0x2222 ; next: mov ax, 0x1111 ; hlt
    let (code, _) = assemble(|a, next, addr| {
        a.mov(word_ptr(addr as u32 + 1), 0x2222)?;
        a.set_label(next)?;
        a.mov(ax, 0x1111)?;
        a.hlt()
    });
    both(&code, |cpu, how| {
        assert_eq!(
            cpu.regs[gpr::EAX] & 0xFFFF,
            0x2222,
            "{how}: AX (0x1111 = stale code)"
        )
    });
}

#[test]
fn store_into_code_that_already_ran_invalidates_its_decode() {
    //     mov cx, 2
    // again: mov ax, 0x1111      ; decoded and cached on the first pass
    //     add bx, ax
    //     mov word [again+1], 0x2222
    //     loop again
    //     hlt
    let (code, _) = assemble(|a, again, addr| {
        a.mov(cx, 2)?;
        a.set_label(again)?;
        a.mov(ax, 0x1111)?;
        a.add(bx, ax)?;
        a.mov(word_ptr(addr as u32 + 1), 0x2222)?;
        a.loop_(*again)?;
        a.hlt()
    });
    both(&code, |cpu, how| {
        assert_eq!(cpu.regs[gpr::EAX] & 0xFFFF, 0x2222, "{how}: AX");
        assert_eq!(
            cpu.regs[gpr::EBX] & 0xFFFF,
            0x3333,
            "{how}: BX (0x2222 = stale second pass)"
        );
    });
}

#[test]
fn rep_stos_over_the_code_ahead_takes_effect() {
    //     mov di, patch ; mov cx, 3 ; mov al, 0x90 ; cld ; rep stosb
    // patch: mov ax, 0xDEAD   ; overwritten by three NOPs before it runs
    //     mov bx, 0x1234 ; hlt
    let (code, _) = assemble(|a, patch, addr| {
        a.mov(di, addr as u32)?;
        a.mov(cx, 3)?;
        a.mov(al, 0x90)?;
        a.cld()?;
        a.rep().stosb()?;
        a.set_label(patch)?;
        a.mov(ax, 0xDEAD)?;
        a.mov(bx, 0x1234)?;
        a.hlt()
    });
    both(&code, |cpu, how| {
        assert_eq!(
            cpu.regs[gpr::EAX] & 0xFFFF,
            0x0090,
            "{how}: AX (0xDEAD = stale code)"
        );
        assert_eq!(cpu.regs[gpr::EBX] & 0xFFFF, 0x1234, "{how}: BX");
        assert_eq!(cpu.regs[gpr::ECX] & 0xFFFF, 0, "{how}: CX");
    });
}

#[test]
fn rep_stos_over_cached_code_takes_effect() {
    //     xor si, si
    // patch: mov ax, 0xDEAD   ; runs (and is cached) on the first pass only
    //     inc si ; cmp si, 2 ; je done
    //     mov di, patch ; mov cx, 3 ; mov al, 0x90 ; cld ; rep stosb
    //     jmp patch
    // done: hlt
    let (code, _) = assemble(|a, patch, addr| {
        let mut done = a.create_label();
        a.xor(si, si)?;
        a.set_label(patch)?;
        a.mov(ax, 0xDEAD)?;
        a.inc(si)?;
        a.cmp(si, 2)?;
        a.je(done)?;
        a.mov(di, addr as u32)?;
        a.mov(cx, 3)?;
        a.mov(al, 0x90)?;
        a.cld()?;
        a.rep().stosb()?;
        a.jmp(*patch)?;
        a.set_label(&mut done)?;
        a.hlt()
    });
    both(&code, |cpu, how| {
        assert_eq!(cpu.regs[gpr::ESI] & 0xFFFF, 2, "{how}: SI");
        assert_eq!(
            cpu.regs[gpr::EAX] & 0xFFFF,
            0xDE90,
            "{how}: AX (0xDEAD = stale second pass)"
        );
    });
}
