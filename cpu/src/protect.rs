//! The privilege rules of protected mode (SDM Vol. 3A chapter 5; Vol. 2
//! JMP, CALL, RET, IRET): far transfers within a ring, through call gates to
//! inner rings with the stack switch and parameter copy, returns to outer
//! rings, IRET (same ring, outer ring, to virtual-8086 mode, to a nested
//! task), the IOPL tests and the TSS I/O permission bitmap.

use crate::flags::{self, IF, IOPL, NT, RF, VIF, VIP, VM};
use crate::interrupt::Fault;
use crate::processor::{Cpu, CpuMode};
use crate::regs::{gpr, SegReg, Segment};
use crate::segment::{gp_sel, np_sel, ss_sel, sys, Descriptor};
use crate::task::SwitchKind;
use crate::Bus;

impl Cpu {
    /// IOPL from EFLAGS.
    #[inline]
    pub(crate) fn iopl(&self) -> u8 {
        ((self.flags.get() & IOPL) >> 12) as u8
    }

    /// Load CS in real or virtual-8086 mode (selector × 16, nothing checked).
    fn load_cs_real(&mut self, sel: u16) {
        self.load_seg_real(SegReg::Cs, sel);
        if self.mode() == CpuMode::Virtual8086 {
            let cs = &mut self.segs[SegReg::Cs as usize];
            cs.limit = 0xFFFF;
            cs.attrs = 0xF3;
        }
    }

    /// Far JMP to `sel:off` (`size` = operand size in bytes).
    pub(crate) fn far_jmp(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        off: u32,
        size: u8,
    ) -> Result<(), Fault> {
        if !self.protected() {
            if off > self.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.load_cs_real(sel);
            self.eip = off;
            return Ok(());
        }
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_descriptor(bus, sel)?;
        if d.is_code() {
            self.check_code_target(sel, d)?;
            return self.commit_cs(bus, sel, d, off, size, self.cpl);
        }
        match d.typ() {
            sys::CALL_GATE16 | sys::CALL_GATE32 if !d.is_code_data() => {
                let (target, td, toff) = self.through_call_gate(bus, sel, d)?;
                // JMP through a gate never changes privilege.
                if (!td.conforming() && td.dpl() != self.cpl)
                    || (td.conforming() && td.dpl() > self.cpl)
                {
                    return Err(gp_sel(target));
                }
                let gsize = if d.sys32() { 4 } else { 2 };
                self.commit_cs(bus, target, td, toff, gsize, self.cpl)
            }
            sys::TASK_GATE | sys::TSS16_AVAIL | sys::TSS32_AVAIL if !d.is_code_data() => {
                self.task_transfer(bus, sel, d, SwitchKind::Jmp)
            }
            _ => Err(gp_sel(sel)),
        }
    }

    /// Far CALL to `sel:off`.
    pub(crate) fn far_call(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        off: u32,
        size: u8,
    ) -> Result<(), Fault> {
        let ret_cs = self.segs[SegReg::Cs as usize].selector as u32;
        let ret_eip = self.eip;
        if !self.protected() {
            if off > self.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.push_return(bus, size, ret_cs, ret_eip)?;
            self.load_cs_real(sel);
            self.eip = off;
            return Ok(());
        }
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_descriptor(bus, sel)?;
        if d.is_code() {
            self.check_code_target(sel, d)?;
            let lim = if size == 2 { off & 0xFFFF } else { off };
            if lim > d.limit() {
                return Err(Fault::gp(0));
            }
            self.push_return(bus, size, ret_cs, ret_eip)?;
            return self.commit_cs(bus, sel, d, off, size, self.cpl);
        }
        match d.typ() {
            sys::CALL_GATE16 | sys::CALL_GATE32 if !d.is_code_data() => {
                self.call_gate(bus, sel, d, ret_cs, ret_eip)
            }
            sys::TASK_GATE | sys::TSS16_AVAIL | sys::TSS32_AVAIL if !d.is_code_data() => {
                self.task_transfer(bus, sel, d, SwitchKind::Call)
            }
            _ => Err(gp_sel(sel)),
        }
    }

