//! Integer arithmetic and logic: ADD ADC SUB SBB CMP AND OR XOR TEST INC DEC NEG NOT.

use iced_x86::{Mnemonic, OpKind};

use super::Handler;
use crate::decode::Entry;
use crate::flags::LazyOp;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::Bus;

/// Binary ALU operation codes (the /r field of opcodes 80–83).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum AluOp {
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
    Test,
}

impl Cpu {
    /// Compute `a op b` at `size`, set the lazy flags, return the result.
    #[inline(always)]
    pub(crate) fn alu(&mut self, op: AluOp, size: u8, a: u32, b: u32) -> u32 {
        match op {
            AluOp::Add => {
                let r = a.wrapping_add(b);
                self.flags.set_lazy(LazyOp::Add, size, r, a, b, 0);
                r
            }
            AluOp::Adc => {
                let c = self.flags.cf() as u32;
                let r = a.wrapping_add(b).wrapping_add(c);
                self.flags.set_lazy(LazyOp::Add, size, r, a, b, c);
                r
            }
            AluOp::Sub | AluOp::Cmp => {
                let r = a.wrapping_sub(b);
                self.flags.set_lazy(LazyOp::Sub, size, r, a, b, 0);
                r
            }
            AluOp::Sbb => {
                let c = self.flags.cf() as u32;
                let r = a.wrapping_sub(b).wrapping_sub(c);
                self.flags.set_lazy(LazyOp::Sub, size, r, a, b, c);
                r
            }
            AluOp::And | AluOp::Test => {
                let r = a & b;
                self.flags.set_lazy(LazyOp::Logic, size, r, a, b, 0);
                r
            }
            AluOp::Or => {
                let r = a | b;
                self.flags.set_lazy(LazyOp::Logic, size, r, a, b, 0);
                r
            }
            AluOp::Xor => {
                let r = a ^ b;
                self.flags.set_lazy(LazyOp::Logic, size, r, a, b, 0);
                r
            }
        }
    }
}

fn alu_generic<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let op = op_from(OP);
    let size = e.size;
    let dst = cpu.loc(e, 0);
    let b = cpu.read_op(bus, e, 1, size)?;
    let a = cpu.read_loc(bus, dst, size)?;
    let r = cpu.alu(op, size, a, b);
    if !matches!(op, AluOp::Cmp | AluOp::Test) {
        cpu.write_loc(bus, dst, size, r)?;
    }
    Ok(())
}

/// Register–register and register–immediate forms: no memory, no Loc.
fn alu_reg<const OP: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let op = op_from(OP);
    let size = e.size;
    let r0 = e.ins.op0_register();
    let b = cpu.read_op(bus, e, 1, size)?;
    let a = cpu.get_reg(r0);
    let r = cpu.alu(op, size, a, b);
    if !matches!(op, AluOp::Cmp | AluOp::Test) {
        cpu.set_reg(r0, r);
    }
    Ok(())
}

/// Register, register at a size fixed at decode time: no operand-kind
/// dispatch, no register-name decoding (the hottest form in real code).
fn alu_rr<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    _: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let a = cpu.gpr::<SIZE>(e.r0);
    let b = cpu.gpr::<SIZE>(e.r1);
    let r = cpu.alu(op_from(OP), SIZE, a, b);
    if OP != 7 && OP != 8 {
        cpu.set_gpr::<SIZE>(e.r0, r);
    }
    Ok(())
}

/// Register, immediate (the immediate pre-extended in the entry).
fn alu_ri<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    _: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let a = cpu.gpr::<SIZE>(e.r0);
    let r = cpu.alu(op_from(OP), SIZE, a, e.imm);
    if OP != 7 && OP != 8 {
        cpu.set_gpr::<SIZE>(e.r0, r);
    }
    Ok(())
}

/// Register, memory at a fixed size: as [`alu_generic`] (memory read
/// first), with the operand kinds fixed at decode time.
fn alu_rm<const OP: u8, const SIZE: u8>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let (s, off) = (cpu.mem_seg(e), cpu.ea(e));
    let b = cpu.read_mem(bus, s, off, SIZE)?;
    let a = cpu.gpr::<SIZE>(e.r0);
    let r = cpu.alu(op_from(OP), SIZE, a, b);
    if OP != 7 && OP != 8 {
        cpu.set_gpr::<SIZE>(e.r0, r);
    }
    Ok(())
}

/// Memory, register (`IMM` false) or memory, immediate (`IMM` true) at a
/// fixed size: as [`alu_generic`].
fn alu_m<const OP: u8, const SIZE: u8, const IMM: bool>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let (s, off) = (cpu.mem_seg(e), cpu.ea(e));
    let b = if IMM { e.imm } else { cpu.gpr::<SIZE>(e.r1) };
    let a = cpu.read_mem(bus, s, off, SIZE)?;
    let r = cpu.alu(op_from(OP), SIZE, a, b);
    if OP != 7 && OP != 8 {
        cpu.write_mem(bus, s, off, SIZE, r)?;
    }
    Ok(())
}

