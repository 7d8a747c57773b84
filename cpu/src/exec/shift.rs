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
    let bits = size as u32 * 8;
    let (mask, sign) = size_mask(size);
    let v = v & mask;
    let cf_in = cpu.flags.cf();
    let (r, cf, of);
    let mut af = false;
    match e.ins.mnemonic() {
        Mnemonic::Rol => {
            let c = cnt % bits;
            r = if c == 0 {
                v
            } else {
                ((v << c) | (v >> (bits - c))) & mask
            };
            cf = r & 1 != 0;
            of = ((r & sign) != 0) != cf;
        }
        Mnemonic::Ror => {
            let c = cnt % bits;
            r = if c == 0 {
                v
            } else {
                ((v >> c) | (v << (bits - c))) & mask
            };
            cf = r & sign != 0;
            of = ((r ^ (r << 1)) & sign) != 0;
        }
        Mnemonic::Rcl => {
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
        Mnemonic::Rcr => {
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
        Mnemonic::Shl | Mnemonic::Sal => {
            let wide = (v as u64) << cnt;
            r = wide as u32 & mask;
            cf = (wide >> bits) & 1 != 0;
            of = ((r & sign) != 0) != cf;
            af = cnt != 0 && r & 0x10 != 0;
        }
        Mnemonic::Shr => {
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
    cpu.write_loc(bus, dst, size, r)?;
    let rot = matches!(
        e.ins.mnemonic(),
        Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr
    );
    if rot {
        // Rotates change only CF and OF.
        let f = cpu.flags.get();
        let f = (f & !(crate::flags::CF | crate::flags::OF)) | cf as u32 | (of as u32) << 11;
        cpu.flags.set(f);
    } else {
        cpu.flags.set_result_explicit(size, r, cf, of, af);
    }
    Ok(())
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
        | Mnemonic::Sar => shift,
        Mnemonic::Shld | Mnemonic::Shrd => double_shift,
        _ => return None,
    })
}
