//! Control transfer: JMP Jcc JCXZ LOOP CALL RET RETF INT INT3 INT1 INTO IRET BOUND.

use iced_x86::{Code, MemorySize, Mnemonic, OpKind};

use super::Handler;
use crate::decode::Entry;
use crate::interrupt::{Fault, Source, Vector};
use crate::processor::Cpu;
use crate::regs::{gpr, SegReg};
use crate::Bus;

impl Cpu {
    /// Set EIP to a near target after checking it against the CS limit.
    #[inline(always)]
    pub(crate) fn near_jump(&mut self, target: u32) -> Result<(), Fault> {
        if target > self.segs[SegReg::Cs as usize].limit {
            return Err(Fault::gp(0));
        }
        self.eip = target;
        Ok(())
    }
}

/// A relative branch's target from the *current* EIP (already advanced past
/// the instruction) and the displacement kept in the entry. Entries are
/// shared by every linear alias of their physical bytes (07C0:0000 and
/// 0000:7C00; a kernel's identity and high mappings), so the absolute
/// target iced computed for the EIP seen at decode time must not be used.
#[inline(always)]
fn target_of(cpu: &Cpu, e: &Entry) -> u32 {
    let t = cpu.eip.wrapping_add(e.imm);
    if e.ins.op0_kind() == OpKind::NearBranch16 {
        t & 0xFFFF
    } else {
        t
    }
}

fn jmp_rel(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    cpu.near_jump(target_of(cpu, e))
}

/// Jcc, one monomorphised handler per condition so the condition switch is
/// resolved when the instruction is decoded, not each time it runs.
fn jcc<const CC: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if cpu.flags.condition(CC) {
        cpu.near_jump(target_of(cpu, e))
    } else {
        Ok(())
    }
}

fn jcc_handler(cc: u8) -> Handler {
    match cc {
        0 => jcc::<0>,
        1 => jcc::<1>,
        2 => jcc::<2>,
        3 => jcc::<3>,
        4 => jcc::<4>,
        5 => jcc::<5>,
        6 => jcc::<6>,
        7 => jcc::<7>,
        8 => jcc::<8>,
        9 => jcc::<9>,
        10 => jcc::<10>,
        11 => jcc::<11>,
        12 => jcc::<12>,
        13 => jcc::<13>,
        14 => jcc::<14>,
        _ => jcc::<15>,
    }
}

/// Whether a LOOP/JCXZ form counts with ECX (address size 32) rather than CX.
fn counts_ecx(c: Code) -> bool {
    matches!(
        c,
        Code::Loop_rel8_16_ECX
            | Code::Loop_rel8_32_ECX
            | Code::Loope_rel8_16_ECX
            | Code::Loope_rel8_32_ECX
            | Code::Loopne_rel8_16_ECX
            | Code::Loopne_rel8_32_ECX
            | Code::Jecxz_rel8_16
            | Code::Jecxz_rel8_32
    )
}

fn loop_(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let ecx = counts_ecx(e.ins.code());
    let c = cpu.regs[gpr::ECX];
    let n = if ecx {
        cpu.regs[gpr::ECX] = c.wrapping_sub(1);
        c.wrapping_sub(1)
    } else {
        let n = (c as u16).wrapping_sub(1);
        cpu.regs[gpr::ECX] = (c & 0xFFFF_0000) | n as u32;
        n as u32
    };
    let take = n != 0
        && match e.ins.mnemonic() {
            Mnemonic::Loope => cpu.flags.zf(),
            Mnemonic::Loopne => !cpu.flags.zf(),
            _ => true,
        };
    if take {
        cpu.near_jump(target_of(cpu, e))?;
    }
    Ok(())
}

fn jcxz(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let c = if counts_ecx(e.ins.code()) {
        cpu.regs[gpr::ECX]
    } else {
        cpu.regs[gpr::ECX] & 0xFFFF
    };
    if c == 0 {
        cpu.near_jump(target_of(cpu, e))?;
    }
    Ok(())
}

fn is_far_mem(e: &Entry) -> Option<u8> {
    if e.ins.op0_kind() != OpKind::Memory {
        return None;
    }
    match e.ins.memory_size() {
        MemorySize::SegPtr16 => Some(2),
        MemorySize::SegPtr32 => Some(4),
        _ => None,
    }
}

fn read_far_ptr(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    e: &Entry,
    size: u8,
) -> Result<(u16, u32), Fault> {
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let wrap = if e.addr32 { u32::MAX } else { 0xFFFF };
    let o = cpu.read_mem(bus, seg, off, size)?;
    let s = cpu.read_mem(bus, seg, off.wrapping_add(size as u32) & wrap, 2)? as u16;
    Ok((s, o))
}

fn jmp_indirect(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let t = cpu.read_op(bus, e, 0, e.size)?;
    cpu.near_jump(t)
}

