//! Data movement: MOV MOVZX MOVSX XCHG LEA LDS/LES/LFS/LGS/LSS XLAT CBW/CWDE
//! CWD/CDQ LAHF SAHF BSWAP CMOVcc SETcc XADD CMPXCHG CMPXCHG8B.

use iced_x86::{Code, Mnemonic, OpKind, Register};

use super::operand::{op_size, reg_size};
use super::Handler;
use crate::decode::Entry;
use crate::flags::{self, LazyOp};
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::{gpr, SegReg};
use crate::Bus;

fn is_sreg(r: Register) -> bool {
    (Register::ES as u32..=Register::GS as u32).contains(&(r as u32))
}

fn mov_rr<const SIZE: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.gpr::<SIZE>(e.r1);
    cpu.set_gpr::<SIZE>(e.r0, v);
    Ok(())
}

fn mov_r_imm<const SIZE: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    cpu.set_gpr::<SIZE>(e.r0, e.imm);
    Ok(())
}

/// MOV r, m at a fixed size: the commonest memory instruction in compiled code.
fn mov_r_m<const SIZE: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let (s, off) = (cpu.mem_seg(e), cpu.ea(e));
    let v = cpu.read_mem(bus, s, off, SIZE)?;
    cpu.set_gpr::<SIZE>(e.r0, v);
    Ok(())
}

/// MOV m, r at a fixed size.
fn mov_m_r<const SIZE: u8>(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let (s, off) = (cpu.mem_seg(e), cpu.ea(e));
    let v = cpu.gpr::<SIZE>(e.r1);
    cpu.write_mem(bus, s, off, SIZE, v)
}

fn mov_generic(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.read_op(bus, e, 1, e.size)?;
    cpu.write_op(bus, e, 0, e.size, v)
}

/// MOV Sreg, r/m16 (SDM Vol. 2B MOV). Loading SS inhibits interrupts and
/// debug traps until after the next instruction; CS is not a valid target.
fn mov_to_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let s = SegReg::from_iced(e.ins.op0_register());
    if s == SegReg::Cs {
        return Err(Fault::UD);
    }
    let v = cpu.read_op(bus, e, 1, 2)? as u16;
    cpu.load_seg(bus, s, v)?;
    if s == SegReg::Ss {
        cpu.ss_loaded();
    }
    Ok(())
}

/// MOV r/m, Sreg: a 32-bit register destination gets the selector
/// zero-extended (P6 and later); a memory destination is always 16 bits.
fn mov_from_sreg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.get_reg(e.ins.op1_register());
    if e.ins.op0_kind() == OpKind::Register {
        cpu.set_reg(e.ins.op0_register(), v);
        Ok(())
    } else {
        cpu.write_op(bus, e, 0, 2, v)
    }
}

fn movzx(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let src = op_size(&e.ins, 1).unwrap_or(1);
    let v = cpu.read_op(bus, e, 1, src)?;
    cpu.set_reg(e.ins.op0_register(), v);
    Ok(())
}

fn movsx(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let src = op_size(&e.ins, 1).unwrap_or(1);
    let v = cpu.read_op(bus, e, 1, src)?;
    let v = if src == 1 {
        v as u8 as i8 as i32 as u32
    } else {
        v as u16 as i16 as i32 as u32
    };
    cpu.set_reg(e.ins.op0_register(), v);
    Ok(())
}

/// MOVZX/MOVSX with the source and destination sizes fixed at decode time
/// (`MEM`: the source is memory, else the register in `r1`); the same as
/// [`movzx`]/[`movsx`].
fn movx<const SIGNED: bool, const MEM: bool, const SRC: u8, const DST: u8>(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let v = if MEM {
        let (s, off) = (cpu.mem_seg(e), cpu.ea(e));
        cpu.read_mem(bus, s, off, SRC)?
    } else {
        cpu.gpr::<SRC>(e.r1)
    };
    let v = match (SIGNED, SRC) {
        (false, _) => v,
        (true, 1) => v as u8 as i8 as i32 as u32,
        (true, _) => v as u16 as i16 as i32 as u32,
    };
    cpu.set_gpr::<DST>(e.r0, v);
    Ok(())
}

