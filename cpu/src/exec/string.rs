//! String instructions: MOVS CMPS SCAS LODS STOS INS OUTS, with REP/REPE/REPNE.
//!
//! A REP instruction runs at most `CHUNK` iterations per execution and then,
//! if the count is not exhausted, leaves EIP on itself: the next execution
//! continues where it stopped. That is how a real CPU lets interrupts in
//! during a long REP (SDM Vol. 2B "REP"), and it bounds host time per step.
//! A fault in iteration k leaves the registers as iteration k-1 left them.

use iced_x86::{Mnemonic, Register};

use super::Handler;
use crate::decode::Entry;
use crate::flags;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::{gpr, SegReg};
use crate::Bus;

const CHUNK: u32 = 65536;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Movs,
    Cmps,
    Scas,
    Lods,
    Stos,
    Ins,
    Outs,
}

#[inline(always)]
fn kind_of(m: Mnemonic) -> Option<Kind> {
    use Mnemonic::*;
    Some(match m {
        Movsb | Movsw | Movsd => Kind::Movs,
        Cmpsb | Cmpsw | Cmpsd => Kind::Cmps,
        Scasb | Scasw | Scasd => Kind::Scas,
        Lodsb | Lodsw | Lodsd => Kind::Lods,
        Stosb | Stosw | Stosd => Kind::Stos,
        Insb | Insw | Insd => Kind::Ins,
        Outsb | Outsw | Outsd => Kind::Outs,
        _ => return None,
    })
}

impl Cpu {
    #[inline(always)]
    fn index(&self, r: usize, a32: bool) -> u32 {
        if a32 {
            self.regs[r]
        } else {
            self.regs[r] & 0xFFFF
        }
    }

    #[inline(always)]
    fn advance(&mut self, r: usize, a32: bool, delta: u32) {
        let v = self.regs[r];
        self.regs[r] = if a32 {
            v.wrapping_add(delta)
        } else {
            (v & 0xFFFF_0000) | (v.wrapping_add(delta) & 0xFFFF)
        };
    }
}

fn string_op(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let kind = match kind_of(e.ins.mnemonic()) {
        Some(k) => k,
        None => return Err(Fault::UD),
    };
    let size = e.size;
    let a32 = e.addr32;
    let compare = matches!(kind, Kind::Cmps | Kind::Scas);
    let rep = e.ins.has_rep_prefix() || e.ins.has_repne_prefix();
    // For CMPS/SCAS, F3 is REPE and F2 is REPNE.
    let until_equal = e.ins.has_repne_prefix();
    let delta = if cpu.flags.control(flags::DF) {
        (size as u32).wrapping_neg()
    } else {
        size as u32
    };
    let src_seg = if matches!(kind, Kind::Movs | Kind::Cmps | Kind::Lods | Kind::Outs) {
        SegReg::from_iced(e.ins.memory_segment())
    } else {
        SegReg::Ds
    };
    let mut done = 0u32;
    let block = rep && delta == size as u32 && matches!(kind, Kind::Movs | Kind::Stos);
    loop {
        if rep && cpu.index(gpr::ECX, a32) == 0 {
            break;
        }
        if block {
            let n = rep_block(cpu, kind, size, a32, src_seg, CHUNK - done);
            if n > 0 {
                done += n;
                if cpu.index(gpr::ECX, a32) == 0 {
                    break;
                }
                if done >= CHUNK {
                    cpu.cycles += done as u64;
                    cpu.eip = cpu.eip.wrapping_sub(e.len as u32)
                        & if e.code32 { u32::MAX } else { 0xFFFF };
                    return Ok(());
                }
                // The next element crosses a page or needs the checks.
                continue;
            }
        }
        match kind {
            Kind::Movs => {
                let v = cpu.read_mem(bus, src_seg, cpu.index(gpr::ESI, a32), size)?;
                cpu.write_mem(bus, SegReg::Es, cpu.index(gpr::EDI, a32), size, v)?;
                cpu.advance(gpr::ESI, a32, delta);
                cpu.advance(gpr::EDI, a32, delta);
            }
            Kind::Cmps => {
                let a = cpu.read_mem(bus, src_seg, cpu.index(gpr::ESI, a32), size)?;
                let b = cpu.read_mem(bus, SegReg::Es, cpu.index(gpr::EDI, a32), size)?;
                cpu.alu(super::alu::AluOp::Cmp, size, a, b);
                cpu.advance(gpr::ESI, a32, delta);
                cpu.advance(gpr::EDI, a32, delta);
            }
            Kind::Scas => {
                let b = cpu.read_mem(bus, SegReg::Es, cpu.index(gpr::EDI, a32), size)?;
                let a = cpu.regs[gpr::EAX];
                cpu.alu(super::alu::AluOp::Cmp, size, a, b);
                cpu.advance(gpr::EDI, a32, delta);
            }
            Kind::Lods => {
                let v = cpu.read_mem(bus, src_seg, cpu.index(gpr::ESI, a32), size)?;
                cpu.set_reg(acc(size), v);
                cpu.advance(gpr::ESI, a32, delta);
            }
            Kind::Stos => {
                let v = cpu.regs[gpr::EAX];
                cpu.write_mem(bus, SegReg::Es, cpu.index(gpr::EDI, a32), size, v)?;
                cpu.advance(gpr::EDI, a32, delta);
            }
            Kind::Ins => {
                let port = cpu.regs[gpr::EDX] as u16;
                cpu.check_io(bus, port, size)?;
                let di = cpu.index(gpr::EDI, a32);
                // Check the destination before the port read has side effects.
                cpu.seg_check_write(SegReg::Es, di, size as u32)?;
                bus.sync_time(cpu.cycles);
                let v = bus.io_read(port, size);
                cpu.write_mem(bus, SegReg::Es, di, size, v)?;
                cpu.advance(gpr::EDI, a32, delta);
                cpu.request_yield();
            }
            Kind::Outs => {
                let port = cpu.regs[gpr::EDX] as u16;
                cpu.check_io(bus, port, size)?;
                let v = cpu.read_mem(bus, src_seg, cpu.index(gpr::ESI, a32), size)?;
                bus.sync_time(cpu.cycles);
                bus.io_write(port, size, v);
                cpu.advance(gpr::ESI, a32, delta);
                cpu.request_yield();
            }
        }
        if !rep {
            break;
        }
        cpu.advance(gpr::ECX, a32, u32::MAX);
        done += 1;
        if compare && cpu.flags.zf() == until_equal {
            break;
        }
        if cpu.index(gpr::ECX, a32) == 0 {
            break;
        }
        if done >= CHUNK {
            // Resume later from the same instruction.
            cpu.cycles += done as u64;
            cpu.eip = cpu.eip.wrapping_sub(e.len as u32) & if e.code32 { u32::MAX } else { 0xFFFF };
            return Ok(());
        }
    }
    cpu.cycles += done as u64;
    Ok(())
}

