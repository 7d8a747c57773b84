//! Hardware task switching (SDM Vol. 3A §7.3): JMP or CALL to a TSS or a
//! task gate, an interrupt or exception through a task gate, and IRET with
//! EFLAGS.NT set. 32-bit and 16-bit TSS layouts.
//!
//! The switch has a commit point (SDM §7.3 step 12: the new TR is loaded and
//! the old state saved). Faults found before it are raised in the old task
//! like any fault; faults after it (bad selectors in the new TSS, EIP beyond
//! the new CS limit) are delivered here, in the context of the new task.

use crate::flags::{self, NT, VM};
use crate::interrupt::{Fault, Vector};
use crate::processor::Cpu;
use crate::regs::{cr0, gpr, SegReg, Segment};
use crate::segment::{gp_sel, np_sel, ss_sel, sys, ts_sel, Descriptor};
use crate::Bus;

/// What started a task switch; it decides the busy bits, NT and the back link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchKind {
    /// JMP to a TSS or task gate.
    Jmp,
    /// CALL to a TSS or task gate.
    Call,
    /// IRET with NT set: back to the task in the back link.
    Iret,
    /// A software interrupt (INT n, INT3, INTO) through a task gate.
    Interrupt,
    /// An exception, NMI or external interrupt through a task gate. Like
    /// `Interrupt` for the busy bits, NT and the back link; a fault after
    /// the commit point is returned to the delivery that started the
    /// switch, which combines it with the event being delivered by the
    /// double-fault rules (SDM Vol. 3A §6.15, Table 6-5) instead of starting
    /// a fresh delivery — so a chain of task gates to bad TSSs ends in #DF
    /// and then shutdown rather than recursing without bound.
    Event,
}

impl SwitchKind {
    /// The switch nests the new task (CALL-like): NT set, back link written,
    /// the old task stays busy.
    fn nests(self) -> bool {
        matches!(
            self,
            SwitchKind::Call | SwitchKind::Interrupt | SwitchKind::Event
        )
    }
}

const TSS32_MIN_LIMIT: u32 = 0x67;
const TSS16_MIN_LIMIT: u32 = 0x2B;

