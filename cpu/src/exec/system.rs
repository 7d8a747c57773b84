//! Flag instructions, HLT, CPUID, RDTSC, MSRs, descriptor-table registers,
//! control and debug registers, cache control. The x87 (and WAIT) live in
//! `crate::fpu`.

use iced_x86::{Mnemonic, OpKind, Register};

use super::Handler;
use crate::decode::Entry;
use crate::flags;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::{cr0, gpr};
use crate::Bus;

/// CPUID.1 EDX features we implement: FPU (0, the x87 in `crate::fpu`),
/// DE (2), PSE (3), TSC (4), MSR (5), PAE (6), CX8 (8), SEP (11), MTRR (12,
/// the MSRs read as zero), PGE (13), CMOV (15), FXSR (24, FXSAVE/FXRSTOR).
const CPUID1_EDX: u32 = 1
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 8)
    | (1 << 11)
    | (1 << 12)
    | (1 << 13)
    | (1 << 15)
    | (1 << 24);

fn flag_op(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    match e.ins.mnemonic() {
        Mnemonic::Clc => cpu.flags.set_cf(false),
        Mnemonic::Stc => cpu.flags.set_cf(true),
        Mnemonic::Cmc => {
            let c = cpu.flags.cf();
            cpu.flags.set_cf(!c);
        }
        Mnemonic::Cld => cpu.flags.set_control(flags::DF, false),
        Mnemonic::Std => cpu.flags.set_control(flags::DF, true),
        Mnemonic::Cli => {
            // IOPL-sensitive (SDM Vol. 2A CLI, no PVI/VME).
            if cpu.iopl_trap() {
                return Err(Fault::gp(0));
            }
            cpu.flags.set_control(flags::IF, false)
        }
        _ => {
            if cpu.iopl_trap() {
                return Err(Fault::gp(0));
            }
            // STI: interrupts are recognised only after the next instruction
            // (SDM Vol. 2B STI), and only if IF was clear before.
            if !cpu.flags.control(flags::IF) {
                cpu.flags.set_control(flags::IF, true);
                cpu.inhibit_at = cpu.instructions + 1;
            }
            cpu.poll_interrupts();
        }
    }
    Ok(())
}

/// #GP(0) unless CPL is 0: the privileged instructions of SDM Vol. 3A §5.9.
#[inline]
pub(crate) fn require_cpl0(cpu: &Cpu) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

fn hlt(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    require_cpl0(cpu)?;
    cpu.halted = true;
    cpu.attention |= crate::processor::ATTN_STOP;
    Ok(())
}

/// RSM: leave system-management mode (see [`crate::smm`]); #UD outside it.
fn rsm(cpu: &mut Cpu, bus: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    cpu.rsm(bus)
}

fn nop(_: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    Ok(())
}

fn salc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let v = if cpu.flags.cf() { 0xFF } else { 0 };
    cpu.set_reg(Register::AL, v);
    Ok(())
}

fn cpuid(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    let leaf = cpu.regs[gpr::EAX];
    // Leaves above the maximum return the highest basic leaf, as Intel parts do.
    let leaf = if leaf > 2 && leaf < 0x8000_0000 {
        2
    } else {
        leaf
    };
    let (a, b, c, d) = match leaf {
        0 => (
            2,
            u32::from_le_bytes(*b"Genu"),
            u32::from_le_bytes(*b"ntel"),
            u32::from_le_bytes(*b"ineI"),
        ),
        1 => (0x0000_0633, 0, 0, CPUID1_EDX),
        2 => (0x0000_0001, 0, 0, 0),
        _ => (0, 0, 0, 0),
    };
    cpu.regs[gpr::EAX] = a;
    cpu.regs[gpr::EBX] = b;
    cpu.regs[gpr::ECX] = c;
    cpu.regs[gpr::EDX] = d;
    Ok(())
}

