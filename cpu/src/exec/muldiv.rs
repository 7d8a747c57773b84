//! MUL IMUL DIV IDIV.
//!
//! MUL and IMUL define only CF and OF (SDM Vol. 2A); we set SF/ZF/PF from the
//! low half of the result and clear AF, like P6 parts. DIV and IDIV leave all
//! status flags undefined; we leave them unchanged. A zero divisor or a
//! quotient that does not fit raises #DE (a fault: EIP points at the DIV).

use iced_x86::{Mnemonic, Register};

use super::Handler;
use crate::decode::Entry;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::gpr;
use crate::Bus;

fn sext(v: u32, size: u8) -> i64 {
    match size {
        1 => v as u8 as i8 as i64,
        2 => v as u16 as i16 as i64,
        _ => v as i32 as i64,
    }
}

fn mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// Read the double-width accumulator (AX, DX:AX or EDX:EAX).
fn acc_wide(cpu: &Cpu, size: u8) -> u64 {
    let eax = cpu.regs[gpr::EAX] as u64;
    let edx = cpu.regs[gpr::EDX] as u64;
    match size {
        1 => eax & 0xFFFF,
        2 => ((edx & 0xFFFF) << 16) | (eax & 0xFFFF),
        _ => (edx << 32) | eax,
    }
}

/// Write a double-width result: AX, DX:AX or EDX:EAX.
fn set_acc_wide(cpu: &mut Cpu, size: u8, v: u64) {
    match size {
        1 => cpu.set_reg(Register::AX, v as u32),
        2 => {
            cpu.set_reg(Register::AX, v as u32);
            cpu.set_reg(Register::DX, (v >> 16) as u32);
        }
        _ => {
            cpu.regs[gpr::EAX] = v as u32;
            cpu.regs[gpr::EDX] = (v >> 32) as u32;
        }
    }
}

fn mul1(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let src = cpu.read_op(bus, e, 0, size)? as u64 & mask(size);
    let a = cpu.regs[gpr::EAX] as u64 & mask(size);
    let r = a * src;
    set_acc_wide(cpu, size, r);
    let high = r >> (size as u32 * 8) != 0;
    cpu.flags
        .set_result_explicit(size, r as u32, high, high, false);
    Ok(())
}

fn imul1(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let src = sext(cpu.read_op(bus, e, 0, size)?, size);
    let a = sext(cpu.regs[gpr::EAX], size);
    let r = a * src;
    set_acc_wide(cpu, size, r as u64);
    let low = sext(r as u32, size);
    let ovf = low != r;
    cpu.flags
        .set_result_explicit(size, r as u32, ovf, ovf, false);
    Ok(())
}

/// IMUL r, r/m and IMUL r, r/m, imm: truncated product.
fn imul_n(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let (a, b) = if e.ins.op_count() == 3 {
        (cpu.read_op(bus, e, 1, size)?, cpu.read_op(bus, e, 2, size)?)
    } else {
        (
            cpu.get_reg(e.ins.op0_register()),
            cpu.read_op(bus, e, 1, size)?,
        )
    };
    let r = sext(a, size) * sext(b, size);
    let low = sext(r as u32, size);
    let ovf = low != r;
    cpu.set_reg(e.ins.op0_register(), r as u32);
    cpu.flags
        .set_result_explicit(size, r as u32, ovf, ovf, false);
    Ok(())
}

fn div(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let d = cpu.read_op(bus, e, 0, size)? as u64 & mask(size);
    if d == 0 {
        return Err(Fault::DE);
    }
    let n = acc_wide(cpu, size);
    let q = n / d;
    let r = n % d;
    if q > mask(size) {
        return Err(Fault::DE);
    }
    set_quot_rem(cpu, size, q as u32, r as u32);
    Ok(())
}

fn idiv(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let d = sext(cpu.read_op(bus, e, 0, size)?, size) as i128;
    if d == 0 {
        return Err(Fault::DE);
    }
    let n = acc_wide(cpu, size);
    let n: i128 = match size {
        1 => n as u16 as i16 as i128,
        2 => n as u32 as i32 as i128,
        _ => n as i64 as i128,
    };
    let q = n / d;
    let r = n % d;
    let bits = size as u32 * 8;
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    if q < min || q > max {
        return Err(Fault::DE);
    }
    set_quot_rem(cpu, size, q as u32, r as u32);
    Ok(())
}

fn set_quot_rem(cpu: &mut Cpu, size: u8, q: u32, r: u32) {
    match size {
        1 => {
            cpu.set_reg(Register::AL, q);
            cpu.set_reg(Register::AH, r);
        }
        2 => {
            cpu.set_reg(Register::AX, q);
            cpu.set_reg(Register::DX, r);
        }
        _ => {
            cpu.regs[gpr::EAX] = q;
            cpu.regs[gpr::EDX] = r;
        }
    }
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    Some(match e.ins.mnemonic() {
        Mnemonic::Mul => mul1,
        Mnemonic::Imul if e.ins.op_count() == 1 => imul1,
        Mnemonic::Imul => imul_n,
        Mnemonic::Div => div,
        Mnemonic::Idiv => idiv,
        _ => return None,
    })
}
