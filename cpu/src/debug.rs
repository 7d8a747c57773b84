//! Hardware breakpoints: DR0–DR3 addresses, DR7 enables/types/lengths, DR6
//! status (SDM Vol. 3B §17.2–17.3). Instruction breakpoints are faults
//! checked before an instruction starts (suppressed by EFLAGS.RF); data
//! breakpoints are traps raised after the access's instruction completes.
//! With DR7 clear the run loop checks one flag per instruction and the
//! memory path one flag per access.
//!
//! The host's debugger (machine's `debugger`) shares those two flags for its
//! own breakpoints and watchpoints ([`HostExec`], [`HostWatch`]): they make
//! [`Cpu::run`] return `Yield` at the next instruction boundary with the
//! reason in [`Cpu::take_host_hit`], and are invisible to the guest.

use crate::flags::RF;
use crate::interrupt::{Fault, Vector};
use crate::processor::Cpu;

impl Cpu {
    /// Recompute which kinds of breakpoints DR7 enables.
    pub(crate) fn update_breakpoints(&mut self) {
        let dr7 = self.dr[7];
        let (mut exec, mut data) = (false, false);
        for i in 0..4 {
            if dr7 & (3 << (2 * i)) != 0 {
                if (dr7 >> (16 + 4 * i)) & 3 == 0 {
                    exec = true;
                } else {
                    data = true;
                }
            }
        }
        self.bp_exec = exec || !self.host.exec.is_empty();
        self.bp_data = data || !self.host.watches.is_empty();
    }

    /// Instruction breakpoints at linear address `lin`: `Ok(true)` when a
    /// host breakpoint stops the CPU before it; else a #DB fault with the
    /// matching DR6.Bn bits, unless RF says this instruction is resuming.
    #[cold]
    pub(crate) fn check_exec_breakpoints(&mut self, lin: u32) -> Result<bool, Fault> {
        // The host looks first: a debugger stop must not consume RF.
        if self.host_exec_hit(lin) {
            return Ok(true);
        }
        let dr7 = self.dr[7];
        if (0..4).all(|i| dr7 & (3 << (2 * i)) == 0 || (dr7 >> (16 + 4 * i)) & 3 != 0) {
            // Only host breakpoints are armed: leave RF to the guest.
            return Ok(false);
        }
        if self.flags.control(RF) {
            // RF suppresses instruction breakpoints for one instruction.
            self.flags.set_control(RF, false);
            return Ok(false);
        }
        let mut hits = 0;
        for i in 0..4 {
            if dr7 & (3 << (2 * i)) != 0 && (dr7 >> (16 + 4 * i)) & 3 == 0 && self.dr[i] == lin {
                hits |= 1 << i;
            }
        }
        if hits != 0 {
            self.dr[6] = (self.dr[6] & !0xF) | hits;
            return Err(Fault::new(Vector::Debug));
        }
        Ok(false)
    }

    /// Data breakpoints for an access of `size` bytes at `lin`: record the
    /// hit; the #DB trap follows the instruction.
    #[cold]
    pub(crate) fn check_data_breakpoints(&mut self, lin: u32, size: u8, write: bool) {
        self.host_watch_hit(lin, size, write);
        let dr7 = self.dr[7];
        let mut hits = 0;
        for i in 0..4 {
            let rw = (dr7 >> (16 + 4 * i)) & 3;
            if dr7 & (3 << (2 * i)) == 0 || rw == 0 || rw == 2 || (rw == 1 && !write) {
                continue;
            }
            let len = match (dr7 >> (18 + 4 * i)) & 3 {
                0 => 1,
                1 => 2,
                3 => 4,
                _ => 8,
            };
            let start = self.dr[i] & !(len - 1);
            let (a0, a1) = (lin as u64, lin as u64 + size as u64 - 1);
            if a0 < start as u64 + len as u64 && a1 >= start as u64 {
                hits |= 1 << i;
            }
        }
        if hits != 0 {
            self.dr[6] = (self.dr[6] & !0xF) | hits;
            self.pending_debug_trap = true;
            self.poll_interrupts();
        }
    }
}

