//! Exception and interrupt delivery.
//!
//! Instruction handlers return `Err(Fault)`; the run loop hands the fault to
//! [`Cpu::deliver_fault`], the one place that builds exception frames. Real
//! mode uses the IVT (SDM Vol. 3A §20.1.4); a fault raised while delivering
//! another is combined by the double-fault rules of SDM Vol. 3A §6.15,
//! Table 6-5, and a fault while delivering #DF shuts the processor down
//! (triple fault).

use crate::flags::{AC, IF, RF, TF};
use crate::processor::Cpu;
use crate::regs::SegReg;
use crate::Bus;

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
        let mut current = fault;
        // Walk the double-fault table: a fault while delivering becomes the
        // next thing to deliver, combined by class.
        let mut first: Option<Fault> = None;
        loop {
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
    }

    /// Deliver an interrupt or exception through the IVT (real mode).
    pub(crate) fn interrupt(
        &mut self,
        bus: &mut dyn Bus,
        vector: u8,
        source: Source,
        _error: Option<u32>,
    ) -> Result<(), Fault> {
        let _ = source;
        self.real_mode_interrupt(bus, vector)
    }

    fn real_mode_interrupt(&mut self, bus: &mut dyn Bus, vector: u8) -> Result<(), Fault> {
        let off = vector as u32 * 4;
        if off + 3 > self.idtr.limit as u32 {
            // SDM Vol. 3A §20.1.4: a vector beyond the IVT limit is a #GP.
            return Err(Fault::gp(0));
        }
        let ip = self.read_linear_u16(bus, self.idtr.base.wrapping_add(off));
        let cs = self.read_linear_u16(bus, self.idtr.base.wrapping_add(off + 2));
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
        if let Err(f) = self.interrupt(bus, vector, Source::External, None) {
            self.deliver_fault(bus, f);
        }
    }
}
