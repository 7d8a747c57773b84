//! Exception and interrupt delivery.
//!
//! Instruction handlers return `Err(Fault)`; the run loop hands the fault to
//! [`Cpu::deliver_fault`], the one place that builds exception frames. Real
//! mode uses the IVT (SDM Vol. 3A §20.1.4); a fault raised while delivering
//! another is combined by the double-fault rules of SDM Vol. 3A §6.15,
//! Table 6-5, and a fault while delivering #DF shuts the processor down
//! (triple fault).

use crate::events::Event;
use crate::flags::{self, AC, IF, RF, TF, VM};
use crate::processor::Cpu;
use crate::regs::{SegReg, Segment};
use crate::segment::{gp_sel, np_sel, ss_sel, sys, ts_sel};
use crate::Bus;

/// Vectors that push an error code in protected mode (SDM Vol. 3A Table 6-1).
pub(crate) fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10 | 11 | 12 | 13 | 14 | 17)
}

/// Set the EXT bit in a fault's error code: the fault happened while
/// delivering an event external to the program (SDM Vol. 3A §6.13).
fn with_ext(f: Fault, ext: u32) -> Fault {
    match f.error {
        Some(e) if f.vector != Vector::PageFault as u8 && f.vector != Vector::DoubleFault as u8 => {
            Fault {
                vector: f.vector,
                error: Some(e | ext),
            }
        }
        _ => f,
    }
}

/// The most deliveries one fault may chain into (each a fault raised while
/// delivering the previous one) before the processor shuts down.
const MAX_DELIVERY_STEPS: usize = 8;

/// Cycles charged for delivering an exception or interrupt (roughly a P6's
/// real-mode INT latency).
const DELIVERY_CYCLES: u64 = 20;

/// Exception vector numbers (SDM Vol. 3A Table 6-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Vector {
    /// #DE divide error
    DivideError = 0,
    /// #DB debug
    Debug = 1,
    /// NMI
    Nmi = 2,
    /// #BP breakpoint (INT3)
    Breakpoint = 3,
    /// #OF overflow (INTO)
    Overflow = 4,
    /// #BR BOUND range exceeded
    BoundRange = 5,
    /// #UD invalid opcode
    InvalidOpcode = 6,
    /// #NM device not available
    DeviceNotAvailable = 7,
    /// #DF double fault
    DoubleFault = 8,
    /// #TS invalid TSS
    InvalidTss = 10,
    /// #NP segment not present
    SegmentNotPresent = 11,
    /// #SS stack fault
    StackFault = 12,
    /// #GP general protection
    GeneralProtection = 13,
    /// #PF page fault
    PageFault = 14,
    /// #MF x87 floating-point error
    FloatingPoint = 16,
    /// #AC alignment check
    AlignmentCheck = 17,
}

/// A fault or trap raised by an instruction, not yet delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Exception vector.
    pub vector: u8,
    /// Error code, for the vectors that push one (only in protected mode).
    pub error: Option<u32>,
}

impl Fault {
    /// A fault without an error code.
    pub const fn new(v: Vector) -> Fault {
        Fault {
            vector: v as u8,
            error: None,
        }
    }
    /// A fault with an error code.
    pub const fn with_error(v: Vector, error: u32) -> Fault {
        Fault {
            vector: v as u8,
            error: Some(error),
        }
    }
    /// #DE
    pub const DE: Fault = Fault::new(Vector::DivideError);
    /// #UD
    pub const UD: Fault = Fault::new(Vector::InvalidOpcode);
    /// #BR
    pub const BR: Fault = Fault::new(Vector::BoundRange);
    /// #NM
    pub const NM: Fault = Fault::new(Vector::DeviceNotAvailable);
    /// #GP(code)
    pub const fn gp(code: u32) -> Fault {
        Fault::with_error(Vector::GeneralProtection, code)
    }
    /// #SS(code)
    pub const fn ss(code: u32) -> Fault {
        Fault::with_error(Vector::StackFault, code)
    }