impl Cpu {
    /// I/O breakpoints for a completed port access: with CR4.DE set, R/W =
    /// 10 in DR7 makes DRn a port breakpoint, a trap like a data one (SDM
    /// Vol. 3B §17.2.4–17.2.5). One flag when no breakpoint is armed.
    #[inline(always)]
    pub(crate) fn io_breakpoints(&mut self, port: u16, size: u8) {
        // CR4 bit 3 is DE (debugging extensions).
        if self.bp_data && self.cr[4] & (1 << 3) != 0 {
            self.check_io_breakpoints(port, size);
        }
    }

    #[cold]
    fn check_io_breakpoints(&mut self, port: u16, size: u8) {
        let dr7 = self.dr[7];
        let mut hits = 0;
        for i in 0..4 {
            if dr7 & (3 << (2 * i)) == 0 || (dr7 >> (16 + 4 * i)) & 3 != 2 {
                continue;
            }
            let len: u32 = match (dr7 >> (18 + 4 * i)) & 3 {
                0 => 1,
                1 => 2,
                3 => 4,
                _ => 8,
            };
            let start = (self.dr[i] & 0xFFFF) & !(len - 1);
            let (a0, a1) = (port as u32, port as u32 + size as u32 - 1);
            if a0 < start + len && a1 >= start {
                hits |= 1 << i;
            }
        }
        if hits != 0 {
            self.dr[6] = (self.dr[6] & !0xF) | hits;
            self.pending_debug_trap = true;
            self.poll_interrupts();
        }
    }
}

/// Where a host (debugger) instruction breakpoint matches. Host breakpoints
/// and watchpoints are invisible to the guest: they never touch DR0–DR7 or
/// raise #DB; they make [`Cpu::run`] return early instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostExec {
    /// CS selector and EIP (segmented, as a real-mode listing names code).
    Segmented(u16, u32),
    /// Linear address (CS.base + EIP).
    Linear(u32),
    /// Physical address of the instruction's first byte.
    Physical(u32),
}

/// A host watchpoint: a range of linear or physical addresses, for reads,
/// writes or both. Checked on the CPU's data accesses (the same ones DR7
/// data breakpoints see), not on instruction fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostWatch {
    /// First address.
    pub start: u32,
    /// Length in bytes (at least 1).
    pub len: u32,
    /// Whether `start` is physical (else linear).
    pub physical: bool,
    /// Stop on reads.
    pub read: bool,
    /// Stop on writes.
    pub write: bool,
}

/// What stopped the CPU for the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostHit {
    /// An instruction breakpoint matched before the instruction at this
    /// linear address ran (it has not run).
    Exec {
        /// Linear address of the instruction.
        linear: u32,
    },
    /// A watchpoint matched a data access; the instruction completed.
    Watch {
        /// Index in the list given to [`Cpu::set_host_debug`].
        index: usize,
        /// Linear address of the access.
        linear: u32,
        /// Physical address of its first byte.
        physical: u32,
        /// Size in bytes.
        size: u8,
        /// Whether it was a write.
        write: bool,
    },
    /// The attached observer asked to stop ([`crate::Observer::wants_stop`]).
    Event,
}

/// Host breakpoint state kept in the CPU. Only consulted on the cold paths
/// behind `bp_exec`/`bp_data`, so an unarmed debugger costs nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct HostDebug {
    exec: Vec<HostExec>,
    watches: Vec<HostWatch>,
    /// Resume past this linear address once (the instruction a stop left us
    /// at), as EFLAGS.RF does for DR breakpoints.
    skip: Option<u32>,
    /// A stop is pending: the run loop returns at the next boundary.
    pub(crate) stop: bool,
    hit: Option<HostHit>,
}

