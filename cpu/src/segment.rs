//! Descriptors and segment-register loads (SDM Vol. 3A §3.4–3.5, §5.5–5.7;
//! Vol. 2 "MOV—Move", "POP", "LDS/LES/LFS/LGS/LSS", "LAR", "LSL", "VERR").
//!
//! Every protected-mode segment load goes through [`Cpu::load_seg`], which
//! performs the checks in the SDM's order and raises the fault it names,
//! with the selector (RPL bits cleared) as the error code.

use crate::interrupt::{Fault, Vector};
use crate::processor::{Cpu, CpuMode};
use crate::regs::{SegReg, Segment};
use crate::Bus;

/// A raw 8-byte descriptor with accessors named as in the SDM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor(pub u64);

/// System-descriptor types (S = 0) of SDM Vol. 3A Table 3-2.
pub mod sys {
    /// 16-bit TSS (available).
    pub const TSS16_AVAIL: u8 = 1;
    /// LDT.
    pub const LDT: u8 = 2;
    /// 16-bit TSS (busy).
    pub const TSS16_BUSY: u8 = 3;
    /// 16-bit call gate.
    pub const CALL_GATE16: u8 = 4;
    /// Task gate.
    pub const TASK_GATE: u8 = 5;
    /// 16-bit interrupt gate.
    pub const INT_GATE16: u8 = 6;
    /// 16-bit trap gate.
    pub const TRAP_GATE16: u8 = 7;
    /// 32-bit TSS (available).
    pub const TSS32_AVAIL: u8 = 9;
    /// 32-bit TSS (busy).
    pub const TSS32_BUSY: u8 = 11;
    /// 32-bit call gate.
    pub const CALL_GATE32: u8 = 12;
    /// 32-bit interrupt gate.
    pub const INT_GATE32: u8 = 14;
    /// 32-bit trap gate.
    pub const TRAP_GATE32: u8 = 15;
}

impl Descriptor {
    /// Segment base.
    pub fn base(self) -> u32 {
        (((self.0 >> 16) & 0xFF_FFFF) | (((self.0 >> 56) & 0xFF) << 24)) as u32
    }
    /// Limit in bytes (scaled by G).
    pub fn limit(self) -> u32 {
        let raw = ((self.0 & 0xFFFF) | (((self.0 >> 48) & 0xF) << 16)) as u32;
        if self.0 & (1 << 55) != 0 {
            (raw << 12) | 0xFFF
        } else {
            raw
        }
    }
    /// Access byte (P, DPL, S, type).
    pub fn access(self) -> u8 {
        (self.0 >> 40) as u8
    }
    /// The attribute bits kept in a descriptor cache (access byte and the
    /// AVL/L/D/G nibble).
    pub fn attrs(self) -> u16 {
        ((self.0 >> 40) & 0xF0FF) as u16
    }
    /// Type field (4 bits).
    pub fn typ(self) -> u8 {
        self.access() & 0xF
    }
    /// S bit: code/data (true) or system (false).
    pub fn is_code_data(self) -> bool {
        self.access() & 0x10 != 0
    }
    /// Descriptor privilege level.
    pub fn dpl(self) -> u8 {
        (self.access() >> 5) & 3
    }
    /// Present bit.
    pub fn present(self) -> bool {
        self.access() & 0x80 != 0
    }
    /// A code segment.
    pub fn is_code(self) -> bool {
        self.is_code_data() && self.typ() & 8 != 0
    }
    /// A data segment.
    pub fn is_data(self) -> bool {
        self.is_code_data() && self.typ() & 8 == 0
    }
    /// Conforming code.
    pub fn conforming(self) -> bool {
        self.is_code() && self.typ() & 4 != 0
    }
    /// Readable code or any data.
    pub fn readable(self) -> bool {
        self.is_data() || (self.is_code() && self.typ() & 2 != 0)
    }
    /// Writable data.
    pub fn writable(self) -> bool {
        self.is_data() && self.typ() & 2 != 0
    }
    /// D/B bit.
    pub fn big(self) -> bool {
        self.0 & (1 << 54) != 0
    }
    /// Gate: target selector.
    pub fn gate_selector(self) -> u16 {
        (self.0 >> 16) as u16
    }
    /// Gate: target offset (16 bits for 16-bit gates).
    pub fn gate_offset(self) -> u32 {
        let lo = (self.0 & 0xFFFF) as u32;
        if self.typ() & 8 != 0 {
            lo | (((self.0 >> 48) as u32) << 16)
        } else {
            lo
        }
    }
    /// Call gate: parameter count.
    pub fn gate_params(self) -> u32 {
        ((self.0 >> 32) & 0x1F) as u32
    }
    /// Gate or TSS is 32-bit (type bit 3).
    pub fn sys32(self) -> bool {
        self.typ() & 8 != 0
    }