fn select_movx<const SIGNED: bool>(e: &Entry) -> Option<Handler> {
    let ins = &e.ins;
    if ins.op_count() != 2 || e.r0 == 0xFF || !matches!(e.size, 2 | 4) {
        return None;
    }
    let mem = match ins.op1_kind() {
        OpKind::Memory => true,
        OpKind::Register if e.r1 != 0xFF => false,
        _ => return None,
    };
    let src = op_size(ins, 1)?;
    macro_rules! pick {
        ($mem:expr) => {
            match (src, e.size) {
                (1, 2) => movx::<SIGNED, { $mem }, 1, 2> as Handler,
                (1, 4) => movx::<SIGNED, { $mem }, 1, 4>,
                (2, 2) => movx::<SIGNED, { $mem }, 2, 2>,
                (2, 4) => movx::<SIGNED, { $mem }, 2, 4>,
                _ => return None,
            }
        };
    }
    Some(if mem { pick!(true) } else { pick!(false) })
}

fn xchg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let l0 = cpu.loc(e, 0);
    let l1 = cpu.loc(e, 1);
    let a = cpu.read_loc(bus, l0, e.size)?;
    let b = cpu.read_loc(bus, l1, e.size)?;
    // Write the memory side first so a fault leaves registers untouched.
    if matches!(l0, super::operand::Loc::Mem(..)) {
        cpu.write_loc(bus, l0, e.size, b)?;
        cpu.write_loc(bus, l1, e.size, a)
    } else {
        cpu.write_loc(bus, l1, e.size, a)?;
        cpu.write_loc(bus, l0, e.size, b)
    }
}

fn lea(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    // LEA computes with the address size, then truncates to the operand size.
    let mut a = e.ins.memory_displacement32();
    let b = e.ins.memory_base();
    if b != Register::None {
        a = a.wrapping_add(cpu.get_reg(b));
    }
    let i = e.ins.memory_index();
    if i != Register::None {
        a = a.wrapping_add(cpu.get_reg(i).wrapping_mul(e.ins.memory_index_scale()));
    }
    if !e.addr32 {
        a &= 0xFFFF;
    }
    cpu.set_reg(e.ins.op0_register(), a);
    Ok(())
}

/// LEA into a general register of a size fixed at decode time: the
/// effective address as [`Cpu::ea`] computes it (address size), truncated
/// to the operand size.
fn lea_r<const SIZE: u8>(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let a = cpu.ea(e);
    cpu.set_gpr::<SIZE>(e.r0, a);
    Ok(())
}

/// LDS/LES/LFS/LGS/LSS r, m16:16 or m16:32.
fn load_far_pointer(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let s = match e.ins.mnemonic() {
        Mnemonic::Lds => SegReg::Ds,
        Mnemonic::Les => SegReg::Es,
        Mnemonic::Lfs => SegReg::Fs,
        Mnemonic::Lgs => SegReg::Gs,
        _ => SegReg::Ss,
    };
    if e.ins.op1_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let size = e.size;
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let ptr = cpu.read_mem(bus, seg, off, size)?;
    let wrap = if e.addr32 { u32::MAX } else { 0xFFFF };
    let sel = cpu.read_mem(bus, seg, off.wrapping_add(size as u32) & wrap, 2)? as u16;
    cpu.load_seg(bus, s, sel)?;
    cpu.set_reg(e.ins.op0_register(), ptr);
    if s == SegReg::Ss {
        cpu.inhibit_at = cpu.instructions + 1;
    }
    Ok(())
}