/// The fast part of a forward REP MOVS/STOS: the elements (at most `max`,
/// and (E)CX) that keep every operand inside one page, its segment limit
/// and (16-bit addressing) below the 64 KiB wrap, with plain RAM to write,
/// are moved in host memory at once, and (E)SI/(E)DI/(E)CX advance as the
/// element loop would leave them. Returns how many were done; 0 leaves the
/// next element to the general path (page crossing, MMIO, a code page, a
/// fault to raise, …), which behaves exactly as before.
fn rep_block(cpu: &mut Cpu, kind: Kind, size: u8, a32: bool, src_seg: SegReg, max: u32) -> u32 {
    let sz = size as u32;
    let di = cpu.index(gpr::EDI, a32);
    // Elements left before the page end (and the offset wrap).
    let room = |seg: SegReg, off: u32| {
        let lin = cpu.segs[seg as usize].base.wrapping_add(off);
        let page = (0x1000 - (lin & 0xFFF)) / sz;
        if a32 {
            page
        } else {
            page.min((0x1_0000 - off) / sz)
        }
    };
    let mut n = cpu.index(gpr::ECX, a32).min(max).min(room(SegReg::Es, di));
    if kind == Kind::Movs {
        let si = cpu.index(gpr::ESI, a32);
        n = n.min(room(src_seg, si));
        if n == 0 {
            return 0;
        }
        let Some(src) = cpu.fast_range(src_seg, si, n * sz, false) else {
            return 0;
        };
        let Some(dst) = cpu.fast_range(SegReg::Es, di, n * sz, true) else {
            return 0;
        };
        if !cpu.mem.copy_within_pages(src, dst, n * sz) {
            return 0;
        }
        cpu.advance(gpr::ESI, a32, n * sz);
    } else {
        if n == 0 {
            return 0;
        }
        let Some(dst) = cpu.fast_range(SegReg::Es, di, n * sz, true) else {
            return 0;
        };
        if !cpu.mem.fill_within_page(dst, size, n, cpu.regs[gpr::EAX]) {
            return 0;
        }
    }
    if cpu.paging {
        // One hit per element and operand, as the element loop counts.
        let per = if kind == Kind::Movs { 2 } else { 1 };
        cpu.tlb.stats.hits += per * n as u64;
    }
    cpu.advance(gpr::EDI, a32, n * sz);
    cpu.advance(gpr::ECX, a32, n.wrapping_neg());
    n
}

fn acc(size: u8) -> Register {
    match size {
        1 => Register::AL,
        2 => Register::AX,
        _ => Register::EAX,
    }
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    kind_of(e.ins.mnemonic()).map(|_| string_op as Handler)
}
