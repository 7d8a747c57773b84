//! Decimal adjust: DAA DAS AAA AAS AAM AAD (SDM Vol. 2A pseudo-code).

use iced_x86::{Mnemonic, Register};

use super::Handler;
use crate::decode::Entry;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::Bus;

fn set_al_flags(cpu: &mut Cpu, al: u8, cf: bool, af: bool, of: bool) {
    cpu.flags.set_result_explicit(1, al as u32, cf, of, af);
}

fn daa(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let old_al = cpu.get_reg(Register::AL) as u8;
    let old_cf = cpu.flags.cf();
    let mut al = old_al;
    let af = old_al & 0xF > 9 || cpu.flags.af();
    if af {
        al = al.wrapping_add(6);
    }
    // The carry out of the +6 step is overwritten by the second step's CF.
    let cf = old_al > 0x99 || old_cf;
    if cf {
        al = al.wrapping_add(0x60);
    }
    cpu.set_reg(Register::AL, al as u32);
    // OF is undefined; a P6 sets it as a signed-overflow of the adjustment.
    let of = (old_al & 0x80 == 0) && (al & 0x80 != 0);
    set_al_flags(cpu, al, cf, af, of);
    Ok(())
}

fn das(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let old_al = cpu.get_reg(Register::AL) as u8;
    let old_cf = cpu.flags.cf();
    let mut al = old_al;
    let mut cf = false;
    let af = if old_al & 0xF > 9 || cpu.flags.af() {
        let (v, b) = al.overflowing_sub(6);
        al = v;
        cf = old_cf || b;
        true
    } else {
        false
    };
    if old_al > 0x99 || old_cf {
        al = al.wrapping_sub(0x60);
        cf = true;
    }
    cpu.set_reg(Register::AL, al as u32);
    let of = (old_al & 0x80 != 0) && (al & 0x80 == 0);
    set_al_flags(cpu, al, cf, af, of);
    Ok(())
}

fn aaa(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let ax = cpu.get_reg(Register::AX) as u16;
    let adjust = ax & 0xF > 9 || cpu.flags.af();
    let ax = if adjust { ax.wrapping_add(0x106) } else { ax };
    let ax = ax & 0xFF0F;
    cpu.set_reg(Register::AX, ax as u32);
    set_al_flags(cpu, ax as u8, adjust, adjust, false);
    Ok(())
}

fn aas(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let ax = cpu.get_reg(Register::AX) as u16;
    let adjust = ax & 0xF > 9 || cpu.flags.af();
    // SDM AAS: AX <- AX - 6 (the borrow out of AL reaches AH), then AH <- AH - 1.
    let ax = if adjust {
        ax.wrapping_sub(6).wrapping_sub(0x100)
    } else {
        ax
    };
    let ax = ax & 0xFF0F;
    cpu.set_reg(Register::AX, ax as u32);
    set_al_flags(cpu, ax as u8, adjust, adjust, false);
    Ok(())
}

fn aam(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let base = e.ins.immediate8();
    if base == 0 {
        return Err(Fault::DE);
    }
    let al = cpu.get_reg(Register::AL) as u8;
    let (q, r) = (al / base, al % base);
    cpu.set_reg(Register::AX, ((q as u32) << 8) | r as u32);
    set_al_flags(cpu, r, false, false, false);
    Ok(())
}

fn aad(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let base = e.ins.immediate8();
    let al = cpu.get_reg(Register::AL) as u8;
    let ah = cpu.get_reg(Register::AH) as u8;
    let prod = ah.wrapping_mul(base);
    let r = al.wrapping_add(prod);
    cpu.set_reg(Register::AX, r as u32);
    // Undefined CF/OF/AF: P6 parts report those of the 8-bit addition.
    let cf = (al as u16 + prod as u16) > 0xFF;
    let af = (al & 0xF) + (prod & 0xF) > 0xF;
    let of = ((al ^ r) & (prod ^ r) & 0x80) != 0;
    set_al_flags(cpu, r, cf, af, of);
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    Some(match e.ins.mnemonic() {
        Mnemonic::Daa => daa,
        Mnemonic::Das => das,
        Mnemonic::Aaa => aaa,
        Mnemonic::Aas => aas,
        Mnemonic::Aam => aam,
        Mnemonic::Aad => aad,
        _ => return None,
    })
}
