//! The processor state and the fetch–execute loop.

use iced_x86::Register;
use ringside_mmu::PhysMem;

use crate::decode::{decode_bytes, DecodeCache, Decoded, Entry, Link, LINK_NONE};
use crate::events::{Event, Observer};
use crate::exec;
use crate::flags::{self, Flags};
use crate::interrupt::{Fault, Vector};
use crate::regs::{cr0, gpr, SegReg, Segment, TableReg};
use crate::Bus;

/// Operating mode, as the debugger and the teaching views name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuMode {
    /// Real-address mode (CR0.PE = 0).
    Real,
    /// Protected mode.
    Protected,
    /// Virtual-8086 mode.
    Virtual8086,
}

/// Why [`Cpu::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The cycle or instruction budget ran out.
    Budget,
    /// An instruction did port I/O or changed the interrupt flag: the board
    /// may want to look (exit port, A20, a newly unmasked IRQ).
    Yield,
    /// HLT executed; the CPU waits for an interrupt.
    Halted,
    /// Triple fault: the processor shut down.
    Shutdown,
}

const ATTN_IRQ: u32 = 1;
const ATTN_YIELD: u32 = 2;
const ATTN_FLUSH: u32 = 4;
/// The CPU halted or shut down: the run loop looks at `halted` and
/// `shutdown` only when some attention bit is set, so whatever sets either
/// sets this too.
pub(crate) const ATTN_STOP: u32 = 8;
/// A store hit a page with decoded code ([`PhysMem::smc_pending`]): every
/// CPU store that can queue one goes through `Cpu::write_phys_other` or the
/// page walk, which set this, so the loop tests one word, not the queue.
/// Stores from outside (the host, DMA) happen between runs, and `run`
/// starts with attention raised.
pub(crate) const ATTN_SMC: u32 = 16;

/// An x86 processor (P6-class integer core; real mode in this milestone).
pub struct Cpu {
    /// General-purpose registers in encoding order (EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI).
    pub regs: [u32; 8],
    /// Instruction pointer (offset in CS).
    pub eip: u32,
    /// EFLAGS with lazily evaluated status flags.
    pub flags: Flags,
    /// Segment registers with their descriptor caches, indexed by [`SegReg`].
    pub segs: [Segment; 6],
    /// Control registers CR0, CR2, CR3, CR4 (index 1 unused).
    pub cr: [u32; 5],
    /// Debug registers DR0–DR7 (DR4/DR5 alias DR6/DR7).
    pub dr: [u32; 8],
    /// Global descriptor table register.
    pub gdtr: TableReg,
    /// Interrupt descriptor table register (the IVT in real mode).
    pub idtr: TableReg,
    /// Local descriptor table register (selector and descriptor cache).
    pub ldtr: Segment,
    /// Task register (selector and descriptor cache of the current TSS).
    pub tr: Segment,
    /// SYSENTER_CS/ESP/EIP MSRs (0x174–0x176).
    pub sysenter: [u32; 3],
    /// Current privilege level. Kept apart from CS.RPL because right after
    /// CR0.PE is set CS still holds a real-mode selector while CPL is 0.
    pub(crate) cpl: u8,
    /// A #DB trap waits for the next instruction boundary (TSS T bit, data
    /// breakpoint).
    pub(crate) pending_debug_trap: bool,
    /// An NMI handler is running: further NMIs wait for the next IRET.
    pub(crate) nmi_blocked: bool,
    /// An NMI arrived while blocked and waits for the IRET.
    pub(crate) nmi_pending: bool,
    /// System-management mode (see [`crate::smm`]).
    pub(crate) smm: crate::smm::Smm,
    /// DR7 enables an instruction breakpoint.
    pub(crate) bp_exec: bool,
    /// DR7 enables a data breakpoint.
    pub(crate) bp_data: bool,
    /// Host (debugger) breakpoints and watchpoints; see [`crate::debug`].
    pub(crate) host: crate::debug::HostDebug,
    /// Who listens to events (see [`crate::events`]); `None` costs one branch.
    pub(crate) observer: Option<Box<dyn Observer + Send>>,
    /// The instruction being executed, while an observer listens.
    pub(crate) observed_mnemonic: Option<iced_x86::Mnemonic>,
    /// The instruction being executed and the CS:EIP it started at, while
    /// an observer listens (see [`Cpu::observed_instruction`]).
    pub(crate) observed_at: Option<(u16, u32, u32, iced_x86::Instruction)>,
    /// Guest physical memory.
    pub mem: PhysMem,
    /// The software TLB (combined instruction/data).
    pub tlb: ringside_mmu::Tlb,
    /// CR0.PG, cached for the memory fast path.
    pub(crate) paging: bool,
    /// Virtual clock, in CPU cycles since power-on.
    pub cycles: u64,
    /// Instructions retired since power-on.
    pub instructions: u64,
    /// External interrupts delivered since power-on.
    pub interrupts_delivered: u64,
    /// Exceptions raised since power-on.
    pub exceptions_raised: u64,
    /// Time-stamp counter offset (RDTSC returns cycles + this).
    pub tsc_offset: u64,
    /// The decoded-instruction cache.
    pub decode_cache: DecodeCache,
    /// The last exception delivered (for the run summary and the debugger).
    pub last_exception: Option<Fault>,
    /// The x87 floating-point unit.
    pub fpu: crate::fpu::Fpu,
    pub(crate) halted: bool,
    pub(crate) shutdown: bool,
    /// Instruction count at which interrupts are inhibited (STI / MOV SS
    /// shadow; also a debugger's step paused inside a REP, see `Cpu::step`).
    pub(crate) inhibit_at: u64,
    /// Instruction count at which debug traps are held off: the boundary
    /// after MOV SS / POP SS (SDM Vol. 3A §6.8.3). STI's shadow holds off
    /// interrupts only. Not in snapshots (a snapshot taken right after a
    /// MOV SS with a debug trap due loses the delay).
    pub(crate) trap_inhibit_at: u64,
    /// Instruction count after an INT n / INT3 / INTO / INT1 that entered its
    /// handler with EFLAGS.TF set: that instruction raises no single-step
    /// trap (see [`Cpu::single_step_trap`]).
    pub(crate) step_cancel_at: u64,
    /// [`Cpu::step`] is executing: a REP string instruction stops after one
    /// iteration (see `exec::string`).
    pub(crate) host_step: bool,
    pub(crate) attention: u32,
    smc_scratch: Vec<u32>,
}

