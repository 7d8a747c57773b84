//! Stack: PUSH POP PUSHA/PUSHAD POPA/POPAD PUSHF/PUSHFD POPF/POPFD ENTER LEAVE.
//!
//! Multi-push instructions save ESP and the registers they change and put
//! them back if a push faults, so a fault leaves the state as it was before
//! the instruction (SDM: faults are restartable).

use iced_x86::{Mnemonic, OpKind, Register};

use super::Handler;
use crate::decode::Entry;
use crate::flags;
use crate::interrupt::Fault;
use crate::processor::{Cpu, CpuMode};
use crate::regs::{gpr, SegReg};
use crate::Bus;

/// Operand size of a stack instruction from iced's stack-pointer increment.
fn stack_size(e: &Entry) -> u8 {
    match e.ins.stack_pointer_increment().unsigned_abs() {
        2 | 16 => 2,
        _ => 4,
    }
}

fn is_sreg(r: Register) -> bool {
    (Register::ES as u32..=Register::GS as u32).contains(&(r as u32))
}

fn push_reg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.get_reg(e.ins.op0_register());
    cpu.push(bus, e.size, v)
}

fn push_generic(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let v = cpu.read_op(bus, e, 0, size)?;
    cpu.push(bus, size, v)
}

/// PUSH Sreg with a 32-bit operand size moves ESP by 4 but writes only the
/// low 16 bits, as P6-family parts do (SDM Vol. 2B PUSH).
fn push_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let v = cpu.get_reg(e.ins.op0_register());
    if size == 2 {
        return cpu.push(bus, 2, v);
    }
    let esp = cpu.regs[gpr::ESP];
    cpu.stack_adjust(4u32.wrapping_neg());
    let r = cpu.stack_peek(bus, 0, 4).and_then(|_| {
        let off = if cpu.segs[SegReg::Ss as usize].big() {
            cpu.regs[gpr::ESP]
        } else {
            cpu.regs[gpr::ESP] & 0xFFFF
        };
        cpu.write_mem(bus, SegReg::Ss, off, 2, v)
    });
    if r.is_err() {
        cpu.regs[gpr::ESP] = esp;
    }
    r
}

fn pop_reg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.pop(bus, e.size)?;
    cpu.set_reg(e.ins.op0_register(), v);
    Ok(())
}

/// POP r/m: the address is computed after ESP is incremented (SDM Vol. 2B POP).
fn pop_mem(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let esp = cpu.regs[gpr::ESP];
    let v = cpu.pop(bus, size)?;
    let r = cpu.write_op(bus, e, 0, size, v);
    if r.is_err() {
        cpu.regs[gpr::ESP] = esp;
    }
    r
}

/// POP Sreg. The increment uses the stack's address size *before* the load
/// (SDM Vol. 2B POP: "IF StackAddrSize = 32 THEN ... ESP ← ESP + 4 ELSE SP ←
/// SP + 2" is evaluated with the SS in force when the pop reads): POP SS
/// from a 16-bit stack changes only SP, even when the new SS is 32-bit, and
/// from a 32-bit stack the whole ESP, even when the new SS is 16-bit. ESP
/// changes only once the load has succeeded (a fault leaves it as it was).
fn pop_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let s = SegReg::from_iced(e.ins.op0_register());
    let v = cpu.stack_peek(bus, 0, size)? as u16;
    let esp = cpu.regs[gpr::ESP];
    let new_esp = if cpu.segs[SegReg::Ss as usize].big() {
        esp.wrapping_add(size as u32)
    } else {
        (esp & 0xFFFF_0000) | (esp as u16).wrapping_add(size as u16) as u32
    };
    cpu.load_seg(bus, s, v)?;
    cpu.regs[gpr::ESP] = new_esp;
    if s == SegReg::Ss {
        cpu.ss_loaded();
    }
    Ok(())
}

fn pusha(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let saved = cpu.regs;
    let temp = cpu.regs[gpr::ESP];
    for r in [
        gpr::EAX,
        gpr::ECX,
        gpr::EDX,
        gpr::EBX,
        gpr::ESP,
        gpr::EBP,
        gpr::ESI,
        gpr::EDI,
    ] {
        let v = if r == gpr::ESP { temp } else { saved[r] };
        if let Err(f) = cpu.push(bus, size, v) {
            cpu.regs = saved;
            return Err(f);
        }
    }
    Ok(())
}

fn popa(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size(e);
    let saved = cpu.regs;
    for r in [
        gpr::EDI,
        gpr::ESI,
        gpr::EBP,
        gpr::ESP,
        gpr::EBX,
        gpr::EDX,
        gpr::ECX,
        gpr::EAX,
    ] {
        match cpu.pop(bus, size) {
            Ok(v) => {
                if r != gpr::ESP {
                    if size == 2 {
                        cpu.regs[r] = (cpu.regs[r] & 0xFFFF_0000) | (v & 0xFFFF);
                    } else {
                        cpu.regs[r] = v;
                    }
                }
            }
            Err(f) => {
                cpu.regs = saved;
                return Err(f);
            }
        }
    }
    Ok(())
}

/// PUSHF: IOPL-sensitive only in virtual-8086 mode (SDM Vol. 2B PUSHF).
fn pushf(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if cpu.mode() == CpuMode::Virtual8086 && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    let size = stack_size(e);
    // The image has VM and RF clear.
    let v = cpu.flags.get() & !(flags::VM | flags::RF);
    cpu.push(bus, size, if size == 2 { v & 0xFFFF } else { v })
}