    /// The descriptor cache contents for `selector`.
    pub fn to_segment(self, selector: u16) -> Segment {
        Segment {
            selector,
            base: self.base(),
            limit: self.limit(),
            attrs: self.attrs(),
        }
    }
}

/// Error code for a fault naming `sel` (RPL bits cleared).
#[inline]
pub(crate) fn sel_error(sel: u16) -> u32 {
    (sel & 0xFFFC) as u32
}

pub(crate) fn gp_sel(sel: u16) -> Fault {
    Fault::gp(sel_error(sel))
}

pub(crate) fn np_sel(sel: u16) -> Fault {
    Fault::with_error(Vector::SegmentNotPresent, sel_error(sel))
}

pub(crate) fn ss_sel(sel: u16) -> Fault {
    Fault::ss(sel_error(sel))
}

pub(crate) fn ts_sel(sel: u16) -> Fault {
    Fault::with_error(Vector::InvalidTss, sel_error(sel))
}

impl Cpu {
    /// Linear address of the descriptor `sel` names, or `None` if it lies
    /// beyond its table's limit (or the LDT is null).
    pub(crate) fn descriptor_addr(&self, sel: u16) -> Option<u32> {
        let index = (sel & 0xFFF8) as u32;
        let (base, limit) = if sel & 4 != 0 {
            if self.ldtr.selector & 0xFFFC == 0 {
                return None;
            }
            (self.ldtr.base, self.ldtr.limit)
        } else {
            (self.gdtr.base, self.gdtr.limit as u32)
        };
        (index + 7 <= limit).then(|| base.wrapping_add(index))
    }

    /// Read the descriptor `sel` names; #GP(sel) if it is outside its table.
    pub(crate) fn read_descriptor(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
    ) -> Result<Descriptor, Fault> {
        let a = self.descriptor_addr(sel).ok_or_else(|| gp_sel(sel))?;
        self.read_descriptor_at(bus, a)
    }

    /// Read 8 descriptor bytes at a linear address (a supervisor access).
    pub(crate) fn read_descriptor_at(
        &mut self,
        bus: &mut dyn Bus,
        a: u32,
    ) -> Result<Descriptor, Fault> {
        let lo = self.read_system_u32(bus, a)? as u64;
        let hi = self.read_system_u32(bus, a.wrapping_add(4))? as u64;
        Ok(Descriptor(lo | (hi << 32)))
    }

    /// Set the accessed bit of a code/data descriptor, as a load does.
    pub(crate) fn set_accessed(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        d: Descriptor,
    ) -> Result<(), Fault> {
        if d.is_code_data() && d.typ() & 1 == 0 {
            if let Some(a) = self.descriptor_addr(sel) {
                self.write_system_u8(bus, a.wrapping_add(5), d.access() | 1)?;
            }
        }
        Ok(())
    }