impl Cpu {
    /// Arm host instruction breakpoints and watchpoints (replacing the
    /// previous ones). Empty lists disarm them: the run loop is then back to
    /// its one-flag-per-instruction cost.
    pub fn set_host_debug(&mut self, exec: &[HostExec], watches: &[HostWatch]) {
        self.host.exec.clear();
        self.host.exec.extend_from_slice(exec);
        self.host.watches.clear();
        self.host.watches.extend_from_slice(watches);
        self.update_breakpoints();
        self.rearm_host_debug();
    }

    /// Make sure the armed host breakpoints are checked (delivering a guest
    /// #DB drops the DR7 flags, which the host ones share).
    pub fn rearm_host_debug(&mut self) {
        self.bp_exec |= !self.host.exec.is_empty();
        self.bp_data |= !self.host.watches.is_empty();
    }

    /// Let the instruction at linear address `lin` run once without
    /// stopping at a host breakpoint there (resuming from a stop).
    pub fn skip_host_breakpoint_at(&mut self, lin: u32) {
        self.host.skip = Some(lin);
    }

    /// Take the reason of the last host stop, clearing it so the CPU runs
    /// again.
    pub fn take_host_hit(&mut self) -> Option<HostHit> {
        self.host.stop = false;
        self.host.hit.take()
    }

    /// Linear → physical without side effects (no A/D bits, no TLB fill,
    /// no fault): `None` when the page is not mapped. For debuggers.
    pub fn debug_translate(&self, lin: u32) -> Option<u32> {
        if self.cr[0] & crate::regs::cr0::PG == 0 {
            return Some(lin & self.mem.a20_mask());
        }
        ringside_mmu::peek(&self.mem, self.paging_mode(), lin)
            .ok()
            .map(|t| t.phys & self.mem.a20_mask())
    }

    /// Stop at the next instruction boundary for the host.
    pub(crate) fn host_stop(&mut self, hit: HostHit) {
        if !self.host.stop {
            self.host.hit = Some(hit);
        }
        self.host.stop = true;
        self.request_yield();
    }

    /// Host instruction breakpoints at `lin`: whether to stop before it.
    #[cold]
    fn host_exec_hit(&mut self, lin: u32) -> bool {
        if self.host.exec.is_empty() {
            return false;
        }
        if self.host.skip.take() == Some(lin) {
            return false;
        }
        let cs = self.segs[crate::regs::SegReg::Cs as usize].selector;
        let eip = self.eip;
        let mut phys = None;
        for i in 0..self.host.exec.len() {
            let hit = match self.host.exec[i] {
                HostExec::Segmented(s, o) => s == cs && o == eip,
                HostExec::Linear(l) => l == lin,
                HostExec::Physical(p) => {
                    if phys.is_none() {
                        phys = Some(self.debug_translate(lin));
                    }
                    phys == Some(Some(p))
                }
            };
            if hit {
                self.host_stop(HostHit::Exec { linear: lin });
                return true;
            }
        }
        false
    }

    /// Host watchpoints for a data access.
    #[cold]
    fn host_watch_hit(&mut self, lin: u32, size: u8, write: bool) {
        if self.host.watches.is_empty() {
            return;
        }
        let last_lin = lin as u64 + size as u64 - 1;
        let mut phys = None;
        for i in 0..self.host.watches.len() {
            let w = self.host.watches[i];
            if !(if write { w.write } else { w.read }) {
                continue;
            }
            let first = if w.physical {
                if phys.is_none() {
                    phys = Some(self.debug_translate(lin));
                }
                match phys {
                    Some(Some(p)) => p as u64,
                    _ => continue,
                }
            } else {
                lin as u64
            };
            let last = first + (last_lin - lin as u64);
            let (ws, we) = (w.start as u64, w.start as u64 + w.len.max(1) as u64 - 1);
            if first <= we && last >= ws {
                let physical = match phys {
                    Some(Some(p)) => p,
                    _ => self.debug_translate(lin).unwrap_or(lin),
                };
                self.host_stop(HostHit::Watch {
                    index: i,
                    linear: lin,
                    physical,
                    size,
                    write,
                });
                return;
            }
        }
    }
}