fn far_operand(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(u8, u16, u32), Fault> {
    Ok(match is_far_mem(e) {
        Some(size) => {
            let (s, o) = read_far_ptr(cpu, bus, e, size)?;
            (size, s, o)
        }
        None => {
            if e.ins.op0_kind() == OpKind::FarBranch16 {
                (2, e.ins.far_branch_selector(), e.ins.far_branch16() as u32)
            } else {
                (4, e.ins.far_branch_selector(), e.ins.far_branch32())
            }
        }
    })
}

fn jmp_far(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let (size, sel, off) = far_operand(cpu, bus, e)?;
    cpu.far_jmp(bus, sel, off, size)
}

fn call_near(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let target = match e.ins.op0_kind() {
        OpKind::NearBranch16 | OpKind::NearBranch32 => target_of(cpu, e),
        _ => cpu.read_op(bus, e, 0, size)?,
    };
    if target > cpu.segs[SegReg::Cs as usize].limit {
        return Err(Fault::gp(0));
    }
    cpu.push(bus, size, cpu.eip)?;
    cpu.eip = target;
    Ok(())
}

fn call_far(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let (size, sel, off) = far_operand(cpu, bus, e)?;
    cpu.far_call(bus, sel, off, size)
}

fn ret_size(c: Code) -> u8 {
    match c {
        Code::Retnw | Code::Retnw_imm16 | Code::Retfw | Code::Retfw_imm16 => 2,
        _ => 4,
    }
}

fn ret_near(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = ret_size(e.ins.code());
    let t = cpu.stack_peek(bus, 0, size)?;
    if t > cpu.segs[SegReg::Cs as usize].limit {
        return Err(Fault::gp(0));
    }
    let imm = if e.ins.op_count() > 0 {
        e.ins.immediate16() as u32
    } else {
        0
    };
    cpu.stack_adjust(size as u32 + imm);
    cpu.eip = t;
    Ok(())
}

fn ret_far(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = ret_size(e.ins.code());
    let imm = if e.ins.op_count() > 0 {
        e.ins.immediate16() as u32
    } else {
        0
    };
    cpu.far_ret(bus, size, imm)
}

fn int_n(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let (v, source) = match e.ins.mnemonic() {
        Mnemonic::Int3 => (Vector::Breakpoint as u8, Source::Software),
        // ICEBP is a debug trap, not a software interrupt: no gate DPL
        // test, and it is not IOPL-sensitive in virtual-8086 mode.
        Mnemonic::Int1 => (Vector::Debug as u8, Source::Exception),
        Mnemonic::Into => {
            if !cpu.flags.of() {
                return Ok(());
            }
            (Vector::Overflow as u8, Source::Software)
        }
        _ => {
            // INT n in virtual-8086 mode with IOPL < 3 goes to the monitor
            // as #GP(0) (SDM Vol. 3A §20.3.1, no VME).
            if cpu.mode() == crate::processor::CpuMode::Virtual8086 && cpu.iopl() < 3 {
                return Err(Fault::gp(0));
            }
            (e.ins.immediate8(), Source::Software)
        }
    };
    let traced = cpu.flags.control(crate::flags::TF);
    cpu.interrupt(bus, v, source, None)?;
    if traced {
        // The handler was entered: no single-step trap for this INT (SDM
        // Vol. 3B §17.3.1.4; see `Cpu::single_step_trap`).
        cpu.step_cancel_at = cpu.instructions + 1;
    }
    Ok(())
}

fn iret(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size: u8 = if e.ins.code() == Code::Iretw { 2 } else { 4 };
    cpu.iret(bus, size)
}

fn bound(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if e.ins.op1_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let size = e.size;
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let wrap = if e.addr32 { u32::MAX } else { 0xFFFF };
    let lo = cpu.read_mem(bus, seg, off, size)?;
    let hi = cpu.read_mem(bus, seg, off.wrapping_add(size as u32) & wrap, size)?;
    let idx = cpu.get_reg(e.ins.op0_register());
    let (lo, hi, idx) = if size == 2 {
        (
            lo as u16 as i16 as i32,
            hi as u16 as i16 as i32,
            idx as u16 as i16 as i32,
        )
    } else {
        (lo as i32, hi as i32, idx as i32)
    };
    if idx < lo || idx > hi {
        return Err(Fault::BR);
    }
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    let ins = &e.ins;
    let near_rel = matches!(ins.op0_kind(), OpKind::NearBranch16 | OpKind::NearBranch32);
    let far_direct = matches!(ins.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32);
    Some(match ins.mnemonic() {
        Mnemonic::Jmp if near_rel => jmp_rel,
        Mnemonic::Jmp if far_direct || is_far_mem(e).is_some() => jmp_far,
        Mnemonic::Jmp => jmp_indirect,
        Mnemonic::Call if far_direct || is_far_mem(e).is_some() => call_far,
        Mnemonic::Call => call_near,
        Mnemonic::Ret => ret_near,
        Mnemonic::Retf => ret_far,
        Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne => loop_,
        Mnemonic::Jcxz | Mnemonic::Jecxz => jcxz,
        Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Int1 | Mnemonic::Into => int_n,
        Mnemonic::Iret | Mnemonic::Iretd => iret,
        Mnemonic::Bound => bound,
        _ if ins.condition_code() != iced_x86::ConditionCode::None && near_rel => {
            jcc_handler((ins.condition_code() as u8).wrapping_sub(1))
        }
        _ => return None,
    })
}
