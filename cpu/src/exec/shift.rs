//! Shifts and rotates: ROL ROR RCL RCR SHL/SAL SHR SAR SHLD SHRD.
//!
//! The count is masked to 5 bits (SDM Vol. 2B "SAL/SAR/SHL/SHR": the 8086
//! did not mask; every later part does). A masked count of zero changes no
//! flags. Flags the SDM calls undefined are given the values a P6 produces
//! where that is known and plain values otherwise; conformance tests mask them.

use iced_x86::{Mnemonic, OpKind};

use super::Handler;
use crate::decode::Entry;
use crate::flags::size_mask;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::Bus;

fn count_of(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry, n: u32) -> Result<u32, Fault> {
    Ok(match e.ins.op_kind(n) {
        OpKind::Immediate8 => e.ins.immediate8() as u32,
        OpKind::Register => cpu.get_reg(e.ins.op_register(n)),
        _ => cpu.read_op(bus, e, n, 1)?,
    } & 0x1F)
}

const ROL: u8 = 0;
const ROR: u8 = 1;
const RCL: u8 = 2;
const RCR: u8 = 3;
const SHL: u8 = 4;
const SHR: u8 = 5;
const SAR: u8 = 6;

fn op_of(m: Mnemonic) -> u8 {
    match m {
        Mnemonic::Rol => ROL,
        Mnemonic::Ror => ROR,
        Mnemonic::Rcl => RCL,
        Mnemonic::Rcr => RCR,
        Mnemonic::Shl | Mnemonic::Sal => SHL,
        Mnemonic::Shr => SHR,
        _ => SAR,
    }
}

/// Shift or rotate `v` (already masked to `size`) by a nonzero masked
/// count: (result, CF, OF, AF).
#[inline(always)]
fn compute(op: u8, size: u8, v: u32, cnt: u32, cf_in: bool) -> (u32, bool, bool, bool) {
    let bits = size as u32 * 8;
    let (mask, sign) = size_mask(size);
    let (r, cf, of);
    let mut af = false;
    match op {
        ROL => {
            let c = cnt % bits;
            r = if c == 0 {
                v
            } else {
                ((v << c) | (v >> (bits - c))) & mask
            };
            cf = r & 1 != 0;
            of = ((r & sign) != 0) != cf;
        }
        ROR => {
            let c = cnt % bits;
            r = if c == 0 {
                v
            } else {
                ((v >> c) | (v << (bits - c))) & mask
            };
            cf = r & sign != 0;
            of = ((r ^ (r << 1)) & sign) != 0;
        }
        RCL => {
            let c = cnt % (bits + 1);
            let wide = (v as u64) | ((cf_in as u64) << bits);
            let w = bits as u64 + 1;
            let rot = if c == 0 {
                wide
            } else {
                ((wide << c) | (wide >> (w as u32 - c))) & ((1u64 << w) - 1)
            };
            r = rot as u32 & mask;
            cf = (rot >> bits) & 1 != 0;
            of = ((r & sign) != 0) != cf;
        }
        RCR => {
            let c = cnt % (bits + 1);
            let wide = (v as u64) | ((cf_in as u64) << bits);
            let w = bits as u64 + 1;
            let rot = if c == 0 {
                wide
            } else {
                ((wide >> c) | (wide << (w as u32 - c))) & ((1u64 << w) - 1)
            };
            r = rot as u32 & mask;
            cf = (rot >> bits) & 1 != 0;
            of = ((r ^ (r << 1)) & sign) != 0;
        }
        SHL => {
            let wide = (v as u64) << cnt;
            r = wide as u32 & mask;
            cf = (wide >> bits) & 1 != 0;
            of = ((r & sign) != 0) != cf;
            af = cnt != 0 && r & 0x10 != 0;
        }
        SHR => {
            r = if cnt >= bits { 0 } else { v >> cnt };
            cf = cnt <= bits && (v >> (cnt - 1)) & 1 != 0;
            of = v & sign != 0;
        }
        _ => {
            // SAR
            let sv = ((v << (32 - bits)) as i32) >> (32 - bits);
            let c = cnt.min(bits);
            r = ((sv >> (c.min(31))) as u32) & mask;
            cf = ((sv >> (c - 1).min(31)) & 1) != 0;
            of = false;
        }
    }
    (r, cf, of, af)
}

/// Set the flags after a shift or rotate by a nonzero count.
#[inline(always)]
fn set_flags(cpu: &mut Cpu, op: u8, size: u8, r: u32, cf: bool, of: bool, af: bool) {
    if op <= RCR {
        // Rotates change only CF and OF.
        let f = cpu.flags.get();
        let f = (f & !(crate::flags::CF | crate::flags::OF)) | cf as u32 | (of as u32) << 11;
        cpu.flags.set(f);
    } else {
        cpu.flags.set_result_explicit(size, r, cf, of, af);
    }
}