    /// Contributory exceptions of SDM Table 6-4.
    fn contributory(self) -> bool {
        matches!(self.vector, 0 | 10 | 11 | 12 | 13)
    }

    /// Short mnemonic, e.g. `#GP`.
    pub fn mnemonic(self) -> &'static str {
        match self.vector {
            0 => "#DE",
            1 => "#DB",
            2 => "NMI",
            3 => "#BP",
            4 => "#OF",
            5 => "#BR",
            6 => "#UD",
            7 => "#NM",
            8 => "#DF",
            10 => "#TS",
            11 => "#NP",
            12 => "#SS",
            13 => "#GP",
            14 => "#PF",
            16 => "#MF",
            17 => "#AC",
            _ => "#??",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.error {
            Some(e) => write!(f, "{}({:#x})", self.mnemonic(), e),
            None => write!(f, "{}", self.mnemonic()),
        }
    }
}

/// What caused an interrupt delivery; it decides which flags and IP are saved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A fault or trap from the CPU itself (exception).
    Exception,
    /// INT n / INT3 / INTO: the saved IP is after the instruction.
    Software,
    /// An external interrupt (INTR) or NMI.
    External,
}

impl Cpu {
    /// Deliver a fault raised by the instruction at `self.eip` (the run loop
    /// has already restored EIP to the faulting instruction for faults).
    pub(crate) fn deliver_fault(&mut self, bus: &mut dyn Bus, fault: Fault) {
        // A faulting instruction still costs time and counts against the
        // run's instruction budget: otherwise a guest stuck in a fault loop
        // (say, an IVT pointing at undecodable bytes) would never let
        // `Cpu::run` return.
        self.cycles += DELIVERY_CYCLES;
        self.instructions += 1;
        self.exceptions_raised += 1;
        let (cpl, mode, paging, tr) = (
            self.cpl,
            self.mode(),
            self.cr[0] & crate::regs::cr0::PG != 0,
            self.tr.selector,
        );
        if self.observer.is_some() {
            let (cs, eip, mnemonic) = (
                self.segs[SegReg::Cs as usize].selector,
                self.eip,
                self.observed_mnemonic,
            );
            self.emit(|| Event::Exception {
                vector: fault.vector,
                error: fault.error,
                cs,
                eip,
                cpl,
                mnemonic,
            });
            if fault.vector == Vector::GeneralProtection as u8
                && (cpl > 0 || mode == crate::processor::CpuMode::Virtual8086)
            {
                let privileged_form = self
                    .observed_at
                    .as_ref()
                    .is_none_or(|o| crate::classify::is_privileged_form(&o.3));
                if let Some(m) =
                    mnemonic.filter(|m| crate::classify::gp_is_trap(*m) && privileged_form)
                {
                    self.emit(|| Event::PrivilegedTrap { mnemonic: m, cpl });
                }
            }
        }
        self.deliver_fault_inner(bus, fault);
        // A fault inside an observed instruction is reported with the
        // instruction's own state changes, once, when it ends.
        if self.observed_at.is_none() {
            self.emit_state_changes(cpl, mode, paging, tr, "exception");
        }
    }

