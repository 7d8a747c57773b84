//! Bit operations: BT BTS BTR BTC BSF BSR.

use iced_x86::{Mnemonic, OpKind};

use super::operand::Loc;
use super::Handler;
use crate::decode::Entry;
use crate::flags;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::Bus;

/// BT/BTS/BTR/BTC. With a register bit offset and a memory operand the
/// offset is signed and may reach outside the addressed operand (SDM Vol. 2A
/// "BT": the address moves by (offset div size) operands).
fn bt(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let bits = size as u32 * 8;
    let (l, bit) = if e.ins.op1_kind() == OpKind::Register {
        let off = cpu.get_reg(e.ins.op1_register());
        match cpu.loc(e, 0) {
            Loc::Reg(r) => (Loc::Reg(r), off & (bits - 1)),
            Loc::Mem(s, a) => {
                let soff = if size == 2 {
                    off as u16 as i16 as i32
                } else {
                    off as i32
                };
                let disp = (soff >> (if size == 2 { 4 } else { 5 })) * size as i32;
                let mut na = a.wrapping_add(disp as u32);
                if !e.addr32 {
                    na &= 0xFFFF;
                }
                (Loc::Mem(s, na), off & (bits - 1))
            }
        }
    } else {
        (cpu.loc(e, 0), e.ins.immediate8() as u32 & (bits - 1))
    };
    let v = cpu.read_loc(bus, l, size)?;
    let cf = (v >> bit) & 1 != 0;
    let nv = match e.ins.mnemonic() {
        Mnemonic::Bts => Some(v | (1 << bit)),
        Mnemonic::Btr => Some(v & !(1 << bit)),
        Mnemonic::Btc => Some(v ^ (1 << bit)),
        _ => None,
    };
    if let Some(nv) = nv {
        cpu.write_loc(bus, l, size, nv)?;
    }
    // CF is the bit; OF/SF/AF/PF are undefined and kept, ZF is kept.
    let f = cpu.flags.get();
    cpu.flags.set((f & !flags::CF) | cf as u32);
    Ok(())
}

/// BSF/BSR: ZF=1 and the destination unchanged (as P6 parts do) for a zero
/// source; otherwise ZF=0 and the index.
fn bsf_bsr(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let size = e.size;
    let v = cpu.read_op(bus, e, 1, size)? & flags::size_mask(size).0;
    let f = cpu.flags.get();
    if v == 0 {
        cpu.flags.set(f | flags::ZF);
        return Ok(());
    }
    let idx = if matches!(e.ins.mnemonic(), Mnemonic::Bsf | Mnemonic::Tzcnt) {
        v.trailing_zeros()
    } else {
        31 - v.leading_zeros()
    };
    cpu.set_reg(e.ins.op0_register(), idx);
    cpu.flags.set(f & !flags::ZF);
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    Some(match e.ins.mnemonic() {
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => bt,
        Mnemonic::Bsf | Mnemonic::Bsr => bsf_bsr,
        // F3 0F BC/BD are TZCNT/LZCNT on BMI1/ABM parts; a P6 ignores the
        // REP prefix and runs BSF/BSR (software such as Linux's __ffs relies
        // on exactly that).
        Mnemonic::Tzcnt | Mnemonic::Lzcnt => bsf_bsr,
        _ => return None,
    })
}