impl Cpu {
    /// Switch to the task whose TSS selector is `sel`. `error` is pushed on
    /// the new task's stack (exceptions with an error code through a task gate).
    pub(crate) fn task_switch(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        kind: SwitchKind,
        error: Option<u32>,
    ) -> Result<(), Fault> {
        // The TSS descriptor must be in the GDT.
        if sel & 4 != 0 {
            return Err(if kind == SwitchKind::Iret {
                ts_sel(sel)
            } else {
                gp_sel(sel)
            });
        }
        let d = self.read_descriptor(bus, sel).map_err(|f| {
            if kind == SwitchKind::Iret {
                ts_sel(sel)
            } else {
                f
            }
        })?;
        let typ = d.typ();
        let busy = matches!(typ, sys::TSS16_BUSY | sys::TSS32_BUSY);
        let avail = matches!(typ, sys::TSS16_AVAIL | sys::TSS32_AVAIL);
        if d.is_code_data()
            || (kind == SwitchKind::Iret && !busy)
            || (kind != SwitchKind::Iret && !avail)
        {
            return Err(if kind == SwitchKind::Iret {
                ts_sel(sel)
            } else {
                gp_sel(sel)
            });
        }
        if !d.present() {
            return Err(np_sel(sel));
        }
        let new32 = d.sys32();
        let min = if new32 {
            TSS32_MIN_LIMIT
        } else {
            TSS16_MIN_LIMIT
        };
        if d.limit() < min {
            return Err(ts_sel(sel));
        }
        let old32 = self.tr.attrs & 0x8 != 0;
        let old_min = if old32 {
            TSS32_MIN_LIMIT
        } else {
            TSS16_MIN_LIMIT
        };
        if self.tr.limit < old_min {
            return Err(ts_sel(self.tr.selector));
        }

        // Save the outgoing task.
        let mut eflags = self.flags.get();
        if kind == SwitchKind::Iret {
            eflags &= !NT;
        }
        let base = self.tr.base;
        if old32 {
            self.write_system(bus, base + 0x20, 4, self.eip)?;
            self.write_system(bus, base + 0x24, 4, eflags)?;
            for i in 0..8 {
                self.write_system(bus, base + 0x28 + 4 * i as u32, 4, self.regs[i])?;
            }
            for (i, s) in SegReg::ALL.iter().enumerate() {
                self.write_system(
                    bus,
                    base + 0x48 + 4 * i as u32,
                    2,
                    self.segs[*s as usize].selector as u32,
                )?;
            }
        } else {
            self.write_system(bus, base + 0x0E, 2, self.eip)?;
            self.write_system(bus, base + 0x10, 2, eflags)?;
            for i in 0..8 {
                self.write_system(bus, base + 0x12 + 2 * i as u32, 2, self.regs[i])?;
            }
            for (i, s) in [SegReg::Es, SegReg::Cs, SegReg::Ss, SegReg::Ds]
                .iter()
                .enumerate()
            {
                self.write_system(
                    bus,
                    base + 0x22 + 2 * i as u32,
                    2,
                    self.segs[*s as usize].selector as u32,
                )?;
            }
        }
        // Busy bits: JMP and IRET free the old task; the new one becomes busy
        // unless we return to it (it is busy already).
        if matches!(kind, SwitchKind::Jmp | SwitchKind::Iret) {
            self.set_tss_busy(bus, self.tr.selector, false)?;
        }
        let nb = d.0 & !(0x2u64 << 40);
        let new_desc = Descriptor(nb | (0x2u64 << 40)); // busy type
        if kind != SwitchKind::Iret {
            self.set_tss_busy(bus, sel, true)?;
        }
        let nbase = d.base();
        if kind.nests() {
            self.write_system(bus, nbase, 2, self.tr.selector as u32)?;
        }
        // Read the incoming state before anything is loaded.
        let mut regs = [0u32; 8];
        let mut sels = [0u16; 6];
        let (new_eip, mut new_flags, ldt, cr3, trap);
        if new32 {
            cr3 = Some(self.read_system_u32(bus, nbase + 0x1C)?);
            new_eip = self.read_system_u32(bus, nbase + 0x20)?;
            new_flags = self.read_system_u32(bus, nbase + 0x24)?;
            for (i, r) in regs.iter_mut().enumerate() {
                *r = self.read_system_u32(bus, nbase + 0x28 + 4 * i as u32)?;
            }
            for (i, s) in sels.iter_mut().enumerate() {
                *s = self.read_system_u16(bus, nbase + 0x48 + 4 * i as u32)?;
            }
            ldt = self.read_system_u16(bus, nbase + 0x60)?;
            trap = self.read_system_u16(bus, nbase + 0x64)? & 1 != 0;
        } else {
            cr3 = None;
            new_eip = self.read_system_u16(bus, nbase + 0x0E)? as u32;
            new_flags = self.read_system_u16(bus, nbase + 0x10)? as u32
                | (self.flags.get() & 0xFFFF_0000 & !VM);
            for (i, r) in regs.iter_mut().enumerate() {
                *r = (self.regs[i] & 0xFFFF_0000)
                    | self.read_system_u16(bus, nbase + 0x12 + 2 * i as u32)? as u32;
            }
            for (i, s) in [0usize, 1, 2, 3].iter().enumerate() {
                sels[*s] = self.read_system_u16(bus, nbase + 0x22 + 2 * i as u32)?;
            }
            ldt = self.read_system_u16(bus, nbase + 0x2A)?;
            trap = false;
        }
        if kind.nests() {
            new_flags |= NT;
        }

        // Commit point: the new task is current from here on.
        self.tr = new_desc.to_segment(sel);
        self.cr[0] |= cr0::TS;
        if let Some(cr3) = cr3 {
            // Only a 32-bit TSS has CR3; a task switch that loads it flushes
            // the non-global TLB entries like MOV CR3.
            if self.paging {
                self.cr[3] = cr3 & 0xFFFF_FFF8;
                self.flush_tlb(ringside_mmu::FlushCause::TaskSwitch, true);
            }
        }
        self.regs = regs;
        self.eip = new_eip;
        self.flags.set(new_flags | flags::RESERVED1);
        // Selectors first without descriptors, so a fault reports the new task.
        for s in SegReg::ALL {
            self.segs[s as usize].selector = sels[s as usize];
        }
        self.ldtr.selector = ldt;
        self.poll_interrupts();
        if let Err(f) = self.after_commit(bus, sels, ldt, new_flags & VM != 0, new32, error) {
            // SDM Vol. 3A §7.3: faults after the commit point are handled in
            // the context of the new task. During an event delivery the
            // caller delivers it (and applies the double-fault table); for
            // an instruction (JMP, CALL, IRET, INT n) it is delivered here,
            // once: that delivery's own task switches are `Event`s, so this
            // never nests deeper.
            if kind == SwitchKind::Event {
                return Err(f);
            }
            self.deliver_fault(bus, f);
            return Ok(());
        }
        if trap {
            // The T bit raises #DB after the switch (DR6.BT), before the new
            // task's first instruction.
            self.dr[6] |= 1 << 15;
            self.pending_debug_trap = true;
            self.poll_interrupts();
        }
        Ok(())
    }

