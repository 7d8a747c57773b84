//! String instructions: MOVS CMPS SCAS LODS STOS INS OUTS, with REP/REPE/REPNE.
//!
//! A REP instruction pauses between two iterations by leaving EIP on itself
//! (the next execution continues where it stopped): after each iteration
//! with EFLAGS.TF set (one single-step trap per iteration), after one that
//! hit a data breakpoint, at every multiple of `CHUNK` left in (E)CX (so
//! interrupts get in during a long REP, SDM Vol. 2B "REP", and host time per
//! step is bounded), and after each iteration of a debugger's step.
//! A fault in iteration k leaves the registers as iteration k-1 left them.
//! Each iteration adds one cycle as it completes.

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
    // With TF set the single-step trap comes after each iteration (SDM
    // Vol. 3B §17.3.1.4), and the debugger's step is one iteration too.
    let traced = cpu.flags.control(flags::TF);
    let one_at_a_time = traced || cpu.host_step;
    let block =
        rep && !one_at_a_time && delta == size as u32 && matches!(kind, Kind::Movs | Kind::Stos);
    loop {
        if rep && cpu.index(gpr::ECX, a32) == 0 {
            break;
        }
        let mut n = 0;
        if block {
            // Up to the next multiple of CHUNK, where the run stops anyway.
            let to_pause = (cpu.index(gpr::ECX, a32).wrapping_sub(1) & (CHUNK - 1)) + 1;
            n = rep_block(cpu, kind, size, a32, src_seg, to_pause);
            cpu.cycles += n as u64;
        }
        if n == 0 {
            // One element (the next one crosses a page, needs the checks,
            // or iterations go one at a time).
            element(cpu, bus, kind, size, a32, src_seg, delta)?;
            if !rep {
                break;
            }
            cpu.advance(gpr::ECX, a32, u32::MAX);
            cpu.cycles += 1;
            if compare && cpu.flags.zf() == until_equal {
                break;
            }
        }
        let left = cpu.index(gpr::ECX, a32);
        if left == 0 {
            break;
        }
        // Iterations remain. The instruction pauses (EIP stays on it, to
        // carry on when it runs again) where the guest can see it: for the
        // single-step trap, for a data breakpoint this iteration hit (its
        // #DB follows the iteration), and each time (E)CX reaches a multiple
        // of CHUNK, which lets interrupts in during a long REP (SDM Vol. 2B
        // "REP") and bounds host time. CHUNK points depend on the count
        // alone, so a run and a debugger's steps pause at the same ones.
        if traced || cpu.pending_debug_trap || left & (CHUNK - 1) == 0 {
            pause(cpu, e);
            return Ok(());
        }
        if cpu.host_step {
            // The debugger's step: a pause only the host sees. Undo what the
            // run loop will count for it, and hold interrupts off as a run,
            // which would not stop here, does.
            pause(cpu, e);
            cpu.cycles -= e.cycles as u64;
            cpu.instructions = cpu.instructions.wrapping_sub(1);
            cpu.inhibit_at = cpu.instructions.wrapping_add(1);
            return Ok(());
        }
    }
    Ok(())
}

/// Leave EIP on the REP instruction to continue it. RF is set: an interrupt
/// or trap delivered between two iterations pushes RF = 1 (SDM Vol. 3B
/// §17.3.1.1), and the continuation does not see an instruction breakpoint
/// on the REP again; it is cleared as the instruction runs again.
fn pause(cpu: &mut Cpu, e: &Entry) {
    cpu.eip = cpu.eip.wrapping_sub(e.len as u32) & if e.code32 { u32::MAX } else { 0xFFFF };
    cpu.flags.set_control(flags::RF, true);
}

/// One iteration of a string instruction, without the count.
#[inline(always)]
fn element(
    cpu: &mut Cpu,
    bus: &mut dyn Bus,
    kind: Kind,
    size: u8,
    a32: bool,
    src_seg: SegReg,
    delta: u32,
) -> Result<(), Fault> {
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
            cpu.io_breakpoints(port, size);
            cpu.request_yield();
        }
        Kind::Outs => {
            let port = cpu.regs[gpr::EDX] as u16;
            cpu.check_io(bus, port, size)?;
            let v = cpu.read_mem(bus, src_seg, cpu.index(gpr::ESI, a32), size)?;
            bus.sync_time(cpu.cycles);
            bus.io_write(port, size, v);
            cpu.advance(gpr::ESI, a32, delta);
            cpu.io_breakpoints(port, size);
            cpu.request_yield();
        }
    }
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