fn inc_r<const SIZE: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let a = cpu.gpr::<SIZE>(e.r0);
    let r = a.wrapping_add(1);
    cpu.set_gpr::<SIZE>(e.r0, r);
    cpu.flags.set_lazy(LazyOp::Inc, SIZE, r, a, 1, 0);
    Ok(())
}

fn dec_r<const SIZE: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let a = cpu.gpr::<SIZE>(e.r0);
    let r = a.wrapping_sub(1);
    cpu.set_gpr::<SIZE>(e.r0, r);
    cpu.flags.set_lazy(LazyOp::Dec, SIZE, r, a, 1, 0);
    Ok(())
}

const fn op_from(n: u8) -> AluOp {
    match n {
        0 => AluOp::Add,
        1 => AluOp::Or,
        2 => AluOp::Adc,
        3 => AluOp::Sbb,
        4 => AluOp::And,
        5 => AluOp::Sub,
        6 => AluOp::Xor,
        7 => AluOp::Cmp,
        _ => AluOp::Test,
    }
}

fn inc(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let l = cpu.loc(e, 0);
    let a = cpu.read_loc(bus, l, e.size)?;
    let r = a.wrapping_add(1);
    cpu.write_loc(bus, l, e.size, r)?;
    cpu.flags.set_lazy(LazyOp::Inc, e.size, r, a, 1, 0);
    Ok(())
}

fn dec(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let l = cpu.loc(e, 0);
    let a = cpu.read_loc(bus, l, e.size)?;
    let r = a.wrapping_sub(1);
    cpu.write_loc(bus, l, e.size, r)?;
    cpu.flags.set_lazy(LazyOp::Dec, e.size, r, a, 1, 0);
    Ok(())
}

fn neg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let l = cpu.loc(e, 0);
    let a = cpu.read_loc(bus, l, e.size)?;
    let r = 0u32.wrapping_sub(a);
    cpu.write_loc(bus, l, e.size, r)?;
    cpu.flags.set_lazy(LazyOp::Sub, e.size, r, 0, a, 0);
    Ok(())
}

fn not(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let l = cpu.loc(e, 0);
    let a = cpu.read_loc(bus, l, e.size)?;
    cpu.write_loc(bus, l, e.size, !a)
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    let ins = &e.ins;
    let reg_form = ins.op0_kind() == OpKind::Register && ins.op1_kind() != OpKind::Memory;
    let imm1 = ins.op_count() > 1
        && matches!(
            ins.op1_kind(),
            OpKind::Immediate8
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
        );
    let rr = e.r0 != 0xFF && e.r1 != 0xFF;
    let ri = e.r0 != 0xFF && imm1;
    let two = ins.op_count() == 2;
    let rm = two && e.r0 != 0xFF && ins.op1_kind() == OpKind::Memory;
    let m0 = two && ins.op0_kind() == OpKind::Memory && matches!(e.size, 1 | 2 | 4);
    let mr = m0 && e.r1 != 0xFF;
    let mi = m0 && imm1;
    macro_rules! sized {
        ($f:ident, $($op:literal)?) => {
            match e.size {
                1 => $f::<$($op,)? 1> as Handler,
                2 => $f::<$($op,)? 2> as Handler,
                _ => $f::<$($op,)? 4> as Handler,
            }
        };
    }
    macro_rules! pick {
        ($n:literal) => {
            if rr {
                sized!(alu_rr, $n)
            } else if ri {
                sized!(alu_ri, $n)
            } else if reg_form {
                alu_reg::<$n> as Handler
            } else if rm {
                sized!(alu_rm, $n)
            } else if mr {
                match e.size {
                    1 => alu_m::<$n, 1, false> as Handler,
                    2 => alu_m::<$n, 2, false>,
                    _ => alu_m::<$n, 4, false>,
                }
            } else if mi {
                match e.size {
                    1 => alu_m::<$n, 1, true> as Handler,
                    2 => alu_m::<$n, 2, true>,
                    _ => alu_m::<$n, 4, true>,
                }
            } else {
                alu_generic::<$n> as Handler
            }
        };
    }
    Some(match ins.mnemonic() {
        Mnemonic::Add => pick!(0),
        Mnemonic::Or => pick!(1),
        Mnemonic::Adc => pick!(2),
        Mnemonic::Sbb => pick!(3),
        Mnemonic::And => pick!(4),
        Mnemonic::Sub => pick!(5),
        Mnemonic::Xor => pick!(6),
        Mnemonic::Cmp => pick!(7),
        Mnemonic::Test => pick!(8),
        Mnemonic::Inc if e.r0 != 0xFF => sized!(inc_r,),
        Mnemonic::Dec if e.r0 != 0xFF => sized!(dec_r,),
        Mnemonic::Inc => inc,
        Mnemonic::Dec => dec,
        Mnemonic::Neg => neg,
        Mnemonic::Not => not,
        _ => return None,
    })
}