    fn push_return(&mut self, bus: &mut dyn Bus, size: u8, cs: u32, eip: u32) -> Result<(), Fault> {
        let esp = self.regs[gpr::ESP];
        let r = self
            .push(bus, size, cs)
            .and_then(|_| self.push(bus, size, eip));
        if r.is_err() {
            self.regs[gpr::ESP] = esp;
        }
        r
    }

    /// The privilege test for a direct far JMP/CALL to a code segment.
    fn check_code_target(&self, sel: u16, d: Descriptor) -> Result<(), Fault> {
        let rpl = (sel & 3) as u8;
        let ok = if d.conforming() {
            d.dpl() <= self.cpl
        } else {
            rpl <= self.cpl && d.dpl() == self.cpl
        };
        if !ok {
            return Err(gp_sel(sel));
        }
        if !d.present() {
            return Err(np_sel(sel));
        }
        Ok(())
    }

    /// Load CS (RPL forced to `cpl`) and EIP after every check passed.
    fn commit_cs(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        d: Descriptor,
        off: u32,
        size: u8,
        cpl: u8,
    ) -> Result<(), Fault> {
        let off = if size == 2 { off & 0xFFFF } else { off };
        if off > d.limit() {
            return Err(Fault::gp(0));
        }
        self.set_accessed(bus, sel, d)?;
        self.segs[SegReg::Cs as usize] = d.to_segment((sel & 0xFFFC) | cpl as u16);
        self.cpl = cpl;
        self.eip = off;
        Ok(())
    }

    /// Checks on a call gate and its target (SDM Vol. 2A CALL, "call gate").
    fn through_call_gate(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        gate: Descriptor,
    ) -> Result<(u16, Descriptor, u32), Fault> {
        if gate.dpl() < self.cpl || gate.dpl() < (sel & 3) as u8 {
            return Err(gp_sel(sel));
        }
        if !gate.present() {
            return Err(np_sel(sel));
        }
        let target = gate.gate_selector();
        if target & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let td = self.read_descriptor(bus, target)?;
        if !td.is_code() || td.dpl() > self.cpl {
            return Err(gp_sel(target));
        }
        if !td.present() {
            return Err(np_sel(target));
        }
        Ok((target, td, gate.gate_offset()))
    }

    /// CALL through a call gate, switching stacks for an inner ring and
    /// copying the gate's parameter count from the old stack.
    fn call_gate(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        gate: Descriptor,
        ret_cs: u32,
        ret_eip: u32,
    ) -> Result<(), Fault> {
        let (target, td, off) = self.through_call_gate(bus, sel, gate)?;
        let gsize: u8 = if gate.sys32() { 4 } else { 2 };
        if off > td.limit() {
            return Err(Fault::gp(0));
        }
        if td.conforming() || td.dpl() == self.cpl {
            self.push_return(bus, gsize, ret_cs, ret_eip)?;
            return self.commit_cs(bus, target, td, off, gsize, self.cpl);
        }
        // More privileged: new stack from the TSS, then old SS:ESP, the
        // parameters, and the return address (SDM Vol. 3A §5.8.5).
        let new_cpl = td.dpl();
        let old_ss = self.segs[SegReg::Ss as usize].selector as u32;
        let old_esp = self.regs[gpr::ESP];
        let old_big = self.segs[SegReg::Ss as usize].big();
        let count = gate.gate_params();
        let mut params = [0u32; 31];
        for (i, p) in params.iter_mut().enumerate().take(count as usize) {
            let off = old_esp.wrapping_add(i as u32 * gsize as u32);
            let off = if old_big { off } else { off & 0xFFFF };
            *p = self.read_mem(bus, SegReg::Ss, off, gsize)?;
        }
        let saved = (self.segs, self.regs[gpr::ESP], self.cpl);
        let r = (|| -> Result<(), Fault> {
            let (ss, esp) = self.tss_stack(bus, new_cpl)?;
            self.load_stack_for_ring(bus, ss, esp, new_cpl)?;
            let sf = |f: Fault| if f.vector == 12 { ss_sel(ss) } else { f };
            self.push(bus, gsize, old_ss).map_err(sf)?;
            self.push(bus, gsize, old_esp).map_err(sf)?;
            for i in (0..count as usize).rev() {
                self.push(bus, gsize, params[i]).map_err(sf)?;
            }
            self.push(bus, gsize, ret_cs).map_err(sf)?;
            self.push(bus, gsize, ret_eip).map_err(sf)?;
            self.commit_cs(bus, target, td, off, gsize, new_cpl)
        })();
        if r.is_err() {
            (self.segs, self.regs[gpr::ESP], self.cpl) = saved;
        }
        r
    }