    /// Load a data or stack segment register (MOV, POP, LDS & co.).
    pub(crate) fn load_seg(&mut self, bus: &mut dyn Bus, s: SegReg, sel: u16) -> Result<(), Fault> {
        match self.mode() {
            CpuMode::Real | CpuMode::Virtual8086 => {
                self.load_seg_real(s, sel);
                if self.mode() == CpuMode::Virtual8086 {
                    // V86 segments are 64 KiB read/write data at DPL 3.
                    let seg = &mut self.segs[s as usize];
                    seg.limit = 0xFFFF;
                    seg.attrs = 0xF3;
                }
                Ok(())
            }
            CpuMode::Protected => self.load_seg_protected(bus, s, sel),
        }
    }

    fn load_seg_protected(&mut self, bus: &mut dyn Bus, s: SegReg, sel: u16) -> Result<(), Fault> {
        let cpl = self.cpl();
        let rpl = (sel & 3) as u8;
        if sel & 0xFFFC == 0 {
            if s == SegReg::Ss {
                return Err(Fault::gp(0));
            }
            // A null selector loads an unusable segment; using it is #GP(0).
            self.segs[s as usize] = Segment {
                selector: sel,
                base: 0,
                limit: 0,
                attrs: 0,
            };
            return Ok(());
        }
        let d = self.read_descriptor(bus, sel)?;
        if s == SegReg::Ss {
            if rpl != cpl || !d.writable() || d.dpl() != cpl {
                return Err(gp_sel(sel));
            }
            if !d.present() {
                return Err(ss_sel(sel));
            }
        } else {
            if !d.readable() {
                return Err(gp_sel(sel));
            }
            if (d.is_data() || !d.conforming()) && (rpl > d.dpl() || cpl > d.dpl()) {
                return Err(gp_sel(sel));
            }
            if !d.present() {
                return Err(np_sel(sel));
            }
        }
        self.set_accessed(bus, sel, d)?;
        self.segs[s as usize] = d.to_segment(sel);
        self.segs[s as usize].attrs |= 1; // accessed
        Ok(())
    }

    /// After a return to an outer ring, data segment registers that the new
    /// CPL may not use are loaded with null (SDM Vol. 2A RET, IRET).
    pub(crate) fn null_inaccessible_segments(&mut self) {
        let cpl = self.cpl();
        for s in [SegReg::Es, SegReg::Ds, SegReg::Fs, SegReg::Gs] {
            let seg = self.segs[s as usize];
            let data_or_nonconf = seg.attrs & 0x18 == 0x10 || seg.attrs & 0x1C == 0x18;
            if seg.attrs & 0x80 == 0 || (data_or_nonconf && (((seg.attrs >> 5) & 3) as u8) < cpl) {
                self.segs[s as usize] = Segment {
                    selector: 0,
                    base: 0,
                    limit: 0,
                    attrs: 0,
                };
            }
        }
    }

    /// LAR/LSL: which descriptors are visible at this CPL (SDM Vol. 2A LAR):
    /// returns the descriptor if the load would pass the privilege test.
    pub(crate) fn visible_descriptor(
        &mut self,
        bus: &mut dyn Bus,
        sel: u16,
        for_lsl: bool,
    ) -> Result<Option<Descriptor>, Fault> {
        if sel & 0xFFFC == 0 {
            return Ok(None);
        }
        let Some(a) = self.descriptor_addr(sel) else {
            return Ok(None);
        };
        let d = self.read_descriptor_at(bus, a)?;
        let ok_type = if d.is_code_data() {
            true
        } else {
            match d.typ() {
                sys::TSS16_AVAIL
                | sys::LDT
                | sys::TSS16_BUSY
                | sys::TSS32_AVAIL
                | sys::TSS32_BUSY => true,
                sys::CALL_GATE16 | sys::TASK_GATE | sys::CALL_GATE32 => !for_lsl,
                _ => false,
            }
        };
        if !ok_type {
            return Ok(None);
        }
        let conforming = d.conforming();
        if !conforming && (self.cpl() > d.dpl() || (sel & 3) as u8 > d.dpl()) {
            return Ok(None);
        }
        Ok(Some(d))
    }
}