fn rdtsc(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    // CR4.TSD makes RDTSC privileged; CPL is 0 in real mode.
    if cpu.cr[4] & (1 << 2) != 0 && cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    let t = cpu.cycles.wrapping_add(cpu.tsc_offset);
    cpu.regs[gpr::EAX] = t as u32;
    cpu.regs[gpr::EDX] = (t >> 32) as u32;
    Ok(())
}

fn msr(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    let idx = cpu.regs[gpr::ECX];
    let write = e.ins.mnemonic() == Mnemonic::Wrmsr;
    let value = ((cpu.regs[gpr::EDX] as u64) << 32) | cpu.regs[gpr::EAX] as u64;
    let read = match idx {
        0x10 => {
            if write {
                cpu.tsc_offset = value.wrapping_sub(cpu.cycles);
            }
            cpu.cycles.wrapping_add(cpu.tsc_offset)
        }
        // Platform ID and microcode signature: reads as zero, writes ignored.
        0x17 | 0x8B => 0,
        // APIC base: the bootstrap processor bit, global enable clear (there
        // is no local APIC, and CPUID says so).
        0x1B => 0xFEE0_0100,
        0x174..=0x176 => {
            let i = (idx - 0x174) as usize;
            if write {
                cpu.sysenter[i] = value as u32;
            }
            cpu.sysenter[i] as u64
        }
        // MTRRs (capabilities, variable and fixed ranges, default type):
        // accepted and read back as zero; we model no memory types.
        0xFE | 0x200..=0x20F | 0x250 | 0x258 | 0x259 | 0x268..=0x26F | 0x2FF => 0,
        _ => return Err(Fault::gp(0)),
    };
    if !write {
        cpu.regs[gpr::EAX] = read as u32;
        cpu.regs[gpr::EDX] = (read >> 32) as u32;
    }
    Ok(())
}

fn table_reg(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if e.ins.op0_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let seg = cpu.mem_seg(e);
    let off = cpu.ea(e);
    let wrap = if e.addr32 { u32::MAX } else { 0xFFFF };
    let o32 = e.size == 4
        || e.ins.code() == iced_x86::Code::Lgdt_m1632
        || e.ins.code() == iced_x86::Code::Lidt_m1632;
    match e.ins.mnemonic() {
        Mnemonic::Lgdt | Mnemonic::Lidt => {
            require_cpl0(cpu)?;
            let limit = cpu.read_mem(bus, seg, off, 2)? as u16;
            let mut base = cpu.read_mem(bus, seg, off.wrapping_add(2) & wrap, 4)?;
            if !o32 {
                base &= 0x00FF_FFFF;
            }
            let t = crate::regs::TableReg { base, limit };
            if e.ins.mnemonic() == Mnemonic::Lgdt {
                cpu.gdtr = t;
            } else {
                cpu.idtr = t;
            }
        }
        _ => {
            let t = if e.ins.mnemonic() == Mnemonic::Sgdt {
                cpu.gdtr
            } else {
                cpu.idtr
            };
            cpu.write_mem(bus, seg, off, 2, t.limit as u32)?;
            let base = if o32 { t.base } else { t.base & 0x00FF_FFFF };
            cpu.write_mem(bus, seg, off.wrapping_add(2) & wrap, 4, base)?;
        }
    }
    Ok(())
}

fn smsw(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let v = cpu.cr[0];
    if e.ins.op0_kind() == OpKind::Register {
        cpu.set_reg(e.ins.op0_register(), v);
        Ok(())
    } else {
        cpu.write_op(bus, e, 0, 2, v & 0xFFFF)
    }
}

/// LMSW loads PE, MP, EM, TS and cannot clear PE (SDM Vol. 2A LMSW).
fn lmsw(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    let v = cpu.read_op(bus, e, 0, 2)? & 0xF;
    let old = cpu.cr[0];
    let new = (old & !0xE) | (v & 0xE) | (old & 1) | (v & 1);
    cpu.cr[0] = new;
    Ok(())
}

