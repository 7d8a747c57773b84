//! Operand access shared by every instruction group: effective addresses,
//! register/memory/immediate operands.

use iced_x86::{OpKind, Register};

use crate::decode::{Entry, EA_SLOW};
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::SegReg;
use crate::Bus;

/// Where an r/m operand lives, resolved once for read-modify-write.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Loc {
    Reg(Register),
    Mem(SegReg, u32),
}

impl Cpu {
    /// Effective address (offset within the segment) of the memory operand,
    /// wrapped to the address size, from the registers decoded once into
    /// the entry.
    #[inline(always)]
    pub(crate) fn ea(&self, e: &Entry) -> u32 {
        let mut a = e.ins.memory_displacement32();
        if e.mbase < 8 {
            a = a.wrapping_add(self.regs[(e.mbase & 7) as usize]);
        } else if e.mbase == EA_SLOW {
            return self.ea_slow(e);
        }
        if e.mindex < 8 {
            a = a.wrapping_add(self.regs[(e.mindex & 7) as usize] << e.mscale);
        }
        let r = if e.addr32 { a } else { a & 0xFFFF };
        debug_assert_eq!(r, self.ea_slow(e));
        r
    }

    /// [`Cpu::ea`] from iced's operand description.
    #[cold]
    fn ea_slow(&self, e: &Entry) -> u32 {
        let ins = &e.ins;
        let mut a = ins.memory_displacement32();
        let b = ins.memory_base();
        if b != Register::None {
            a = a.wrapping_add(self.get_reg(b));
        }
        let i = ins.memory_index();
        if i != Register::None {
            a = a.wrapping_add(self.get_reg(i).wrapping_mul(ins.memory_index_scale()));
        }
        if e.addr32 {
            a
        } else {
            a & 0xFFFF
        }
    }

    /// The segment of the memory operand (override or the default).
    #[inline(always)]
    pub(crate) fn mem_seg(&self, e: &Entry) -> SegReg {
        e.mseg
    }

    /// Resolve operand `n` (register or memory) to a location.
    #[inline(always)]
    pub(crate) fn loc(&self, e: &Entry, n: u32) -> Loc {
        match e.ins.op_kind(n) {
            OpKind::Register => Loc::Reg(e.ins.op_register(n)),
            _ => Loc::Mem(self.mem_seg(e), self.ea(e)),
        }
    }

    #[inline(always)]
    pub(crate) fn read_loc(&mut self, bus: &mut dyn Bus, l: Loc, size: u8) -> Result<u32, Fault> {
        match l {
            Loc::Reg(r) => Ok(self.get_reg(r)),
            Loc::Mem(s, off) => self.read_mem(bus, s, off, size),
        }
    }

    #[inline(always)]
    pub(crate) fn write_loc(
        &mut self,
        bus: &mut dyn Bus,
        l: Loc,
        size: u8,
        v: u32,
    ) -> Result<(), Fault> {
        match l {
            Loc::Reg(r) => {
                self.set_reg(r, v);
                Ok(())
            }
            Loc::Mem(s, off) => self.write_mem(bus, s, off, size, v),
        }
    }

    /// Read operand `n` as a value of `size` bytes (immediates are
    /// sign-extended as the encoding says and truncated to `size`).
    #[inline(always)]
    pub(crate) fn read_op(
        &mut self,
        bus: &mut dyn Bus,
        e: &Entry,
        n: u32,
        size: u8,
    ) -> Result<u32, Fault> {
        let ins = &e.ins;
        match ins.op_kind(n) {
            OpKind::Register => Ok(self.get_reg(ins.op_register(n))),
            OpKind::Memory => {
                let (s, off) = (self.mem_seg(e), self.ea(e));
                self.read_mem(bus, s, off, size)
            }
            OpKind::Immediate8 => Ok(ins.immediate8() as u32),
            OpKind::Immediate8_2nd => Ok(ins.immediate8_2nd() as u32),
            OpKind::Immediate16 => Ok(ins.immediate16() as u32),
            OpKind::Immediate32 => Ok(ins.immediate32()),
            OpKind::Immediate8to16 => Ok(ins.immediate8to16() as u16 as u32),
            OpKind::Immediate8to32 => Ok(ins.immediate8to32() as u32),
            _ => Ok(0),
        }
    }

    /// Write operand `n` (register or memory).
    #[inline(always)]
    pub(crate) fn write_op(
        &mut self,
        bus: &mut dyn Bus,
        e: &Entry,
        n: u32,
        size: u8,
        v: u32,
    ) -> Result<(), Fault> {
        let l = self.loc(e, n);
        self.write_loc(bus, l, size, v)
    }
}

/// Size in bytes of a general-purpose or segment register.
pub(crate) fn reg_size(r: Register) -> u8 {
    let n = r as u32;
    if (Register::AL as u32..=Register::R15L as u32).contains(&n) {
        1
    } else if (Register::AX as u32..=Register::R15W as u32).contains(&n)
        || (Register::ES as u32..=Register::GS as u32).contains(&n)
    {
        2
    } else {
        4
    }
}

/// Size in bytes of operand `n` of `ins`, or `None` when it has no size of its own.
pub(crate) fn op_size(ins: &iced_x86::Instruction, n: u32) -> Option<u8> {
    if n >= ins.op_count() {
        return None;
    }
    Some(match ins.op_kind(n) {
        OpKind::Register => reg_size(ins.op_register(n)),
        OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        OpKind::NearBranch16 | OpKind::FarBranch16 => 2,
        OpKind::NearBranch32 | OpKind::FarBranch32 => 4,
        _ => {
            let s = ins.memory_size().size();
            if s == 0 {
                return None;
            }
            s.min(4) as u8
        }
    })
}

/// A general register as a slot: bits 0–2 the register number, bit 3 set for
/// AH/CH/DH/BH. `None` for anything else (segment, control registers…).
pub(crate) fn gpr_slot(r: Register) -> Option<u8> {
    let n = r as u32;
    let rel = |base: Register| n.wrapping_sub(base as u32);
    if rel(Register::EAX) < 8 {
        Some(rel(Register::EAX) as u8)
    } else if rel(Register::AX) < 8 {
        Some(rel(Register::AX) as u8)
    } else if rel(Register::AL) < 4 {
        Some(rel(Register::AL) as u8)
    } else if rel(Register::AH) < 4 {
        Some(rel(Register::AH) as u8 | 8)
    } else {
        None
    }
}

impl Cpu {
    /// Read a general register by slot at a size known at compile time.
    #[inline(always)]
    pub(crate) fn gpr<const SIZE: u8>(&self, slot: u8) -> u32 {
        match SIZE {
            4 => self.regs[(slot & 7) as usize],
            2 => self.regs[(slot & 7) as usize] & 0xFFFF,
            _ => (self.regs[(slot & 3) as usize] >> ((slot & 8) as u32)) & 0xFF,
        }
    }

    /// Write a general register by slot; 8/16-bit writes keep the other bits.
    #[inline(always)]
    pub(crate) fn set_gpr<const SIZE: u8>(&mut self, slot: u8, v: u32) {
        match SIZE {
            4 => self.regs[(slot & 7) as usize] = v,
            2 => {
                let x = &mut self.regs[(slot & 7) as usize];
                *x = (*x & 0xFFFF_0000) | (v & 0xFFFF);
            }
            _ => {
                let shift = (slot & 8) as u32;
                let x = &mut self.regs[(slot & 3) as usize];
                *x = (*x & !(0xFF << shift)) | ((v & 0xFF) << shift);
            }
        }
    }
}
