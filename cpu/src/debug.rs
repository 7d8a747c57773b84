//! Hardware breakpoints: DR0–DR3 addresses, DR7 enables/types/lengths, DR6
//! status (SDM Vol. 3B §17.2–17.3). Instruction breakpoints are faults
//! checked before an instruction starts (suppressed by EFLAGS.RF); data
//! breakpoints are traps raised after the access's instruction completes.
//! With DR7 clear the run loop checks one flag per instruction and the
//! memory path one flag per access.

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
        self.bp_exec = exec;
        self.bp_data = data;
    }

    /// Instruction breakpoints at linear address `lin`: a #DB fault with the
    /// matching DR6.Bn bits, unless RF says this instruction is resuming.
    #[cold]
    pub(crate) fn check_exec_breakpoints(&mut self, lin: u32) -> Result<(), Fault> {
        if self.flags.control(RF) {
            // RF suppresses instruction breakpoints for one instruction.
            self.flags.set_control(RF, false);
            return Ok(());
        }
        let dr7 = self.dr[7];
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
        Ok(())
    }

    /// Data breakpoints for an access of `size` bytes at `lin`: record the
    /// hit; the #DB trap follows the instruction.
    #[cold]
    pub(crate) fn check_data_breakpoints(&mut self, lin: u32, size: u8, write: bool) {
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
            if a0 <= start as u64 + len as u64 - 1 && a1 >= start as u64 {
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