impl std::fmt::Debug for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cpu")
            .field("regs", &self.regs)
            .field("eip", &self.eip)
            .field("eflags", &self.flags.get())
            .field("segs", &self.segs)
            .finish_non_exhaustive()
    }
}

impl Cpu {
    /// A processor in its power-on state with `mem` as its memory.
    pub fn new(mem: PhysMem) -> Cpu {
        let mut c = Cpu {
            regs: [0; 8],
            eip: 0,
            flags: Flags::default(),
            segs: [Segment::default(); 6],
            cr: [0; 5],
            dr: [0; 8],
            gdtr: TableReg::default(),
            idtr: TableReg::default(),
            ldtr: Segment::default(),
            tr: Segment::default(),
            sysenter: [0; 3],
            cpl: 0,
            pending_debug_trap: false,
            bp_exec: false,
            nmi_blocked: false,
            nmi_pending: false,
            smm: crate::smm::Smm::default(),
            bp_data: false,
            host: Default::default(),
            observer: None,
            observed_mnemonic: None,
            observed_at: None,
            mem,
            tlb: ringside_mmu::Tlb::default(),
            paging: false,
            cycles: 0,
            instructions: 0,
            interrupts_delivered: 0,
            exceptions_raised: 0,
            tsc_offset: 0,
            decode_cache: DecodeCache::new(),
            last_exception: None,
            halted: false,
            shutdown: false,
            inhibit_at: u64::MAX,
            trap_inhibit_at: u64::MAX,
            step_cancel_at: u64::MAX,
            host_step: false,
            attention: ATTN_IRQ,
            smc_scratch: Vec::with_capacity(16),
            fpu: crate::fpu::Fpu::default(),
        };
        c.reset();
        c
    }