    /// JMP/CALL to a TSS or a task gate.
    fn task_transfer(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        d: Descriptor,
        kind: SwitchKind,
    ) -> Result<(), Fault> {
        if d.dpl() < self.cpl || d.dpl() < (sel & 3) as u8 {
            return Err(gp_sel(sel));
        }
        if !d.present() {
            return Err(np_sel(sel));
        }
        let tss = if d.typ() == sys::TASK_GATE {
            d.gate_selector()
        } else {
            sel
        };
        self.task_switch(bus, tss, kind, None)
    }

    /// Far RET (`size` = operand size, `imm` = bytes of parameters to drop).
    pub(crate) fn far_ret(&mut self, bus: &mut dyn Bus, size: u8, imm: u32) -> Result<(), Fault> {
        let off = self.stack_peek(bus, 0, size)?;
        let sel = self.stack_peek(bus, size as u32, 2)? as u16;
        if !self.protected() {
            let off = if size == 2 { off & 0xFFFF } else { off };
            if off > self.segs[SegReg::Cs as usize].limit {
                return Err(Fault::gp(0));
            }
            self.load_cs_real(sel);
            self.eip = off;
            self.stack_adjust(2 * size as u32 + imm);
            return Ok(());
        }
        let rpl = (sel & 3) as u8;
        let d = self.check_return_cs(bus, sel)?;
        if rpl == self.cpl {
            self.commit_cs(bus, sel, d, off, size, rpl)?;
            self.stack_adjust(2 * size as u32 + imm);
            return Ok(());
        }
        // To an outer ring: SS:ESP follow the parameters.
        let depth = 2 * size as u32 + imm;
        let new_esp = self.stack_peek(bus, depth, size)?;
        let new_ss = self.stack_peek(bus, depth + size as u32, 2)? as u16;
        let ssd = self.check_outer_stack(bus, new_ss, rpl)?;
        self.commit_cs(bus, sel, d, off, size, rpl)?;
        self.set_accessed(bus, new_ss, ssd)?;
        self.segs[SegReg::Ss as usize] = ssd.to_segment(new_ss);
        self.set_stack_pointer(new_esp.wrapping_add(imm), ssd.big());
        self.null_inaccessible_segments();
        Ok(())
    }

    fn set_stack_pointer(&mut self, esp: u32, big: bool) {
        self.regs[gpr::ESP] = if big {
            esp
        } else {
            (self.regs[gpr::ESP] & 0xFFFF_0000) | (esp & 0xFFFF)
        };
    }

    /// The CS checks of RET and IRET (SDM Vol. 2B RET, "return-to-...").
    fn check_return_cs(&mut self, bus: &mut dyn Bus, sel: u16) -> Result<Descriptor, Fault> {
        if sel & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let rpl = (sel & 3) as u8;
        if rpl < self.cpl {
            return Err(gp_sel(sel));
        }
        let d = self.read_descriptor(bus, sel)?;
        if !d.is_code() || (d.conforming() && d.dpl() > rpl) || (!d.conforming() && d.dpl() != rpl)
        {
            return Err(gp_sel(sel));
        }
        if !d.present() {
            return Err(np_sel(sel));
        }
        Ok(d)
    }