    fn deliver_fault_inner(&mut self, bus: &mut dyn Bus, fault: Fault) {
        let mut current = fault;
        // Walk the double-fault table: a fault while delivering becomes the
        // next thing to deliver, combined by class.
        let mut first: Option<Fault> = None;
        // Faults raised while delivering are almost always contributory or
        // #PF (SDM Table 6-4), so the table reaches #DF by the fourth
        // delivery (#UD, #NP, #PF, #DF) and shutdown right after. A benign
        // one (#AC from a frame pushed at CPL 3 through a conforming
        // handler or a task gate, say) is delivered serially and could
        // repeat for ever: the bound ends that as a shutdown too.
        for _ in 0..MAX_DELIVERY_STEPS {
            self.last_exception = Some(current);
            match self.interrupt(bus, current.vector, Source::Exception, current.error) {
                Ok(()) => return,
                Err(second) => {
                    let prev = first.unwrap_or(current);
                    if prev.vector == 8 || current.vector == 8 {
                        log::warn!(
                            "triple fault ({} while delivering {}): shutdown",
                            second,
                            current
                        );
                        self.shutdown = true;
                        self.attention |= crate::processor::ATTN_STOP;
                        return;
                    }
                    let pf_class = |f: Fault| f.vector == 14;
                    let double = (current.contributory() && second.contributory())
                        || (pf_class(current) && (second.contributory() || pf_class(second)));
                    first = Some(current);
                    current = if double {
                        Fault::with_error(Vector::DoubleFault, 0)
                    } else {
                        second
                    };
                }
            }
        }
        log::warn!("{current} still faulting after {MAX_DELIVERY_STEPS} deliveries: shutdown");
        self.shutdown = true;
        self.attention |= crate::processor::ATTN_STOP;
    }

    /// Deliver an interrupt or exception: through the IVT in real mode,
    /// through an IDT gate otherwise.
    pub(crate) fn interrupt(
        &mut self,
        bus: &mut dyn Bus,
        vector: u8,
        source: Source,
        error: Option<u32>,
    ) -> Result<(), Fault> {
        if self.cr[0] & crate::regs::cr0::PE == 0 {
            return self.real_mode_interrupt(bus, vector);
        }
        let ext = (source != Source::Software) as u32;
        self.protected_mode_interrupt(bus, vector, source, error, ext)
            .map_err(|f| with_ext(f, ext))
    }