    /// RESET: the state of SDM Vol. 3A Table 9-1. CS selector F000 with base
    /// FFFF0000 so the first fetch is at FFFFFFF0; EDX holds the CPU
    /// signature (family 6, model 3, stepping 3: a Pentium II).
    pub fn reset(&mut self) {
        self.regs = [0; 8];
        self.regs[gpr::EDX] = 0x0633;
        self.eip = 0xFFF0;
        self.flags = Flags::new(flags::RESERVED1);
        for s in SegReg::ALL {
            self.segs[s as usize] = Segment::real(0);
        }
        self.segs[SegReg::Cs as usize] = Segment {
            selector: 0xF000,
            base: 0xFFFF_0000,
            limit: 0xFFFF,
            attrs: 0x9B,
        };
        self.cr = [cr0::ET | cr0::CD | cr0::NW, 0, 0, 0, 0];
        self.paging = false;
        self.tlb.flush(ringside_mmu::FlushCause::ControlBits, false);
        self.dr = [0, 0, 0, 0, 0, 0, 0xFFFF_0FF0, 0x400];
        self.gdtr = TableReg {
            base: 0,
            limit: 0xFFFF,
        };
        self.idtr = TableReg {
            base: 0,
            limit: 0x3FF,
        };
        self.halted = false;
        self.shutdown = false;
        self.inhibit_at = u64::MAX;
        self.trap_inhibit_at = u64::MAX;
        self.attention = ATTN_IRQ | ATTN_FLUSH;
        self.last_exception = None;
        self.fpu.reset();
        self.ldtr = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF,
            attrs: 0x82,
        };
        self.tr = Segment {
            selector: 0,
            base: 0,
            limit: 0xFFFF,
            attrs: 0x8B,
        };
        self.sysenter = [0; 3];
        self.cpl = 0;
        self.pending_debug_trap = false;
        self.nmi_blocked = false;
        self.nmi_pending = false;
        // RESET leaves SMM and puts SMBASE back to its default.
        self.smm = crate::smm::Smm::default();
        self.mem.set_smm(false);
        // DR7 is clear again; the host debugger's own points stay armed.
        self.update_breakpoints();
    }

    /// Current operating mode.
    pub fn mode(&self) -> CpuMode {
        if self.cr[0] & cr0::PE == 0 {
            CpuMode::Real
        } else if self.flags.control(flags::VM) {
            CpuMode::Virtual8086
        } else {
            CpuMode::Protected
        }
    }

    /// Current privilege level (0 in real mode, 3 in virtual-8086 mode).
    #[inline(always)]
    pub fn cpl(&self) -> u8 {
        self.cpl
    }

    /// Set the CPL. The CPU keeps it itself on every CS load and mode
    /// change; this is for restoring a saved state (snapshots, debuggers,
    /// test harnesses that build a protected-mode state directly).
    pub fn set_cpl(&mut self, cpl: u8) {
        self.cpl = cpl;
    }

    /// Whether protected-mode segment checks apply (PE=1 and not V86).
    #[inline(always)]
    pub(crate) fn protected(&self) -> bool {
        self.cr[0] & cr0::PE != 0 && !self.flags.control(flags::VM)
    }

    /// Whether the CPU is halted waiting for an interrupt.
    pub fn is_halted(&self) -> bool {
        self.halted
    }

    /// Leave the halt state without an interrupt (debuggers, test harnesses
    /// that reuse a CPU; a guest leaves HLT only through an interrupt).
    pub fn wake(&mut self) {
        self.halted = false;
    }

    /// Whether a triple fault shut the CPU down.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown
    }

    /// EFLAGS as the guest would see it.
    pub fn eflags(&self) -> u32 {
        self.flags.get()
    }

    /// Replace EFLAGS. Entering or leaving virtual-8086 mode changes CPL.
    pub fn set_eflags(&mut self, v: u32) {
        let was_vm = self.flags.control(flags::VM);
        self.flags.set(v);
        let vm = self.flags.control(flags::VM);
        if vm != was_vm {
            self.cpl = if vm {
                3
            } else {
                (self.segs[SegReg::Cs as usize].selector & 3) as u8
            };
        }
        self.attention |= ATTN_IRQ;
    }

    /// Load a segment register as real mode does: selector and base only.
    pub fn load_seg_real(&mut self, s: SegReg, sel: u16) {
        let seg = &mut self.segs[s as usize];
        seg.selector = sel;
        seg.base = (sel as u32) << 4;
    }

    /// Write a control register with the checks of SDM Vol. 2B "MOV—Move
    /// to/from Control Registers" and the TLB flushes of Vol. 3A §4.10.4:
    /// CR3 drops non-global entries; a change of CR0.PG/WP or CR4.PGE/PSE/PAE
    /// drops everything.
    pub(crate) fn write_cr(&mut self, n: usize, v: u32) -> Result<(), Fault> {
        let old = self.cr;
        match n {
            0 => {
                // PG without PE, or NW without CD, is #GP(0).
                if (v & cr0::PG != 0 && v & cr0::PE == 0) || (v & cr0::NW != 0 && v & cr0::CD == 0)
                {
                    return Err(Fault::gp(0));
                }
                self.cr[0] = (v & 0xE005_003F) | cr0::ET;
                if v & cr0::PE == 0 {
                    self.cpl = 0;
                }
                self.paging = self.cr[0] & cr0::PG != 0;
                if (old[0] ^ self.cr[0]) & (cr0::PG | cr0::WP) != 0 {
                    self.flush_tlb(ringside_mmu::FlushCause::ControlBits, false);
                }
                self.request_yield();
            }
            2 => self.cr[2] = v,
            3 => {
                self.cr[3] = v
                    & 0xFFFF_FFF8
                    & if self.cr[4] & (1 << 5) != 0 {
                        0xFFFF_FFF8
                    } else {
                        0xFFFF_F018
                    };
                self.flush_tlb(ringside_mmu::FlushCause::Cr3, true);
            }
            4 => {
                // Bits we model: VME PVI TSD DE PSE PAE MCE PGE PCE OSFXSR OSXMMEXCPT.
                if v & !0x0000_06FF != 0 {
                    return Err(Fault::gp(0));
                }
                self.cr[4] = v;
                if (old[4] ^ v) & ((1 << 4) | (1 << 5) | (1 << 7)) != 0 {
                    self.flush_tlb(ringside_mmu::FlushCause::ControlBits, false);
                }
            }
            _ => return Err(Fault::UD),
        }
        Ok(())
    }

    /// Write CR0/CR2/CR3/CR4 as MOV CRn would (checks, TLB flushes, CPL on
    /// leaving protected mode), for debuggers, snapshot restore and test
    /// harnesses.
    pub fn write_control_register(&mut self, n: usize, v: u32) -> Result<(), Fault> {
        self.write_cr(n, v)
    }

    /// Flush the TLB (keeping global entries when CR4.PGE and `keep_global`).
    pub(crate) fn flush_tlb(&mut self, cause: ringside_mmu::FlushCause, keep_global: bool) {
        let keep = keep_global && self.cr[4] & (1 << 7) != 0;
        self.tlb.flush(cause, keep);
        self.emit(|| Event::TlbFlush { cause });
    }

    /// Whether code is fetched as 32-bit (CS.D).
    #[inline(always)]
    pub fn code32(&self) -> bool {
        self.segs[SegReg::Cs as usize].big()
    }

    /// SS was loaded by MOV SS or POP SS: interrupts, NMIs and debug traps
    /// wait until after the next instruction, so a stack switch's two
    /// instructions are not separated (SDM Vol. 3A §6.8.3).
    #[inline]
    pub(crate) fn ss_loaded(&mut self) {
        self.inhibit_at = self.instructions + 1;
        self.trap_inhibit_at = self.instructions + 1;
    }

    /// Whether a maskable interrupt would be accepted at this boundary.
    pub fn interrupts_enabled(&self) -> bool {
        self.flags.control(flags::IF) && self.inhibit_at != self.instructions
    }

    /// Ask the run loop to look at the INTR line at the next boundary (the
    /// board calls this when it raises an interrupt).
    pub fn poll_interrupts(&mut self) {
        self.attention |= ATTN_IRQ;
    }

    /// Make the run loop return `Yield` after the current instruction.
    #[inline(always)]
    pub(crate) fn request_yield(&mut self) {
        self.attention |= ATTN_YIELD | ATTN_IRQ;
    }

    /// Drop all decoded instructions (e.g. after the host rewrote memory).
    pub fn flush_decode_cache(&mut self) {
        self.attention |= ATTN_FLUSH;
    }

    /// Read a register named by iced (8/16/32-bit GPRs and segment selectors).
    #[inline(always)]
    pub fn get_reg(&self, r: Register) -> u32 {
        let n = r as u32;
        if n >= Register::EAX as u32 && n <= Register::EDI as u32 {
            self.regs[(n - Register::EAX as u32) as usize]
        } else if n >= Register::AX as u32 && n <= Register::DI as u32 {
            self.regs[(n - Register::AX as u32) as usize] & 0xFFFF
        } else if n >= Register::AH as u32 && n <= Register::BH as u32 {
            (self.regs[(n - Register::AH as u32) as usize] >> 8) & 0xFF
        } else if n >= Register::AL as u32 && n <= Register::BL as u32 {
            self.regs[(n - Register::AL as u32) as usize] & 0xFF
        } else if n >= Register::ES as u32 && n <= Register::GS as u32 {
            self.segs[(n - Register::ES as u32) as usize].selector as u32
        } else {
            0
        }
    }

    /// Write a GPR named by iced; 8/16-bit writes keep the other bits.
    #[inline(always)]
    pub fn set_reg(&mut self, r: Register, v: u32) {
        let n = r as u32;
        if n >= Register::EAX as u32 && n <= Register::EDI as u32 {
            self.regs[(n - Register::EAX as u32) as usize] = v;
        } else if n >= Register::AX as u32 && n <= Register::DI as u32 {
            let x = &mut self.regs[(n - Register::AX as u32) as usize];
            *x = (*x & 0xFFFF_0000) | (v & 0xFFFF);
        } else if n >= Register::AH as u32 && n <= Register::BH as u32 {
            let x = &mut self.regs[(n - Register::AH as u32) as usize];
            *x = (*x & 0xFFFF_00FF) | ((v & 0xFF) << 8);
        } else if n >= Register::AL as u32 && n <= Register::BL as u32 {
            let x = &mut self.regs[(n - Register::AL as u32) as usize];
            *x = (*x & 0xFFFF_FF00) | (v & 0xFF);
        }
    }

    /// Execute instructions until a budget runs out or something needs the
    /// machine's attention. `cycle_limit` is an absolute value of
    /// [`Cpu::cycles`]; `max_instructions` counts from this call.
    pub fn run(
        &mut self,
        bus: &mut dyn Bus,
        cycle_limit: u64,
        max_instructions: u64,
    ) -> StopReason {
        // The decode cache is moved out of `self` for the whole run, so a
        // cached entry can be borrowed while its handler mutates the CPU.
        // Handlers never touch the cache.
        // The board may have raised INTR since the last slice.
        self.attention |= ATTN_IRQ;
        let mut cache = std::mem::take(&mut self.decode_cache);
        let r = self.run_with(bus, &mut cache, cycle_limit, max_instructions);
        self.decode_cache = cache;
        r
    }

    fn run_with(
        &mut self,
        bus: &mut dyn Bus,
        cache: &mut DecodeCache,
        cycle_limit: u64,
        max_instructions: u64,
    ) -> StopReason {
        // An observer cannot come or go while the loop runs (only the host
        // attaches one), so the loop is built twice and the per-instruction
        // path of the usual one has no observer test.
        if self.observer.is_some() {
            self.run_loop::<true>(bus, cache, cycle_limit, max_instructions)
        } else {
            self.run_loop::<false>(bus, cache, cycle_limit, max_instructions)
        }
    }

    #[inline(always)]
    fn run_loop<const OBSERVED: bool>(
        &mut self,
        bus: &mut dyn Bus,
        cache: &mut DecodeCache,
        cycle_limit: u64,
        max_instructions: u64,
    ) -> StopReason {
        let icount_limit = self.instructions.saturating_add(max_instructions);
        // The entry that ran last and the one that followed it last time
        // (read before the last one's handler ran; see `DecodeCache::find`).
        let (mut prev, mut pred) = (LINK_NONE, LINK_NONE);
        loop {
            // `shutdown` and `halted` only become true with ATTN_STOP set,
            // so with no attention bit both are false; a queued code page
            // sets ATTN_SMC.
            debug_assert!(self.attention != 0 || !self.mem.smc_pending());
            if self.attention != 0 {
                if self.shutdown {
                    return StopReason::Shutdown;
                }
                self.attention &= !ATTN_STOP;
                if self.attention != 0 || self.mem.smc_pending() {
                    (prev, pred) = (LINK_NONE, LINK_NONE);
                    if let Some(r) = self.boundary_work(bus, cache) {
                        return r;
                    }
                }
                if self.halted {
                    return StopReason::Halted;
                }
            }
            if self.cycles >= cycle_limit || self.instructions >= icount_limit {
                return StopReason::Budget;
            }
            (prev, pred) = self.execute_with::<OBSERVED>(bus, cache, prev, pred);
        }
    }

    /// Execute one instruction (or deliver one pending interrupt and stop
    /// before the handler's first instruction). For debuggers and tests.
    /// A REP string instruction is one step per iteration, as EFLAGS.TF
    /// steps it (SDM Vol. 3B §17.3.1.4): EIP stays on it while iterations
    /// remain. Such a host-made stop leaves no trace a run would not have:
    /// the instruction and its base cycles count once, when it completes,
    /// and interrupts wait for its end, so stepping and running reach the
    /// same state (the debugger's reverse stepping relies on it).
    pub fn step(&mut self, bus: &mut dyn Bus) -> StopReason {
        let mut cache = std::mem::take(&mut self.decode_cache);
        let r = self.step_with(bus, &mut cache);
        self.decode_cache = cache;
        r
    }

    fn step_with(&mut self, bus: &mut dyn Bus, cache: &mut DecodeCache) -> StopReason {
        self.attention |= ATTN_IRQ;
        let delivered = self.interrupts_delivered;
        let in_smm = self.smm.active;
        if let Some(r) = self.boundary_work(bus, cache) {
            if r != StopReason::Yield {
                return r;
            }
        }
        if self.interrupts_delivered != delivered || self.smm.active != in_smm {
            // An interrupt or SMI was taken: stop at the handler's first
            // instruction.
            return StopReason::Budget;
        }
        if self.shutdown {
            return StopReason::Shutdown;
        }
        if self.halted {
            return StopReason::Halted;
        }
        self.host_step = true;
        self.execute_with::<true>(bus, cache, LINK_NONE, LINK_NONE);
        self.host_step = false;
        if self.shutdown {
            StopReason::Shutdown
        } else if self.halted {
            StopReason::Halted
        } else {
            StopReason::Budget
        }
    }

    /// Instruction-boundary work: code invalidation, interrupts, yields.
    #[cold]
    fn boundary_work(&mut self, bus: &mut dyn Bus, cache: &mut DecodeCache) -> Option<StopReason> {
        if self.host.stop {
            // The host debugger stops here, before any interrupt is taken,
            // so it sees the instruction it broke on.
            self.attention &= !ATTN_YIELD;
            return Some(StopReason::Yield);
        }
        if self.attention & ATTN_FLUSH != 0 {
            cache.flush();
            self.mem.clear_code_pages();
        }
        if self.mem.smc_pending() {
            let mut pages = std::mem::take(&mut self.smc_scratch);
            self.mem.take_smc_pages(&mut pages);
            for &p in &pages {
                cache.invalidate_page(p);
            }
            self.smc_scratch = pages;
        }
        // SMI outranks the previous instruction's #DB trap, NMI and INTR
        // (SDM Vol. 3A Table 6-2); entry keeps a pending #DB for after RSM.
        let took_smi = self.attention & ATTN_IRQ != 0 && self.poll_smi(bus);
        // A data breakpoint hit by MOV SS / POP SS waits one more
        // instruction (SDM Vol. 3A §6.8.3).
        let trap_held = self.pending_debug_trap && self.trap_inhibit_at == self.instructions;
        if self.pending_debug_trap && !trap_held {
            self.pending_debug_trap = false;
            self.deliver_trap(bus, Vector::Debug as u8);
        }
        let yield_now = self.attention & ATTN_YIELD != 0;
        let irq = self.attention & ATTN_IRQ != 0;
        self.attention = if trap_held { ATTN_IRQ } else { 0 };
        // The debug trap above may have pushed onto a code page.
        self.note_smc();
        // After an SMI entry (IF and NMIs masked now) INTR and NMI wait.
        let mut took_nmi = took_smi;
        if took_smi {
            self.attention |= ATTN_IRQ;
        }
        if irq && !took_smi {
            // NMI first: it outranks INTR and ignores IF, but not the
            // MOV SS shadow, and not a running NMI handler (the IRET that
            // ends it polls again).
            if bus.take_nmi() {
                self.nmi_pending = true;
            }
            if self.nmi_pending && !self.nmi_blocked && self.inhibit_at != self.instructions {
                self.nmi_pending = false;
                self.nmi_blocked = true;
                self.external_interrupt(bus, Vector::Nmi as u8);
                took_nmi = true;
                self.attention |= ATTN_IRQ;
            }
        }
        if irq && !took_nmi {
            if self.inhibit_at == self.instructions {
                // Interrupt shadow: look again after the next instruction.
                self.attention |= ATTN_IRQ;
            } else if self.flags.control(flags::IF) && bus.interrupt_pending() {
                let v = bus.acknowledge_interrupt();
                self.external_interrupt(bus, v);
            }
        }
        if yield_now {
            return Some(StopReason::Yield);
        }
        None
    }

    /// Fetch (through the decode cache), execute, and handle faults and the
    /// single-step trap. `prev` is the previous instruction's entry and
    /// `pred` the entry that followed it last time; the return value is
    /// this instruction's pair, for the next call.
    /// `OBSERVED` false: no observer is attached.
    #[inline(always)]
    fn execute_with<const OBSERVED: bool>(
        &mut self,
        bus: &mut dyn Bus,
        cache: &mut DecodeCache,
        prev: Link,
        pred: Link,
    ) -> (Link, Link) {
        const NONE: (Link, Link) = (LINK_NONE, LINK_NONE);
        let cs = &self.segs[SegReg::Cs as usize];
        let lin = cs.base.wrapping_add(self.eip);
        let code32 = cs.big();
        if self.bp_exec {
            // The CS limit test comes first here as on the path below
            // (where a hit's own length test covers it).
            if self.eip > self.segs[SegReg::Cs as usize].limit {
                self.deliver_fault(bus, Fault::gp(0));
                return NONE;
            }
            match self.check_exec_breakpoints(lin) {
                Ok(false) => {}
                // A host breakpoint: stop before this instruction.
                Ok(true) => return NONE,
                Err(f) => {
                    self.deliver_fault(bus, f);
                    return NONE;
                }
            }
        }
        let phys = match self.fetch_phys(lin) {
            Some(p) => p,
            None => match self.translate_fetch_slow(lin) {
                Ok(p) => p,
                Err(f) => {
                    // EIP beyond the CS limit is #GP before any fetch (SDM
                    // Vol. 3A §5.3), so it outranks the code page fault.
                    let f = if self.eip > self.segs[SegReg::Cs as usize].limit {
                        Fault::gp(0)
                    } else {
                        f
                    };
                    self.deliver_fault(bus, f);
                    return NONE;
                }
            },
        } & self.mem.a20_mask();
        // The predicted successor: one bounds check, one key compare, and
        // the entry is in the same slot. An EIP beyond the CS limit is
        // caught by the entry's own length test in `execute_entry_inner`.
        let k = crate::decode::key_cs(phys, self.segs[SegReg::Cs as usize].attrs);
        if let Some((e, next)) = cache.predicted(pred, k) {
            self.execute_entry::<OBSERVED>(bus, e);
            return (pred, next);
        }
        if let Some(idx) = cache.find_by_address(phys, code32) {
            cache.hits += 1;
            cache.link(prev, idx);
            // Handlers never touch the cache: the successor read here is
            // the one the next lookup would read after the handler.
            let (e, next) = cache.entry(idx);
            self.execute_entry::<OBSERVED>(bus, e);
            return (idx, next);
        }
        if self.eip > self.segs[SegReg::Cs as usize].limit {
            self.deliver_fault(bus, Fault::gp(0));
            return NONE;
        }
        cache.misses += 1;
        match self.decode_miss(bus, lin, phys, code32) {
            Ok(e) => {
                let mut here = NONE;
                if e.cacheable {
                    self.mem.mark_code_page(phys);
                    if let Some(idx) = cache.insert(phys, e) {
                        cache.link(prev, idx);
                        here = (idx, LINK_NONE);
                    }
                }
                self.execute_entry::<OBSERVED>(bus, &e);
                here
            }
            Err(f) => {
                self.deliver_fault(bus, f);
                NONE
            }
        }
    }

    /// Attach an observer (or detach with `None`); returns the previous one.
    pub fn set_observer(
        &mut self,
        o: Option<Box<dyn Observer + Send>>,
    ) -> Option<Box<dyn Observer + Send>> {
        std::mem::replace(&mut self.observer, o)
    }

    /// Report an event that happened outside the CPU but belongs in its
    /// stream (the machine's hypercall servicing), if an observer listens.
    pub fn notify(&mut self, e: Event) {
        self.emit(|| e);
    }

    /// Send an event to the observer, if one is attached.
    #[inline]
    pub(crate) fn emit(&mut self, e: impl FnOnce() -> Event) {
        // The observer is lent the whole (read-only) CPU with the event, so
        // it is taken out of `self` for the call.
        if let Some(mut o) = self.observer.take() {
            o.event_on(&e(), self);
            let stop = o.wants_stop();
            self.observer = Some(o);
            if stop {
                self.host_stop(crate::debug::HostHit::Event);
            }
        }
    }

    /// While an observer is called: the instruction being executed, with
    /// the CS selector and EIP it started at (`None` between instructions,
    /// e.g. for a hardware interrupt).
    pub fn observed_instruction(&self) -> Option<(u16, u32, &iced_x86::Instruction)> {
        self.observed_at
            .as_ref()
            .map(|(cs, eip, _, i)| (*cs, *eip, i))
    }

    /// While an observer is called: the linear address of the instruction
    /// being executed (CS base + EIP when it started).
    pub fn observed_linear(&self) -> Option<u32> {
        self.observed_at.as_ref().map(|o| o.2)
    }

    /// The execute path while an observer listens: the same work as
    /// [`Cpu::execute_entry`], bracketed by the comparisons that turn state
    /// changes into events.
    #[cold]
    fn execute_entry_observed(&mut self, bus: &mut dyn Bus, e: &Entry) {
        let m = e.ins.mnemonic();
        let cpl = self.cpl;
        let mode = self.mode();
        let paging = self.cr[0] & cr0::PG != 0;
        let tr = self.tr.selector;
        let crs = self.cr;
        let faults_before = self.exceptions_raised;
        self.observed_mnemonic = Some(m);
        let cs = &self.segs[SegReg::Cs as usize];
        self.observed_at = Some((cs.selector, self.eip, cs.base.wrapping_add(self.eip), e.ins));
        self.execute_entry_inner(bus, e);
        self.observed_mnemonic = None;
        let faulted = self.exceptions_raised != faults_before;
        let deprivileged = cpl > 0 || mode == CpuMode::Virtual8086;
        if !faulted && deprivileged {
            if let Some(why) = crate::classify::untrapped_reason(m)
                .filter(|_| crate::classify::is_sensitive_form(&e.ins))
            {
                self.emit(|| Event::SensitiveUntrapped {
                    mnemonic: m,
                    cpl,
                    why,
                });
            }
        }
        if matches!(
            m,
            iced_x86::Mnemonic::Int | iced_x86::Mnemonic::Int3 | iced_x86::Mnemonic::Into
        ) && !faulted
        {
            let vector = if m == iced_x86::Mnemonic::Int {
                e.ins.immediate8()
            } else if m == iced_x86::Mnemonic::Int3 {
                3
            } else {
                4
            };
            self.emit(|| Event::SoftwareInterrupt { vector, cpl });
        }
        let now = self.cr;
        for (i, (&old, &new)) in crs.iter().zip(now.iter()).enumerate() {
            if old != new && i != 1 {
                self.emit(|| Event::ControlRegisterWrite {
                    cr: i as u8,
                    old,
                    new,
                });
            }
        }
        self.emit_state_changes(
            cpl,
            mode,
            paging,
            tr,
            if faulted {
                "exception"
            } else {
                exec::transfer_cause(m)
            },
        );
        self.observed_at = None;
    }

    /// Ring, mode and task changes since the given state.
    pub(crate) fn emit_state_changes(
        &mut self,
        cpl: u8,
        mode: CpuMode,
        paging: bool,
        tr: u16,
        cause: &'static str,
    ) {
        if self.observer.is_none() {
            return;
        }
        if self.tr.selector != tr {
            let to = self.tr.selector;
            self.emit(|| Event::TaskSwitch { from: tr, to });
        }
        let (now_mode, now_paging) = (self.mode(), self.cr[0] & cr0::PG != 0);
        if now_mode != mode || now_paging != paging {
            self.emit(|| Event::ModeChange {
                from: mode,
                to: now_mode,
                paging: now_paging,
            });
        }
        if self.cpl != cpl {
            let to = self.cpl;
            self.emit(|| Event::RingChange {
                from: cpl,
                to,
                cause,
            });
        }
    }

    #[inline(always)]
    fn execute_entry<const OBSERVED: bool>(&mut self, bus: &mut dyn Bus, e: &Entry) {
        if OBSERVED && self.observer.is_some() {
            return self.execute_entry_observed(bus, e);
        }
        self.execute_entry_inner(bus, e)
    }

    #[inline(always)]
    fn execute_entry_inner(&mut self, bus: &mut dyn Bus, e: &Entry) {
        let start_eip = self.eip;
        // The instruction's last byte must lie within CS (SDM Vol. 3A §5.3).
        if start_eip as u64 + e.len as u64 - 1 > self.segs[SegReg::Cs as usize].limit as u64 {
            self.deliver_fault(bus, Fault::gp(0));
            return;
        }
        // TF as the instruction starts decides its single-step trap: none
        // after the POPF/IRET that sets TF, one after the one that clears it.
        let tf = self.flags.control(flags::TF);
        if self.flags.control(flags::RF) {
            // RF lives for one instruction: it is cleared as the instruction
            // starts, after the instruction-breakpoint check the caller made
            // (SDM Vol. 3B §17.3.1.1). A fault still pushes RF set.
            self.flags.set_control(flags::RF, false);
        }
        self.eip = if e.code32 {
            start_eip.wrapping_add(e.len as u32)
        } else {
            (start_eip + e.len as u32) & 0xFFFF
        };
        self.cycles += e.cycles as u64;
        match (e.handler)(self, bus, e) {
            Ok(()) => {
                self.instructions += 1;
                // No trap in the MOV SS / POP SS shadow (SDM Vol. 3A §6.8.3).
                if tf && self.trap_inhibit_at != self.instructions {
                    self.single_step_trap(bus);
                }
            }
            Err(f) => {
                self.eip = start_eip;
                self.deliver_fault(bus, f);
            }
        }
    }

    /// The single-step #DB after an instruction that began with TF set
    /// (SDM Vol. 3B §17.3.1.4), with DR6.BS. A software interrupt (INT n,
    /// INT3, INTO, INT1) raises none: its gate cleared TF (or the task
    /// switch loaded the new task's) and the handler runs untraced; the
    /// trap resumes after the instruction that follows the INT, once IRET
    /// has restored TF (SDM Vol. 3A §6.12.1.2). A data breakpoint or TSS
    /// T-bit hit by the same instruction is reported by this same #DB (its
    /// DR6 bits are set already), not by a second one.
    #[cold]
    fn single_step_trap(&mut self, bus: &mut dyn Bus) {
        if self.step_cancel_at == self.instructions {
            return;
        }
        self.dr[6] |= 1 << 14; // DR6.BS
        self.pending_debug_trap = false;
        self.deliver_trap(bus, Vector::Debug as u8);
    }

    fn deliver_trap(&mut self, bus: &mut dyn Bus, vector: u8) {
        if let Err(f) = self.interrupt(bus, vector, crate::interrupt::Source::Exception, None) {
            self.deliver_fault(bus, f);
        }
    }

    #[cold]
    fn decode_miss(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        phys: u32,
        code32: bool,
    ) -> Result<Entry, Fault> {
        let mut buf = [0u8; 32];
        let mut fetch_fault: Option<(usize, Fault)> = None;
        for (i, b) in buf.iter_mut().enumerate() {
            // Real mode: IP wraps within the segment for 16-bit code.
            let off = if code32 {
                self.eip.wrapping_add(i as u32)
            } else {
                (self.eip + i as u32) & 0xFFFF
            };
            let l = self.segs[SegReg::Cs as usize].base.wrapping_add(off);
            *b = match self.fetch_u8(bus, l) {
                Ok(v) => v,
                // A fault on a byte the instruction may not even need: only
                // report it if the decoded instruction reaches that byte.
                Err(f) => {
                    fetch_fault = fetch_fault.or(Some((i, f)));
                    0
                }
            };
        }
        let avail = fetch_fault.map_or(buf.len(), |(i, _)| i);
        let ins = match decode_bytes(&buf[..avail], self.eip, code32) {
            Decoded::Ok(ins) => ins,
            Decoded::Invalid => return Err(Fault::UD),
            Decoded::TooLong => return Err(Fault::gp(0)),
            // The instruction runs into the byte whose fetch faulted.
            Decoded::Truncated => return Err(fetch_fault.map_or(Fault::UD, |(_, f)| f)),
        };
        let mut e = exec::make_entry(ins, code32);
        let crosses = (phys & 0xFFF) + e.len as u32 > 0x1000;
        let wraps = !code32 && self.eip + e.len as u32 > 0x10000;
        e.cacheable = !crosses
            && !wraps
            && !self.mem.is_mmio(phys)
            && lin == self.segs[SegReg::Cs as usize].base.wrapping_add(self.eip);
        Ok(e)
    }
}