fn clts(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    cpu.cr[0] &= !cr0::TS;
    Ok(())
}

fn cr_index(r: Register) -> Option<usize> {
    let n = (r as u32).checked_sub(Register::CR0 as u32)?;
    (n <= 15).then_some(n as usize)
}

fn dr_index(r: Register) -> Option<usize> {
    let n = (r as u32).checked_sub(Register::DR0 as u32)?;
    (n <= 15).then_some(n as usize)
}

/// MOV to/from CRn and DRn (SDM Vol. 2B MOV—Move to/from Control/Debug Registers).
fn mov_special(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    let r0 = e.ins.op0_register();
    let r1 = e.ins.op1_register();
    if let Some(n) = cr_index(r1) {
        let v = match n {
            0 | 2 | 3 | 4 => cpu.cr[n],
            _ => return Err(Fault::UD),
        };
        cpu.set_reg(r0, v);
        return Ok(());
    }
    if let Some(n) = cr_index(r0) {
        let v = cpu.get_reg(r1);
        cpu.write_cr(n, v)?;
        return Ok(());
    }
    let de = cpu.cr[4] & (1 << 3) != 0;
    let alias = |n: usize| -> Result<usize, Fault> {
        match n {
            0..=3 | 6 | 7 => Ok(n),
            4 | 5 if !de => Ok(n + 2),
            _ => Err(Fault::UD),
        }
    };
    if let Some(n) = dr_index(r1) {
        let n = alias(n)?;
        let v = cpu.dr[n];
        cpu.set_reg(r0, v);
        return Ok(());
    }
    if let Some(n) = dr_index(r0) {
        let n = alias(n)?;
        let v = cpu.get_reg(r1);
        cpu.dr[n] = match n {
            6 => v | 0xFFFF_0FF0,
            7 => (v | 0x400) & !0x0000_D000,
            _ => v,
        };
        cpu.update_breakpoints();
        return Ok(());
    }
    Err(Fault::UD)
}

fn privileged_nop(cpu: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    if cpu.cpl() != 0 {
        return Err(Fault::gp(0));
    }
    Ok(())
}

/// INVLPG m: drop the TLB entry of the operand's linear address (the
/// operand is not accessed, so no segment check beyond forming the address).
fn invlpg(cpu: &mut Cpu, _: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    require_cpl0(cpu)?;
    if e.ins.op0_kind() != OpKind::Memory {
        return Err(Fault::UD);
    }
    let lin = cpu.segs[cpu.mem_seg(e) as usize]
        .base
        .wrapping_add(cpu.ea(e));
    cpu.tlb.invalidate(lin);
    cpu.emit(|| crate::events::Event::TlbFlush {
        cause: ringside_mmu::FlushCause::Invlpg,
    });
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    use Mnemonic::*;
    let m = e.ins.mnemonic();
    Some(match m {
        Clc | Stc | Cmc | Cld | Std | Cli | Sti => flag_op,
        Hlt => hlt,
        Nop | Pause => nop,
        // 0F 18–0F 1F are hint NOPs on a P6: prefetch hints and CET's
        // ENDBR32/ENDBR64 (F3 0F 1E FB/FA) do nothing there.
        Prefetchnta | Prefetcht0 | Prefetcht1 | Prefetcht2 | Endbr32 | Endbr64 | Cldemote
        | Reservednop => nop,
        Salc => salc,
        Cpuid => cpuid,
        Rdtsc => rdtsc,
        Rdmsr | Wrmsr => msr,
        Lgdt | Lidt | Sgdt | Sidt => table_reg,
        Smsw => smsw,
        Lmsw => lmsw,
        Clts => clts,
        Mov => mov_special,
        Invd | Wbinvd => privileged_nop,
        Invlpg => invlpg,
        Rsm => rsm,
        _ => return None,
    })
}
