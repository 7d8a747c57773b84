//! The observable facts a teacher or a debugger wants: exceptions,
//! interrupts, ring changes, mode changes, task switches, privileged
//! instructions that trapped, and sensitive instructions that ran at CPL > 0
//! *without* trapping (the Robin & Irvine set, USENIX Security 2000, that
//! keeps x86 from being classically virtualizable).
//!
//! The CPU emits them only when an [`Observer`] is attached
//! ([`Cpu::set_observer`]). Without one the run loop pays a single
//! predictable branch per instruction: instructions run through an observed
//! copy of the execute path only while someone listens.

use iced_x86::Mnemonic;

use crate::processor::{Cpu, CpuMode};

/// One event, with the facts that decided it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An exception was raised (before delivery). `mnemonic` is the
    /// instruction that raised it, when one did.
    Exception {
        /// Vector.
        vector: u8,
        /// Error code, if the vector has one.
        error: Option<u32>,
        /// CS:EIP the exception reports.
        cs: u16,
        /// EIP the exception reports.
        eip: u32,
        /// CPL when it was raised.
        cpl: u8,
        /// Faulting instruction, if any.
        mnemonic: Option<Mnemonic>,
    },
    /// A hardware interrupt (INTR) was accepted.
    Interrupt {
        /// Vector from the interrupt controller.
        vector: u8,
        /// CPL when it was taken.
        cpl: u8,
    },
    /// A software interrupt instruction (INT n, INT3, INTO) ran.
    SoftwareInterrupt {
        /// Vector.
        vector: u8,
        /// CPL of the caller.
        cpl: u8,
    },
    /// The privilege level changed.
    RingChange {
        /// CPL before.
        from: u8,
        /// CPL after.
        to: u8,
        /// What did it: the instruction, or "interrupt"/"exception".
        cause: &'static str,
    },
    /// The operating mode or paging changed.
    ModeChange {
        /// Mode before.
        from: CpuMode,
        /// Mode after.
        to: CpuMode,
        /// CR0.PG after.
        paging: bool,
    },
    /// A hardware task switch happened.
    TaskSwitch {
        /// TR before.
        from: u16,
        /// TR after.
        to: u16,
    },
    /// A privileged or IOPL-sensitive instruction trapped (#GP at CPL > 0,
    /// or in virtual-8086 mode).
    PrivilegedTrap {
        /// The instruction.
        mnemonic: Mnemonic,
        /// CPL at the time.
        cpl: u8,
    },
    /// A sensitive instruction ran at CPL > 0 (or in virtual-8086 mode)
    /// without trapping: a trap-and-emulate monitor would never see it.
    SensitiveUntrapped {
        /// The instruction.
        mnemonic: Mnemonic,
        /// CPL at the time.
        cpl: u8,
        /// Why it matters.
        why: &'static str,
    },
    /// The TLB was flushed (wholly, of non-global entries, or one page).
    TlbFlush {
        /// Why.
        cause: ringside_mmu::FlushCause,
    },
    /// A page walk filled the TLB.
    TlbFill {
        /// Linear address walked.
        linear: u32,
        /// Physical address it maps to.
        phys: u32,
    },
    /// A write to our BIOS's service port (0xE0): a hypercall, the
    /// paravirtual counterpart of a trap. Reported by the machine, which
    /// services it between instructions.
    Hypercall {
        /// Service number (the byte written).
        service: u8,
        /// The BIOS routine that made it (from the BIOS symbol table).
        routine: &'static str,
        /// Whether it ran (only the BIOS ROM's own code in real mode may).
        honoured: bool,
    },
    /// An SMI was taken: the state went to SMRAM and the processor runs
    /// the SMM handler at SMBASE + 0x8000.
    SmmEntry {
        /// SMBASE (where SMRAM and the state-save map are).
        smbase: u32,
        /// CS selector where the SMI struck (saved in the state-save map).
        cs: u16,
        /// EIP where the SMI struck.
        eip: u32,
        /// The processor was halted (the auto-HALT restart field says so).
        halted: bool,
    },
    /// RSM left system-management mode.
    Rsm {
        /// SMBASE from now on (the handler may have relocated it).
        smbase: u32,
    },
    /// A control register was written.
    ControlRegisterWrite {
        /// Which (0, 2, 3, 4).
        cr: u8,
        /// Old value.
        old: u32,
        /// New value.
        new: u32,
    },
}

/// Receives events. Implemented by the trap log, the debugger, statistics.
pub trait Observer {
    /// One event, in the order the CPU produced them.
    fn event(&mut self, e: &Event);
    /// The same, with the processor lent read-only for context (cycles,
    /// CS:EIP, the instruction via [`Cpu::observed_instruction`], the
    /// descriptor tables in memory). By default calls [`Observer::event`].
    fn event_on(&mut self, e: &Event, _cpu: &Cpu) {
        self.event(e)
    }
    /// Whether the CPU should stop at the next instruction boundary (a
    /// debugger's catchpoint matched); asked after each event.
    fn wants_stop(&self) -> bool {
        false
    }
}

/// An observer that keeps every event in a shared list, for tests and small
/// tools: clone it, attach one copy, read the other.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    events: std::sync::Arc<std::sync::Mutex<Vec<Event>>>,
}

impl Recorder {
    /// The events recorded so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Observer for Recorder {
    fn event(&mut self, e: &Event) {
        if let Ok(mut v) = self.events.lock() {
            v.push(e.clone());
        }
    }
}