fn xlat(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let al = cpu.regs[gpr::EAX] & 0xFF;
    let base = if e.addr32 {
        cpu.regs[gpr::EBX]
    } else {
        cpu.regs[gpr::EBX] & 0xFFFF
    };
    let off = if e.addr32 {
        base.wrapping_add(al)
    } else {
        base.wrapping_add(al) & 0xFFFF
    };
    let v = cpu.read_mem(bus, cpu.mem_seg(e), off, 1)?;
    cpu.set_reg(Register::AL, v);
    Ok(())
}

fn convert(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let eax = cpu.regs[gpr::EAX];
    match e.ins.code() {
        Code::Cbw => cpu.set_reg(Register::AX, eax as u8 as i8 as i16 as u16 as u32),
        Code::Cwde => cpu.regs[gpr::EAX] = eax as u16 as i16 as i32 as u32,
        Code::Cwd => cpu.set_reg(Register::DX, if eax & 0x8000 != 0 { 0xFFFF } else { 0 }),
        _ => cpu.regs[gpr::EDX] = if eax & 0x8000_0000 != 0 { u32::MAX } else { 0 },
    }
    Ok(())
}

fn lahf(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let f = cpu.flags.get() & 0xFF;
    cpu.set_reg(Register::AH, f);
    Ok(())
}

fn sahf(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let ah = cpu.get_reg(Register::AH);
    let mask = flags::SF | flags::ZF | flags::AF | flags::PF | flags::CF;
    cpu.flags.set_masked(ah, mask);
    Ok(())
}

fn bswap(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let r = e.ins.op0_register();
    let v = cpu.get_reg(r);
    if reg_size(r) == 2 {
        // BSWAP r16 is undefined; P6-family parts clear the register.
        cpu.set_reg(r, 0);
    } else {
        cpu.set_reg(r, v.swap_bytes());
    }
    Ok(())
}

fn cc_of(e: &Entry) -> u8 {
    (e.ins.condition_code() as u8).wrapping_sub(1)
}

fn setcc(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.flags.condition(cc_of(e)) as u32;
    cpu.write_op(bus, e, 0, 1, v)
}

/// CMOVcc reads its source even when the condition is false (so a bad
/// memory operand faults either way).
fn cmov(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.read_op(bus, e, 1, e.size)?;
    if cpu.flags.condition(cc_of(e)) {
        cpu.set_reg(e.ins.op0_register(), v);
    }
    Ok(())
}

fn xadd(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let dst = cpu.loc(e, 0);
    let src = e.ins.op1_register();
    let a = cpu.read_loc(bus, dst, e.size)?;
    let b = cpu.get_reg(src);
    let r = a.wrapping_add(b);
    cpu.write_loc(bus, dst, e.size, r)?;
    cpu.set_reg(src, a);
    if let super::operand::Loc::Reg(d) = dst {
        // Same register on both sides: the sum wins.
        cpu.set_reg(d, r);
    }
    cpu.flags.set_lazy(LazyOp::Add, e.size, r, a, b, 0);
    Ok(())
}

fn cmpxchg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let dst = cpu.loc(e, 0);
    let size = e.size;
    let acc = match size {
        1 => Register::AL,
        2 => Register::AX,
        _ => Register::EAX,
    };
    let d = cpu.read_loc(bus, dst, size)?;
    let a = cpu.get_reg(acc);
    cpu.alu(super::alu::AluOp::Cmp, size, a, d);
    if (a ^ d) & crate::flags::size_mask(size).0 == 0 {
        let src = cpu.get_reg(e.ins.op1_register());
        cpu.write_loc(bus, dst, size, src)?;
    } else {
        // The destination is written back unchanged (a locked RMW cycle).
        cpu.write_loc(bus, dst, size, d)?;
        cpu.set_reg(acc, d);
    }
    Ok(())
}