/// POPF (SDM Vol. 2B POPF): at CPL 0 every flag but VM/VIF/VIP; at
/// CPL > 0 IOPL is kept; at CPL > IOPL IF is kept too — silently, which is
/// one of x86's classic virtualization holes. In virtual-8086 mode it needs
/// IOPL 3 and never changes IOPL.
fn popf(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v86 = cpu.mode() == CpuMode::Virtual8086;
    if v86 && cpu.iopl() < 3 {
        return Err(Fault::gp(0));
    }
    let size = stack_size(e);
    let v = cpu.stack_peek(bus, 0, size)?;
    cpu.stack_adjust(size as u32);
    let cur = cpu.flags.get();
    let mut keep = flags::VM | flags::VIF | flags::VIP;
    if cpu.mode() != CpuMode::Real {
        if cpu.cpl() > 0 || v86 {
            keep |= flags::IOPL;
        }
        if cpu.cpl() > cpu.iopl() {
            keep |= flags::IF;
        }
    }
    if size == 2 {
        keep |= 0xFFFF_0000;
    }
    let new = ((v & !keep) | (cur & keep)) & !flags::RF | (cur & flags::RF & keep);
    cpu.set_eflags(new);
    Ok(())
}

fn enter(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = stack_size_enter(e);
    let alloc = e.ins.immediate16() as u32;
    let level = e.ins.immediate8_2nd() as u32 % 32;
    let saved = cpu.regs;
    let r = enter_body(cpu, bus, size, alloc, level);
    if r.is_err() {
        cpu.regs = saved;
    }
    r
}

fn stack_size_enter(e: &Entry) -> u8 {
    if e.ins.code() == iced_x86::Code::Enterw_imm16_imm8 {
        2
    } else {
        4
    }
}

fn enter_body(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    size: u8,
    alloc: u32,
    level: u32,
) -> Result<(), Fault> {
    let big = cpu.segs[SegReg::Ss as usize].big();
    cpu.push(bus, size, cpu.regs[gpr::EBP])?;
    let frame = cpu.regs[gpr::ESP];
    if level > 0 {
        let mut ebp = cpu.regs[gpr::EBP];
        for _ in 1..level {
            ebp = if big {
                ebp.wrapping_sub(size as u32)
            } else {
                (ebp & 0xFFFF_0000) | (ebp.wrapping_sub(size as u32) & 0xFFFF)
            };
            let off = if big { ebp } else { ebp & 0xFFFF };
            let v = cpu.read_mem(bus, SegReg::Ss, off, size)?;
            cpu.push(bus, size, v)?;
        }
        cpu.push(bus, size, frame)?;
    }
    // SDM Vol. 2A ENTER, exceptions: #SS(0) "if the new value of the stack
    // pointer is outside the stack segment limit" and #PF "if a write using
    // the final value of the stack pointer (within the current stack
    // segment) would cause a page fault". Probe a write of one byte at the
    // final ESP through the segment and the page tables (a user write at
    // CPL 3), so a fault is raised here, with CR2 and the page's error code,
    // and `enter` puts every register back.
    let new_esp = if big {
        cpu.regs[gpr::ESP].wrapping_sub(alloc)
    } else {
        cpu.regs[gpr::ESP].wrapping_sub(alloc) & 0xFFFF
    };
    if alloc > 0 {
        let lin = cpu.seg_check_write(SegReg::Ss, new_esp, 1)?;
        cpu.translate(lin, true, cpu.cpl == 3)?;
    }
    if size == 2 {
        cpu.regs[gpr::EBP] = (cpu.regs[gpr::EBP] & 0xFFFF_0000) | (frame & 0xFFFF);
    } else {
        cpu.regs[gpr::EBP] = frame;
    }
    cpu.stack_adjust(alloc.wrapping_neg());
    Ok(())
}

fn leave(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size: u8 = if e.ins.code() == iced_x86::Code::Leavew {
        2
    } else {
        4
    };
    let esp = cpu.regs[gpr::ESP];
    let ebp = cpu.regs[gpr::EBP];
    if cpu.segs[SegReg::Ss as usize].big() {
        cpu.regs[gpr::ESP] = ebp;
    } else {
        cpu.regs[gpr::ESP] = (esp & 0xFFFF_0000) | (ebp & 0xFFFF);
    }
    match cpu.pop(bus, size) {
        Ok(v) => {
            if size == 2 {
                cpu.regs[gpr::EBP] = (ebp & 0xFFFF_0000) | (v & 0xFFFF);
            } else {
                cpu.regs[gpr::EBP] = v;
            }
            Ok(())
        }
        Err(f) => {
            cpu.regs[gpr::ESP] = esp;
            Err(f)
        }
    }
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    let ins = &e.ins;
    let reg0 = ins.op0_kind() == OpKind::Register;
    Some(match ins.mnemonic() {
        Mnemonic::Push if reg0 && is_sreg(ins.op0_register()) => push_sreg,
        Mnemonic::Push if reg0 => push_reg,
        Mnemonic::Push => push_generic,
        Mnemonic::Pop if reg0 && is_sreg(ins.op0_register()) => {
            if ins.op0_register() == Register::CS {
                return Some(super::undefined);
            }
            pop_sreg
        }
        Mnemonic::Pop if reg0 => pop_reg,
        Mnemonic::Pop => pop_mem,
        Mnemonic::Pusha | Mnemonic::Pushad => pusha,
        Mnemonic::Popa | Mnemonic::Popad => popa,
        Mnemonic::Pushf | Mnemonic::Pushfd => pushf,
        Mnemonic::Popf | Mnemonic::Popfd => popf,
        Mnemonic::Enter => enter,
        Mnemonic::Leave => leave,
        _ => return None,
    })
}
