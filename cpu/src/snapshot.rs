//! The processor's state for snapshots (serde): registers, segment
//! registers with their descriptor caches, EFLAGS with the lazy status
//! flags materialized, CRs, DRs, MSRs, the x87, the interrupt and halt
//! state, the clocks and counters, and memory ([`MemState`]). Not kept:
//! the TLB (flushed on restore), the decode cache (dropped), host
//! breakpoints and observers (the debugger's, they stay as they are).

use ringside_mmu::snapshot::{MemState, RamRef};
use serde::{Deserialize, Serialize};

use crate::fpu::f80::F80;
use crate::processor::Cpu;
use crate::regs::{Segment, TableReg};
use crate::Fault;

/// A segment register: selector and descriptor cache (base, limit, attrs).
type SegState = (u16, u32, u32, u16);

fn seg(s: &Segment) -> SegState {
    (s.selector, s.base, s.limit, s.attrs)
}

fn unseg(s: SegState) -> Segment {
    Segment {
        selector: s.0,
        base: s.1,
        limit: s.2,
        attrs: s.3,
    }
}

/// The x87's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FpuState {
    /// R0–R7 as (significand, sign and exponent).
    pub regs: [(u64, u16); 8],
    /// Control word, status word (without TOP), TOP, in-use bits.
    pub cw: u16,
    /// Status word without TOP.
    pub sw: u16,
    /// Top of stack.
    pub top: u8,
    /// In-use bits.
    pub valid: u8,
    /// Last instruction and operand pointers: FIP, FCS, its linear address,
    /// FDP, FDS.
    pub pointers: (u32, u16, u32, u32, u16),
    /// FERR#.
    pub ferr: bool,
}

/// Everything the processor holds that decides what it does next; `M`
/// is the memory's state ([`MemState`], RAM owned or borrowed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuState<M = MemState> {
    /// EAX..EDI.
    pub regs: [u32; 8],
    /// EIP.
    pub eip: u32,
    /// EFLAGS, status flags computed.
    pub eflags: u32,
    /// ES, CS, SS, DS, FS, GS with their caches.
    pub segs: [SegState; 6],
    /// LDTR and TR with their caches.
    pub ldtr: SegState,
    /// Task register.
    pub tr: SegState,
    /// GDTR and IDTR (base, limit).
    pub gdtr: (u32, u16),
    /// IDTR.
    pub idtr: (u32, u16),
    /// CR0, (CR1), CR2, CR3, CR4.
    pub cr: [u32; 5],
    /// DR0–DR7.
    pub dr: [u32; 8],
    /// SYSENTER_CS/ESP/EIP.
    pub sysenter: [u32; 3],
    /// CPL.
    pub cpl: u8,
    /// Pending #DB trap, NMI blocked, NMI pending, halted, shut down.
    pub pending: (bool, bool, bool, bool, bool),
    /// Instruction count at which interrupts are inhibited (STI/MOV SS).
    pub inhibit_at: u64,
    /// Cycles, instructions, interrupts delivered, exceptions raised, TSC
    /// offset.
    pub counters: (u64, u64, u64, u64, u64),
    /// The last exception delivered (vector, error code).
    pub last_exception: Option<(u8, Option<u32>)>,
    /// The x87.
    pub fpu: FpuState,
    /// System-management mode: in SMM, SMBASE, SMI pending, NMI blocking
    /// and #DB trap saved at entry.
    pub smm: (bool, u32, bool, bool, bool),
    /// Physical memory.
    pub mem: M,
}