    /// Delivery through the IDT (SDM Vol. 3A §6.10–6.14, and §20.3 for an
    /// interrupt taken in virtual-8086 mode).
    fn protected_mode_interrupt(
        &mut self,
        bus: &mut dyn Bus,
        vector: u8,
        source: Source,
        error: Option<u32>,
        ext: u32,
    ) -> Result<(), Fault> {
        let idt_err = vector as u32 * 8 + 2;
        if vector as u32 * 8 + 7 > self.idtr.limit as u32 {
            return Err(Fault::gp(idt_err));
        }
        let gate = self.read_descriptor_at(bus, self.idtr.base.wrapping_add(vector as u32 * 8))?;
        let typ = gate.typ();
        if gate.is_code_data()
            || !matches!(
                typ,
                sys::TASK_GATE
                    | sys::INT_GATE16
                    | sys::TRAP_GATE16
                    | sys::INT_GATE32
                    | sys::TRAP_GATE32
            )
        {
            return Err(Fault::gp(idt_err));
        }
        // INT n, INT3 and INTO may only use gates at or above the CPL.
        if source == Source::Software && gate.dpl() < self.cpl {
            return Err(Fault::gp(idt_err));
        }
        if !gate.present() {
            return Err(Fault::with_error(Vector::SegmentNotPresent, idt_err));
        }
        if typ == sys::TASK_GATE {
            let tss = gate.gate_selector();
            return self.task_switch(
                bus,
                tss,
                if source == Source::Software {
                    crate::task::SwitchKind::Interrupt
                } else {
                    crate::task::SwitchKind::Event
                },
                error.filter(|_| has_error_code(vector)),
            );
        }
        let sel = gate.gate_selector();
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_descriptor(bus, sel)?;
        if !d.is_code() || d.dpl() > self.cpl {
            return Err(gp_sel(sel));
        }
        if !d.present() {
            return Err(np_sel(sel));
        }
        let offset = gate.gate_offset();
        if offset > d.limit() {
            return Err(Fault::gp(0));
        }
        let size: u8 = if gate.sys32() { 4 } else { 2 };
        let v86 = self.flags.control(VM);
        // Faults push RF set, so the IRET back re-executes the instruction
        // without re-triggering an instruction breakpoint (SDM Vol. 3B
        // §17.3.1.1); traps and interrupts push it as it is.
        let fault_class = source == Source::Exception && !matches!(vector, 1..=4);
        let old_flags = self.flags.get() | if fault_class { RF } else { 0 };
        let old_cs = self.segs[SegReg::Cs as usize].selector as u32;
        let old_eip = self.eip;
        let old_ss = self.segs[SegReg::Ss as usize].selector as u32;
        let old_esp = self.regs[crate::gpr::ESP];
        let saved = (self.segs, self.regs[crate::gpr::ESP], self.cpl, self.flags);
        let new_cpl = if !d.conforming() && d.dpl() < self.cpl {
            d.dpl()
        } else {
            self.cpl
        };
        let result = (|| -> Result<(), Fault> {
            if new_cpl < self.cpl {
                if v86 && new_cpl != 0 {
                    return Err(gp_sel(sel));
                }
                let (ss, esp) = self.tss_stack(bus, new_cpl)?;
                self.load_stack_for_ring(bus, ss, esp, new_cpl)?;
                let stack_fault = |f: Fault| {
                    if f.vector == Vector::StackFault as u8 {
                        ss_sel(ss)
                    } else {
                        f
                    }
                };
                if v86 {
                    for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                        let v = saved.0[s as usize].selector as u32;
                        self.push(bus, size, v).map_err(stack_fault)?;
                    }
                }
                self.push(bus, size, old_ss).map_err(stack_fault)?;
                self.push(bus, size, old_esp).map_err(stack_fault)?;
                self.push(bus, size, old_flags).map_err(stack_fault)?;
                self.push(bus, size, old_cs).map_err(stack_fault)?;
                self.push(bus, size, old_eip).map_err(stack_fault)?;
                if let Some(e) = error.filter(|_| has_error_code(vector)) {
                    self.push(bus, size, e).map_err(stack_fault)?;
                }
                if v86 {
                    for s in [SegReg::Gs, SegReg::Fs, SegReg::Ds, SegReg::Es] {
                        self.segs[s as usize] = Segment {
                            selector: 0,
                            base: 0,
                            limit: 0,
                            attrs: 0,
                        };
                    }
                }
            } else {
                if v86 {
                    return Err(gp_sel(sel));
                }
                self.push(bus, size, old_flags)?;
                self.push(bus, size, old_cs)?;
                self.push(bus, size, old_eip)?;
                if let Some(e) = error.filter(|_| has_error_code(vector)) {
                    self.push(bus, size, e)?;
                }
            }
            Ok(())
        })();
        if let Err(f) = result {
            (self.segs, self.regs[crate::gpr::ESP], self.cpl, self.flags) = saved;
            return Err(f);
        }
        self.set_accessed(bus, sel, d)?;
        let cs_sel = (sel & 0xFFFC) | new_cpl as u16;
        self.segs[SegReg::Cs as usize] = d.to_segment(cs_sel);
        self.cpl = new_cpl;
        self.eip = offset;
        let mut f = self.flags.get() & !(TF | flags::NT | VM | RF);
        if matches!(typ, sys::INT_GATE16 | sys::INT_GATE32) {
            f &= !IF;
        }
        self.flags.set(f);
        self.halted = false;
        let _ = ext;
        Ok(())
    }

    /// SS:ESP for ring `dpl` from the current TSS (SDM Vol. 3A §7.2.1).
    pub(crate) fn tss_stack(&mut self, bus: &mut dyn Bus, dpl: u8) -> Result<(u16, u32), Fault> {
        let tss32 = self.tr.attrs & 0x8 != 0;
        let base = self.tr.base;
        if tss32 {
            let off = 4 + dpl as u32 * 8;
            if off + 5 > self.tr.limit {
                return Err(ts_sel(self.tr.selector));
            }
            let esp = self.read_system_u32(bus, base.wrapping_add(off))?;
            let ss = self.read_system_u16(bus, base.wrapping_add(off + 4))?;
            Ok((ss, esp))
        } else {
            let off = 2 + dpl as u32 * 4;
            if off + 3 > self.tr.limit {
                return Err(ts_sel(self.tr.selector));
            }
            let sp = self.read_system_u16(bus, base.wrapping_add(off))? as u32;
            let ss = self.read_system_u16(bus, base.wrapping_add(off + 2))?;
            Ok((ss, sp))
        }
    }

    /// Load SS:ESP for an inner ring with the checks of SDM Vol. 3A §6.12.1
    /// and Vol. 2A CALL (#TS for a bad stack selector, #SS if not present).
    pub(crate) fn load_stack_for_ring(
        &mut self,
        bus: &mut dyn Bus,
        ss: u16,
        esp: u32,
        ring: u8,
    ) -> Result<(), Fault> {
        if ss & 0xFFFC == 0 {
            return Err(ts_sel(0));
        }
        let Some(a) = self.descriptor_addr(ss) else {
            return Err(ts_sel(ss));
        };
        let d = self.read_descriptor_at(bus, a)?;
        if (ss & 3) as u8 != ring || d.dpl() != ring || !d.writable() {
            return Err(ts_sel(ss));
        }
        if !d.present() {
            return Err(ss_sel(ss));
        }
        self.set_accessed(bus, ss, d)?;
        self.segs[SegReg::Ss as usize] = d.to_segment(ss);
        self.regs[crate::gpr::ESP] = if d.big() {
            esp
        } else {
            (self.regs[crate::gpr::ESP] & 0xFFFF_0000) | (esp & 0xFFFF)
        };
        self.cpl = ring;
        Ok(())
    }

    fn real_mode_interrupt(&mut self, bus: &mut dyn Bus, vector: u8) -> Result<(), Fault> {
        let off = vector as u32 * 4;
        if off + 3 > self.idtr.limit as u32 {
            // SDM Vol. 3A §20.1.4: a vector beyond the IVT limit is a #GP.
            return Err(Fault::gp(0));
        }
        let ip = self.read_system_u16(bus, self.idtr.base.wrapping_add(off))?;
        let cs = self.read_system_u16(bus, self.idtr.base.wrapping_add(off + 2))?;
        let flags = self.flags.get();
        let old_cs = self.segs[SegReg::Cs as usize].selector;
        let old_ip = self.eip;
        let saved_sp = self.regs[crate::gpr::ESP];
        let pushed = self
            .push(bus, 2, flags & 0xFFFF)
            .and_then(|_| self.push(bus, 2, old_cs as u32))
            .and_then(|_| self.push(bus, 2, old_ip & 0xFFFF));
        if let Err(f) = pushed {
            self.regs[crate::gpr::ESP] = saved_sp;
            return Err(f);
        }
        self.flags.set_control(IF | TF | AC | RF, false);
        self.load_seg_real(SegReg::Cs, cs);
        self.eip = ip as u32;
        self.halted = false;
        Ok(())
    }

    /// An external interrupt with vector `vector` (already acknowledged).
    pub(crate) fn external_interrupt(&mut self, bus: &mut dyn Bus, vector: u8) {
        self.cycles += DELIVERY_CYCLES;
        self.halted = false;
        self.interrupts_delivered += 1;
        let (cpl, mode, paging, tr) = (
            self.cpl,
            self.mode(),
            self.cr[0] & crate::regs::cr0::PG != 0,
            self.tr.selector,
        );
        self.emit(|| Event::Interrupt { vector, cpl });
        if let Err(f) = self.interrupt(bus, vector, Source::External, None) {
            self.deliver_fault(bus, f);
        }
        self.emit_state_changes(cpl, mode, paging, tr, "hardware interrupt");
    }
}