fn cmpxchg8b(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if e.ins.op0_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let wrap = if e.addr32 { u32::MAX } else { 0xFFFF };
    let lo = cpu.read_mem(bus, seg, off, 4)?;
    let hi = cpu.read_mem(bus, seg, off.wrapping_add(4) & wrap, 4)?;
    let (eax, edx) = (cpu.regs[gpr::EAX], cpu.regs[gpr::EDX]);
    let eq = lo == eax && hi == edx;
    let (wlo, whi) = if eq {
        (cpu.regs[gpr::EBX], cpu.regs[gpr::ECX])
    } else {
        (lo, hi)
    };
    cpu.write_mem(bus, seg, off, 4, wlo)?;
    cpu.write_mem(bus, seg, off.wrapping_add(4) & wrap, 4, whi)?;
    if !eq {
        cpu.regs[gpr::EAX] = lo;
        cpu.regs[gpr::EDX] = hi;
    }
    let f = cpu.flags.get();
    cpu.flags
        .set(if eq { f | flags::ZF } else { f & !flags::ZF });
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    let ins = &e.ins;
    Some(match ins.mnemonic() {
        Mnemonic::Mov => {
            let k0 = ins.op0_kind();
            let k1 = ins.op1_kind();
            if k0 == OpKind::Register && is_sreg(ins.op0_register()) {
                mov_to_sreg
            } else if k1 == OpKind::Register && is_sreg(ins.op1_register()) {
                mov_from_sreg
            } else if k0 == OpKind::Register && k1 == OpKind::Register {
                let r0 = ins.op0_register() as u32;
                let r1 = ins.op1_register() as u32;
                let gp = |r: u32| (Register::AL as u32..=Register::EDI as u32).contains(&r);
                if gp(r0) && gp(r1) && e.r0 != 0xFF && e.r1 != 0xFF {
                    match e.size {
                        1 => mov_rr::<1>,
                        2 => mov_rr::<2>,
                        _ => mov_rr::<4>,
                    }
                } else {
                    return None; // CRn / DRn / TRn: system.rs
                }
            } else if e.r0 != 0xFF
                && matches!(
                    k1,
                    OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32
                )
            {
                match e.size {
                    1 => mov_r_imm::<1>,
                    2 => mov_r_imm::<2>,
                    _ => mov_r_imm::<4>,
                }
            } else if e.r0 != 0xFF && k1 == OpKind::Memory {
                match e.size {
                    1 => mov_r_m::<1>,
                    2 => mov_r_m::<2>,
                    _ => mov_r_m::<4>,
                }
            } else if k0 == OpKind::Memory && e.r1 != 0xFF {
                match e.size {
                    1 => mov_m_r::<1>,
                    2 => mov_m_r::<2>,
                    _ => mov_m_r::<4>,
                }
            } else {
                mov_generic
            }
        }
        Mnemonic::Movzx => select_movx::<false>(e).unwrap_or(movzx),
        Mnemonic::Movsx => select_movx::<true>(e).unwrap_or(movsx),
        Mnemonic::Xchg => xchg,
        Mnemonic::Lea => {
            if ins.op1_kind() != OpKind::Memory {
                return Some(super::undefined);
            }
            match (e.r0, e.size) {
                (0xFF, _) => lea,
                (_, 2) => lea_r::<2>,
                (_, 4) => lea_r::<4>,
                _ => lea,
            }
        }
        Mnemonic::Lds | Mnemonic::Les | Mnemonic::Lfs | Mnemonic::Lgs | Mnemonic::Lss => {
            load_far_pointer
        }
        Mnemonic::Xlatb => xlat,
        Mnemonic::Cbw | Mnemonic::Cwde | Mnemonic::Cwd | Mnemonic::Cdq => convert,
        Mnemonic::Lahf => lahf,
        Mnemonic::Sahf => sahf,
        Mnemonic::Bswap => bswap,
        Mnemonic::Xadd => xadd,
        Mnemonic::Cmpxchg => cmpxchg,
        Mnemonic::Cmpxchg8b => cmpxchg8b,
        m if is_setcc(m) => setcc,
        m if is_cmov(m) => cmov,
        _ => return None,
    })
}

fn is_setcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
    )
}

fn is_cmov(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}