fn shift(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let dst = cpu.loc(e, 0);
    let cnt = if e.ins.op_count() > 1 {
        count_of(cpu, bus, e, 1)?
    } else {
        1
    };
    let v = cpu.read_loc(bus, dst, size)?;
    if cnt == 0 {
        return Ok(());
    }
    let (mask, _) = size_mask(size);
    let op = op_of(e.ins.mnemonic());
    // Only RCL/RCR read CF (lazily evaluated: skip it for the others).
    let cf_in = (op == RCL || op == RCR) && cpu.flags.cf();
    let (r, cf, of, af) = compute(op, size, v & mask, cnt, cf_in);
    cpu.write_loc(bus, dst, size, r)?;
    set_flags(cpu, op, size, r, cf, of, af);
    Ok(())
}

/// Count forms of [`shift_r`].
const CNT_IMM: u8 = 0;
const CNT_CL: u8 = 1;
const CNT_ONE: u8 = 2;

/// A shift or rotate of a general register by an immediate, CL or 1: the
/// same as [`shift`] with the operand kinds fixed at decode time.
fn shift_r<const OP: u8, const SIZE: u8, const CNT: u8>(
    cpu: &mut Cpu,
    _: &mut dyn Bus,
    e: &Entry,
) -> Result<(), Fault> {
    let cnt = match CNT {
        CNT_IMM => e.imm & 0x1F,
        CNT_CL => cpu.regs[crate::regs::gpr::ECX] & 0x1F,
        _ => 1,
    };
    if cnt == 0 {
        return Ok(());
    }
    let v = cpu.gpr::<SIZE>(e.r0);
    let cf_in = (OP == RCL || OP == RCR) && cpu.flags.cf();
    let (r, cf, of, af) = compute(OP, SIZE, v, cnt, cf_in);
    cpu.set_gpr::<SIZE>(e.r0, r);
    set_flags(cpu, OP, SIZE, r, cf, of, af);
    Ok(())
}

fn select_shift_r(e: &Entry) -> Option<Handler> {
    if e.r0 == 0xFF {
        return None;
    }
    let cnt = if e.ins.op_count() == 1 {
        CNT_ONE
    } else {
        match e.ins.op1_kind() {
            OpKind::Immediate8 => CNT_IMM,
            OpKind::Register if e.ins.op1_register() == iced_x86::Register::CL => CNT_CL,
            _ => return None,
        }
    };
    macro_rules! by_count {
        ($op:expr, $size:expr) => {
            match cnt {
                CNT_IMM => shift_r::<{ $op }, { $size }, CNT_IMM> as Handler,
                CNT_CL => shift_r::<{ $op }, { $size }, CNT_CL>,
                _ => shift_r::<{ $op }, { $size }, CNT_ONE>,
            }
        };
    }
    macro_rules! by_size {
        ($op:expr) => {
            match e.size {
                1 => by_count!($op, 1),
                2 => by_count!($op, 2),
                4 => by_count!($op, 4),
                _ => return None,
            }
        };
    }
    Some(match op_of(e.ins.mnemonic()) {
        ROL => by_size!(ROL),
        ROR => by_size!(ROR),
        RCL => by_size!(RCL),
        RCR => by_size!(RCR),
        SHL => by_size!(SHL),
        SHR => by_size!(SHR),
        _ => by_size!(SAR),
    })
}

/// SHLD/SHRD r/m, r, imm8/CL (SDM Vol. 2B). With a count above the operand
/// size (16-bit forms) the result is undefined; we shift through the 32-bit
/// concatenation as P6 parts are observed to.
fn double_shift(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let dst = cpu.loc(e, 0);
    let src = cpu.get_reg(e.ins.op1_register());
    let cnt = count_of(cpu, bus, e, 2)?;
    let v = cpu.read_loc(bus, dst, size)?;
    if cnt == 0 {
        return Ok(());
    }
    let bits = size as u32 * 8;
    let (mask, sign) = size_mask(size);
    let left = e.ins.mnemonic() == Mnemonic::Shld;
    let (r, cf) = if size == 4 {
        if left {
            let w = ((v as u64) << 32) | src as u64;
            (((w << cnt) >> 32) as u32, (w >> (64 - cnt)) & 1 != 0)
        } else {
            let w = ((src as u64) << 32) | v as u64;
            ((w >> cnt) as u32, (w >> (cnt - 1)) & 1 != 0)
        }
    } else {
        // 16-bit: the pattern dst:src:dst repeats for counts above 16.
        let d = v & 0xFFFF;
        let s = src & 0xFFFF;
        if left {
            let w: u64 = ((d as u64) << 32) | ((s as u64) << 16) | d as u64;
            let sh = w << cnt;
            (((sh >> 32) & 0xFFFF) as u32, (sh >> 48) & 1 != 0)
        } else {
            let w: u64 = ((d as u64) << 32) | ((s as u64) << 16) | d as u64;
            let sh = w >> cnt;
            ((sh & 0xFFFF) as u32, (w >> (cnt - 1)) & 1 != 0)
        }
    };
    let r = r & mask;
    let _ = bits;
    let of = ((r ^ v) & sign) != 0;
    cpu.write_loc(bus, dst, size, r)?;
    cpu.flags.set_result_explicit(size, r, cf, of, false);
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    Some(match e.ins.mnemonic() {
        Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Rcl
        | Mnemonic::Rcr
        | Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar => select_shift_r(e).unwrap_or(shift),
        Mnemonic::Shld | Mnemonic::Shrd => double_shift,
        _ => return None,
    })
}
