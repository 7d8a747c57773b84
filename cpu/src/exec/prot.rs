//! Protected-mode system instructions: LLDT LTR SLDT STR LAR LSL VERR VERW
//! ARPL SYSENTER SYSEXIT RDPMC. The descriptor rules live in segment.rs.

use iced_x86::{Mnemonic, OpKind};

use super::system::require_cpl0;
use super::Handler;
use crate::decode::Entry;
use crate::flags::{self, IF, RF, VM};
use crate::interrupt::Fault;
use crate::processor::{Cpu, CpuMode};
use crate::regs::{gpr, SegReg, Segment};
use crate::segment::{gp_sel, np_sel, sys};
use crate::Bus;

/// LLDT/LTR/SLDT/STR/LAR/LSL/VERR/VERW/ARPL are #UD outside protected mode
/// (SDM Vol. 3A §20.1.3, §20.2.7).
fn require_protected(cpu: &Cpu) -> Result<(), Fault> {
    if cpu.mode() != CpuMode::Protected {
        return Err(Fault::UD);
    }
    Ok(())
}

fn set_zf(cpu: &mut Cpu, on: bool) {
    let f = cpu.flags.get();
    cpu.flags
        .set(if on { f | flags::ZF } else { f & !flags::ZF });
}

fn lldt(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    require_cpl0(cpu)?;
    let sel = cpu.read_op(bus, e, 0, 2)? as u16;
    if sel & 0xFFFC == 0 {
        cpu.ldtr = Segment {
            selector: sel,
            base: 0,
            limit: 0,
            attrs: 0,
        };
        return Ok(());
    }
    if sel & 4 != 0 {
        return Err(gp_sel(sel));
    }
    let d = cpu.read_descriptor(bus, sel)?;
    if d.is_code_data() || d.typ() != sys::LDT {
        return Err(gp_sel(sel));
    }
    if !d.present() {
        return Err(np_sel(sel));
    }
    cpu.ldtr = d.to_segment(sel);
    Ok(())
}

fn ltr(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    require_cpl0(cpu)?;
    let sel = cpu.read_op(bus, e, 0, 2)? as u16;
    if sel & 0xFFFC == 0 || sel & 4 != 0 {
        return Err(gp_sel(sel));
    }
    let d = cpu.read_descriptor(bus, sel)?;
    if d.is_code_data() || !matches!(d.typ(), sys::TSS16_AVAIL | sys::TSS32_AVAIL) {
        return Err(gp_sel(sel));
    }
    if !d.present() {
        return Err(np_sel(sel));
    }
    // LTR marks the TSS busy.
    if let Some(a) = cpu.descriptor_addr(sel) {
        cpu.write_system_u8(bus, a + 5, d.access() | 2)?;
    }
    let mut seg = d.to_segment(sel);
    seg.attrs |= 2;
    cpu.tr = seg;
    Ok(())
}

/// SLDT/STR: a register destination with a 32-bit operand gets the
/// selector zero-extended; memory is always 16 bits.
fn store_selector(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    let v = if e.ins.mnemonic() == Mnemonic::Sldt {
        cpu.ldtr.selector
    } else {
        cpu.tr.selector
    } as u32;
    if e.ins.op0_kind() == OpKind::Register {
        cpu.set_reg(e.ins.op0_register(), v);
        Ok(())
    } else {
        cpu.write_op(bus, e, 0, 2, v)
    }
}

fn lar_lsl(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    let sel = cpu.read_op(bus, e, 1, 2)? as u16;
    let lsl = e.ins.mnemonic() == Mnemonic::Lsl;
    match cpu.visible_descriptor(bus, sel, lsl)? {
        Some(d) => {
            let v = if lsl {
                d.limit()
            } else {
                ((d.0 >> 32) as u32) & 0x00FF_FF00
            };
            let v = if e.size == 2 { v & 0xFFFF } else { v };
            cpu.set_reg(e.ins.op0_register(), v);
            set_zf(cpu, true);
        }
        None => set_zf(cpu, false),
    }
    Ok(())
}

fn verr_verw(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    let sel = cpu.read_op(bus, e, 0, 2)? as u16;
    let ok = match cpu.visible_descriptor(bus, sel, true)? {
        Some(d) if d.is_code_data() => {
            if e.ins.mnemonic() == Mnemonic::Verr {
                d.readable()
            } else {
                d.writable()
            }
        }
        _ => false,
    };
    set_zf(cpu, ok);
    Ok(())
}

fn arpl(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_protected(cpu)?;
    let l = cpu.loc(e, 0);
    let dst = cpu.read_loc(bus, l, 2)?;
    let src = cpu.get_reg(e.ins.op1_register());
    if dst & 3 < src & 3 {
        cpu.write_loc(bus, l, 2, (dst & !3) | (src & 3))?;
        set_zf(cpu, true);
    } else {
        set_zf(cpu, false);
    }
    Ok(())
}

fn flat(selector: u16, code: bool, dpl: u8) -> Segment {
    let typ = if code { 0x0B } else { 0x03 };
    Segment {
        selector,
        base: 0,
        limit: 0xFFFF_FFFF,
        attrs: 0xC090 | ((dpl as u16) << 5) | typ,
    }
}

/// SYSENTER (SDM Vol. 2B): flat ring-0 CS/SS from SYSENTER_CS, ESP and
/// EIP from the MSRs; clears VM, IF and RF.
fn sysenter(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let cs = cpu.sysenter[0] as u16;
    if cpu.cr[0] & crate::regs::cr0::PE == 0 || cs & 0xFFFC == 0 {
        return Err(Fault::gp(0));
    }
    let f = cpu.flags.get() & !(VM | IF | RF);
    cpu.flags.set(f);
    cpu.segs[SegReg::Cs as usize] = flat(cs & 0xFFFC, true, 0);
    cpu.segs[SegReg::Ss as usize] = flat((cs & 0xFFFC) + 8, false, 0);
    cpu.set_cpl(0);
    cpu.regs[gpr::ESP] = cpu.sysenter[1];
    cpu.eip = cpu.sysenter[2];
    Ok(())
}

/// SYSEXIT: back to flat ring-3 CS/SS at SYSENTER_CS+16/+24, EIP = EDX,
/// ESP = ECX.
fn sysexit(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let cs = cpu.sysenter[0] as u16;
    if cpu.mode() != CpuMode::Protected || cs & 0xFFFC == 0 || cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    cpu.segs[SegReg::Cs as usize] = flat(((cs & 0xFFFC) + 16) | 3, true, 3);
    cpu.segs[SegReg::Ss as usize] = flat(((cs & 0xFFFC) + 24) | 3, false, 3);
    cpu.set_cpl(3);
    cpu.regs[gpr::ESP] = cpu.regs[gpr::ECX];
    cpu.eip = cpu.regs[gpr::EDX];
    Ok(())
}

/// RDPMC: privileged unless CR4.PCE; this CPU has two counters that
/// always read zero (we model no events).
fn rdpmc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    if cpu.cr[4] & (1 << 8) == 0 && cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    if cpu.regs[gpr::ECX] > 1 {
        return Err(Fault::gp(0));
    }
    cpu.regs[gpr::EAX] = 0;
    cpu.regs[gpr::EDX] = 0;
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    use Mnemonic::*;
    Some(match e.ins.mnemonic() {
        Lldt => lldt,
        Ltr => ltr,
        Sldt | Str => store_selector,
        Lar | Lsl => lar_lsl,
        Verr | Verw => verr_verw,
        Arpl => arpl,
        Sysenter => sysenter,
        Sysexit => sysexit,
        Rdpmc => rdpmc,
        _ => return None,
    })
}