impl Cpu {
    /// The processor's state (and its memory's) for a snapshot.
    pub fn save_state(&self) -> CpuState<MemState<RamRef<'_>>> {
        let f = &self.fpu;
        CpuState {
            regs: self.regs,
            eip: self.eip,
            eflags: self.flags.get(),
            segs: std::array::from_fn(|i| seg(&self.segs[i])),
            ldtr: seg(&self.ldtr),
            tr: seg(&self.tr),
            gdtr: (self.gdtr.base, self.gdtr.limit),
            idtr: (self.idtr.base, self.idtr.limit),
            cr: self.cr,
            dr: self.dr,
            sysenter: self.sysenter,
            cpl: self.cpl,
            pending: (
                self.pending_debug_trap,
                self.nmi_blocked,
                self.nmi_pending,
                self.halted,
                self.shutdown,
            ),
            inhibit_at: self.inhibit_at,
            counters: (
                self.cycles,
                self.instructions,
                self.interrupts_delivered,
                self.exceptions_raised,
                self.tsc_offset,
            ),
            last_exception: self.last_exception.map(|e| (e.vector, e.error)),
            fpu: FpuState {
                regs: std::array::from_fn(|i| (f.regs[i].sig, f.regs[i].se)),
                cw: f.cw,
                sw: f.sw,
                top: f.top,
                valid: f.valid,
                pointers: (f.fip, f.fcs, f.fip_linear, f.fdp, f.fds),
                ferr: f.ferr,
            },
            smm: (
                self.smm.active,
                self.smm.smbase,
                self.smm.pending,
                self.smm.saved_nmi_blocked,
                self.smm.saved_debug_trap,
            ),
            mem: self.mem.save_state(),
        }
    }

    /// Take `s` as the processor's state. The TLB is flushed and the decode
    /// cache dropped; host breakpoints and the observer stay. Fails (and
    /// changes nothing) when the snapshot's memory size differs.
    pub fn restore_state<R: AsRef<[u8]>>(
        &mut self,
        s: &CpuState<MemState<R>>,
    ) -> Result<(), String> {
        self.mem.restore_state(&s.mem)?;
        self.regs = s.regs;
        self.eip = s.eip;
        self.flags.set(s.eflags);
        for (d, v) in self.segs.iter_mut().zip(s.segs) {
            *d = unseg(v);
        }
        self.ldtr = unseg(s.ldtr);
        self.tr = unseg(s.tr);
        self.gdtr = TableReg {
            base: s.gdtr.0,
            limit: s.gdtr.1,
        };
        self.idtr = TableReg {
            base: s.idtr.0,
            limit: s.idtr.1,
        };
        self.cr = s.cr;
        self.dr = s.dr;
        self.sysenter = s.sysenter;
        self.cpl = s.cpl;
        (
            self.pending_debug_trap,
            self.nmi_blocked,
            self.nmi_pending,
            self.halted,
            self.shutdown,
        ) = s.pending;
        self.inhibit_at = s.inhibit_at;
        (
            self.cycles,
            self.instructions,
            self.interrupts_delivered,
            self.exceptions_raised,
            self.tsc_offset,
        ) = s.counters;
        self.last_exception = s
            .last_exception
            .map(|(vector, error)| Fault { vector, error });
        let f = &mut self.fpu;
        for (r, &(sig, se)) in f.regs.iter_mut().zip(&s.fpu.regs) {
            *r = F80 { sig, se };
        }
        f.cw = s.fpu.cw;
        f.sw = s.fpu.sw;
        f.top = s.fpu.top;
        f.valid = s.fpu.valid;
        (f.fip, f.fcs, f.fip_linear, f.fdp, f.fds) = s.fpu.pointers;
        f.ferr = s.fpu.ferr;
        (
            self.smm.active,
            self.smm.smbase,
            self.smm.pending,
            self.smm.saved_nmi_blocked,
            self.smm.saved_debug_trap,
        ) = s.smm;
        self.paging = self.cr[0] & crate::regs::cr0::PG != 0;
        self.update_breakpoints();
        self.tlb.flush(ringside_mmu::FlushCause::ControlBits, false);
        self.observed_mnemonic = None;
        self.observed_at = None;
        // Look at the INTR line at the next boundary, and drop the decode
        // cache (its code-page marks went with the memory restore).
        self.attention = 0;
        self.poll_interrupts();
        self.flush_decode_cache();
        Ok(())
    }
}