    /// The steps after the commit point that can fault: the new task's
    /// segments, its EIP against the CS limit, and the error code of an
    /// exception delivered through a task gate, pushed on the new stack.
    fn after_commit(
        &mut self,
        bus: &mut dyn Bus,
        sels: [u16; 6],
        ldt: u16,
        v86: bool,
        new32: bool,
        error: Option<u32>,
    ) -> Result<(), Fault> {
        self.load_task_segments(bus, sels, ldt, v86)?;
        if self.eip > self.segs[SegReg::Cs as usize].limit {
            return Err(Fault::gp(0));
        }
        if let Some(e) = error {
            self.push(bus, if new32 { 4 } else { 2 }, e)?;
        }
        Ok(())
    }

    fn set_tss_busy(&mut self, bus: &mut dyn Bus, sel: u16, busy: bool) -> Result<(), Fault> {
        if let Some(a) = self.descriptor_addr(sel) {
            let access = self.read_system_u32(bus, a + 4)? >> 8;
            let v = if busy { access | 2 } else { access & !2 };
            self.write_system_u8(bus, a + 5, v as u8)?;
        }
        Ok(())
    }

    /// Load LDTR and the segment registers of the new task, with the checks
    /// of SDM Vol. 3A §7.3 step 14 (every failure is #TS with the selector,
    /// or #NP/#SS when not present).
    fn load_task_segments(
        &mut self,
        bus: &mut dyn Bus,
        sels: [u16; 6],
        ldt: u16,
        v86: bool,
    ) -> Result<(), Fault> {
        // LDT.
        if ldt & 0xFFFC == 0 {
            self.ldtr = Segment {
                selector: ldt,
                base: 0,
                limit: 0,
                attrs: 0,
            };
        } else {
            if ldt & 4 != 0 {
                return Err(ts_sel(ldt));
            }
            let a = self.descriptor_addr(ldt).ok_or_else(|| ts_sel(ldt))?;
            let d = self.read_descriptor_at(bus, a)?;
            if d.is_code_data() || d.typ() != sys::LDT {
                return Err(ts_sel(ldt));
            }
            if !d.present() {
                return Err(ts_sel(ldt));
            }
            self.ldtr = d.to_segment(ldt);
        }
        if v86 {
            for s in SegReg::ALL {
                let sel = sels[s as usize];
                self.segs[s as usize] = Segment {
                    selector: sel,
                    base: (sel as u32) << 4,
                    limit: 0xFFFF,
                    attrs: 0xF3,
                };
            }
            self.cpl = 3;
            return Ok(());
        }
        // CS decides the CPL.
        let cs = sels[SegReg::Cs as usize];
        let cpl = (cs & 3) as u8;
        if cs & 0xFFFC == 0 {
            return Err(ts_sel(cs));
        }
        let a = self.descriptor_addr(cs).ok_or_else(|| ts_sel(cs))?;
        let d = self.read_descriptor_at(bus, a)?;
        if !d.is_code() || (!d.conforming() && d.dpl() != cpl) || (d.conforming() && d.dpl() > cpl)
        {
            return Err(ts_sel(cs));
        }
        if !d.present() {
            return Err(np_sel(cs));
        }
        self.set_accessed(bus, cs, d)?;
        self.segs[SegReg::Cs as usize] = d.to_segment(cs);
        self.cpl = cpl;
        // SS.
        let ss = sels[SegReg::Ss as usize];
        if ss & 0xFFFC == 0 {
            return Err(ts_sel(ss));
        }
        let a = self.descriptor_addr(ss).ok_or_else(|| ts_sel(ss))?;
        let d = self.read_descriptor_at(bus, a)?;
        if (ss & 3) as u8 != cpl || !d.writable() || d.dpl() != cpl {
            return Err(ts_sel(ss));
        }
        if !d.present() {
            return Err(ss_sel(ss));
        }
        self.set_accessed(bus, ss, d)?;
        self.segs[SegReg::Ss as usize] = d.to_segment(ss);
        // Data segments.
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let sel = sels[s as usize];
            if sel & 0xFFFC == 0 {
                self.segs[s as usize] = Segment {
                    selector: sel,
                    base: 0,
                    limit: 0,
                    attrs: 0,
                };
                continue;
            }
            let a = self.descriptor_addr(sel).ok_or_else(|| ts_sel(sel))?;
            let d = self.read_descriptor_at(bus, a)?;
            if !d.readable()
                || ((d.is_data() || !d.conforming())
                    && (d.dpl() < cpl || d.dpl() < (sel & 3) as u8))
            {
                return Err(ts_sel(sel));
            }
            if !d.present() {
                return Err(np_sel(sel));
            }
            self.set_accessed(bus, sel, d)?;
            self.segs[s as usize] = d.to_segment(sel);
        }
        let _ = Vector::InvalidTss;
        let _ = gpr::EAX;
        Ok(())
    }
}