    /// The SS checks for a return to an outer ring.
    fn check_outer_stack(
        &mut self,
        bus: &mut dyn Bus,
        ss: u16,
        rpl: u8,
    ) -> Result<Descriptor, Fault> {
        if ss & 0xFFFC == 0 {
            return Err(Fault::gp(0));
        }
        let d = self.read_descriptor(bus, ss)?;
        if (ss & 3) as u8 != rpl || !d.writable() || d.dpl() != rpl {
            return Err(gp_sel(ss));
        }
        if !d.present() {
            return Err(ss_sel(ss));
        }
        Ok(d)
    }

    /// IRET/IRETD in every mode. Any IRET ends NMI blocking.
    pub(crate) fn iret(&mut self, bus: &mut dyn Bus, size: u8) -> Result<(), Fault> {
        self.nmi_blocked = false;
        if self.nmi_pending {
            self.poll_interrupts();
        }
        match self.mode() {
            CpuMode::Real => self.iret_real(bus, size, true),
            CpuMode::Virtual8086 => {
                // Without VME, IRET in V86 needs IOPL 3 (SDM Vol. 3A §20.2.7).
                if self.iopl() < 3 {
                    return Err(Fault::gp(0));
                }
                self.iret_real(bus, size, false)
            }
            CpuMode::Protected => self.iret_protected(bus, size),
        }
    }

    fn iret_real(&mut self, bus: &mut dyn Bus, size: u8, can_set_iopl: bool) -> Result<(), Fault> {
        let ip = self.stack_peek(bus, 0, size)?;
        let cs = self.stack_peek(bus, size as u32, 2)? as u16;
        let fl = self.stack_peek(bus, 2 * size as u32, size)?;
        let ip = if size == 2 { ip & 0xFFFF } else { ip };
        if ip > self.segs[SegReg::Cs as usize].limit {
            return Err(Fault::gp(0));
        }
        self.load_cs_real(cs);
        self.eip = ip;
        self.stack_adjust(3 * size as u32);
        let cur = self.flags.get();
        let mut keep = if size == 2 {
            0xFFFF_0000
        } else {
            VM | VIF | VIP
        };
        if !can_set_iopl {
            keep |= IOPL;
        }
        let new = if size == 2 {
            (cur & keep) | (fl & 0xFFFF & !keep)
        } else {
            (fl & 0x0025_7FD5 & !keep) | (cur & keep)
        };
        self.set_eflags(new);
        Ok(())
    }

    fn iret_protected(&mut self, bus: &mut dyn Bus, size: u8) -> Result<(), Fault> {
        if self.flags.control(NT) {
            // Return from a nested task through the back link.
            let back = self.read_system_u16(bus, self.tr.base)?;
            return self.task_switch(bus, back, SwitchKind::Iret, None);
        }
        let eip = self.stack_peek(bus, 0, size)?;
        let sel = self.stack_peek(bus, size as u32, 2)? as u16;
        let fl = self.stack_peek(bus, 2 * size as u32, size)?;
        if size == 4 && fl & VM != 0 && self.cpl == 0 {
            return self.iret_to_v86(bus, eip, sel, fl);
        }
        let rpl = (sel & 3) as u8;
        let d = self.check_return_cs(bus, sel)?;
        let old_cpl = self.cpl;
        let new_flags = self.iret_flags(fl, size, old_cpl);
        if rpl == old_cpl {
            self.commit_cs(bus, sel, d, eip, size, rpl)?;
            self.stack_adjust(3 * size as u32);
            self.set_eflags(new_flags);
            return Ok(());
        }
        let new_esp = self.stack_peek(bus, 3 * size as u32, size)?;
        let new_ss = self.stack_peek(bus, 4 * size as u32, 2)? as u16;
        let ssd = self.check_outer_stack(bus, new_ss, rpl)?;
        self.commit_cs(bus, sel, d, eip, size, rpl)?;
        self.set_accessed(bus, new_ss, ssd)?;
        self.segs[SegReg::Ss as usize] = ssd.to_segment(new_ss);
        self.set_stack_pointer(new_esp, ssd.big());
        self.set_eflags(new_flags);
        self.null_inaccessible_segments();
        Ok(())
    }

    /// The EFLAGS an IRET at `cpl` loads (SDM Vol. 2A IRET): IF only if
    /// CPL ≤ IOPL, IOPL/VIF/VIP only at CPL 0, VM never from here.
    fn iret_flags(&self, popped: u32, size: u8, cpl: u8) -> u32 {
        let cur = self.flags.get();
        let mut mask = flags::STATUS | flags::TF | flags::DF | NT | RF | flags::AC | flags::ID;
        if cpl <= self.iopl() {
            mask |= IF;
        }
        if cpl == 0 {
            mask |= IOPL | VIF | VIP;
        }
        if size == 2 {
            mask &= 0xFFFF;
        }
        (cur & !mask) | (popped & mask)
    }

    fn iret_to_v86(&mut self, bus: &mut dyn Bus, eip: u32, cs: u16, fl: u32) -> Result<(), Fault> {
        let esp = self.stack_peek(bus, 12, 4)?;
        let ss = self.stack_peek(bus, 16, 4)? as u16;
        let es = self.stack_peek(bus, 20, 4)? as u16;
        let ds = self.stack_peek(bus, 24, 4)? as u16;
        let fs = self.stack_peek(bus, 28, 4)? as u16;
        let gs = self.stack_peek(bus, 32, 4)? as u16;
        self.flags.set(fl | flags::RESERVED1);
        for (s, v) in [
            (SegReg::Cs, cs),
            (SegReg::Ss, ss),
            (SegReg::Es, es),
            (SegReg::Ds, ds),
            (SegReg::Fs, fs),
            (SegReg::Gs, gs),
        ] {
            self.segs[s as usize] = Segment {
                selector: v,
                base: (v as u32) << 4,
                limit: 0xFFFF,
                attrs: 0xF3,
            };
        }
        self.regs[gpr::ESP] = esp;
        self.eip = eip & 0xFFFF;
        self.cpl = 3;
        self.poll_interrupts();
        Ok(())
    }

    /// The I/O permission test for `size` bytes at `port` (SDM Vol. 1 §19.5):
    /// allowed in real mode, at CPL ≤ IOPL in protected mode; otherwise (and
    /// always in virtual-8086 mode) every bit for the ports in the TSS
    /// bitmap must be clear.
    pub(crate) fn io_allowed(
        &mut self,
        bus: &mut dyn Bus,
        port: u16,
        size: u8,
    ) -> Result<(), Fault> {
        match self.mode() {
            CpuMode::Real => return Ok(()),
            CpuMode::Protected if self.cpl <= self.iopl() => return Ok(()),
            _ => {}
        }
        // Only a 32-bit TSS has a bitmap.
        if self.tr.attrs & 0x8 == 0 || self.tr.limit < 0x67 {
            return Err(Fault::gp(0));
        }
        let base = self.read_system_u16(bus, self.tr.base + 0x66)? as u32;
        let byte = base + port as u32 / 8;
        if byte + 1 > self.tr.limit {
            return Err(Fault::gp(0));
        }
        let bits = self.read_system_u16(bus, self.tr.base + byte)? as u32;
        let mask = ((1u32 << size) - 1) << (port % 8);
        if bits & mask != 0 {
            return Err(Fault::gp(0));
        }
        Ok(())
    }

    /// CLI/STI/PUSHF/POPF/INT n/IRET sensitivity to IOPL: whether the
    /// instruction traps (#GP(0)) at the current CPL (SDM Vol. 3A §20.2.7).
    pub(crate) fn iopl_trap(&self) -> bool {
        match self.mode() {
            CpuMode::Real => false,
            CpuMode::Protected => self.cpl > self.iopl(),
            CpuMode::Virtual8086 => self.iopl() < 3,
        }
    }
}
