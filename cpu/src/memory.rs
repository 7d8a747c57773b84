//! Guest memory access from the CPU's point of view: segment checks
//! (segmentation, SDM Vol. 3A §5.3), linear → physical (paging comes with the
//! MMU milestone), and MMIO routed to the bus.

use crate::flags;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::SegReg;
use crate::Bus;

impl Cpu {
    /// Check a read of `size` bytes at `off` in segment `s` and return the
    /// linear address (SDM Vol. 3A §5.3 limit checks, §5.4 type checks).
    #[inline(always)]
    pub(crate) fn seg_check(&self, s: SegReg, off: u32, size: u32) -> Result<u32, Fault> {
        self.seg_check_access(s, off, size, false)
    }

    /// Check a write of `size` bytes at `off` in segment `s`.
    #[inline(always)]
    pub(crate) fn seg_check_write(&self, s: SegReg, off: u32, size: u32) -> Result<u32, Fault> {
        self.seg_check_access(s, off, size, true)
    }

    /// The limit test of every mode (a 386 raises #GP, or #SS for SS, when
    /// any byte lies beyond the limit; expand-down segments invert the
    /// test), plus, in protected mode, the type test: a null or unusable
    /// segment, a write to code or read-only data, a read of execute-only
    /// code.
    #[inline(always)]
    fn seg_check_access(&self, s: SegReg, off: u32, size: u32, write: bool) -> Result<u32, Fault> {
        let seg = &self.segs[s as usize];
        let last = off as u64 + size as u64 - 1;
        let bad = if seg.expand_down() {
            let upper: u64 = if seg.big() { 0xFFFF_FFFF } else { 0xFFFF };
            (off as u64) <= seg.limit as u64 || last > upper
        } else {
            last > seg.limit as u64
        };
        if bad || (self.protected() && !type_allows(seg.attrs, write)) {
            return Err(if s == SegReg::Ss {
                Fault::ss(0)
            } else {
                Fault::gp(0)
            });
        }
        Ok(seg.base.wrapping_add(off))
    }

    /// Read a dword of a system structure (descriptor table, TSS) at a
    /// linear address: a supervisor access whatever the CPL.
    pub(crate) fn read_system_u32(&mut self, bus: &mut dyn Bus, lin: u32) -> Result<u32, Fault> {
        Ok(self.read_linear_u32(bus, lin))
    }

    /// Read a word of a system structure.
    pub(crate) fn read_system_u16(&mut self, bus: &mut dyn Bus, lin: u32) -> Result<u16, Fault> {
        Ok(self.read_linear_u16(bus, lin))
    }

    /// Write a byte of a system structure (accessed and busy bits).
    pub(crate) fn write_system_u8(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        v: u8,
    ) -> Result<(), Fault> {
        self.write_linear(bus, lin, 1, v as u32);
        Ok(())
    }

    /// Write `size` bytes of a system structure (TSS state save).
    pub(crate) fn write_system(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        v: u32,
    ) -> Result<(), Fault> {
        self.write_linear(bus, lin, size, v);
        Ok(())
    }

    #[inline(always)]
    fn phys(&self, lin: u32) -> u32 {
        lin
    }

    /// Read a byte at a linear address.
    #[inline(always)]
    pub(crate) fn read_linear_u8(&mut self, bus: &mut dyn Bus, lin: u32) -> u8 {
        let p = self.phys(lin);
        match self.mem.read_u8(p) {
            Some(v) => v,
            None => {
                bus.sync_time(self.cycles);
                bus.mmio_read(p & self.mem.a20_mask(), 1) as u8
            }
        }
    }

    /// Read a word at a linear address.
    #[inline(always)]
    pub(crate) fn read_linear_u16(&mut self, bus: &mut dyn Bus, lin: u32) -> u16 {
        let p = self.phys(lin);
        match self.mem.read_u16(p) {
            Some(v) => v,
            None => {
                let lo = self.read_linear_u8(bus, lin) as u16;
                lo | (self.read_linear_u8(bus, lin.wrapping_add(1)) as u16) << 8
            }
        }
    }

    /// Read a dword at a linear address.
    #[inline(always)]
    pub(crate) fn read_linear_u32(&mut self, bus: &mut dyn Bus, lin: u32) -> u32 {
        let p = self.phys(lin);
        match self.mem.read_u32(p) {
            Some(v) => v,
            None => {
                let lo = self.read_linear_u16(bus, lin) as u32;
                lo | (self.read_linear_u16(bus, lin.wrapping_add(2)) as u32) << 16
            }
        }
    }

    /// Write `size` bytes at a linear address.
    #[inline(always)]
    pub(crate) fn write_linear(&mut self, bus: &mut dyn Bus, lin: u32, size: u8, v: u32) {
        let p = self.phys(lin);
        let ok = match size {
            1 => self.mem.write_u8(p, v as u8),
            2 => self.mem.write_u16(p, v as u16),
            _ => self.mem.write_u32(p, v),
        };
        if !ok {
            self.write_linear_slow(bus, lin, size, v);
        }
    }

    #[cold]
    fn write_linear_slow(&mut self, bus: &mut dyn Bus, lin: u32, size: u8, v: u32) {
        for i in 0..size as u32 {
            let p = self.phys(lin.wrapping_add(i));
            let b = (v >> (8 * i)) as u8;
            if !self.mem.write_u8(p, b) {
                bus.sync_time(self.cycles);
                bus.mmio_write(p & self.mem.a20_mask(), 1, b as u32);
            }
        }
    }

    /// Read `size` bytes at a linear address.
    #[inline(always)]
    pub(crate) fn read_linear(&mut self, bus: &mut dyn Bus, lin: u32, size: u8) -> u32 {
        match size {
            1 => self.read_linear_u8(bus, lin) as u32,
            2 => self.read_linear_u16(bus, lin) as u32,
            _ => self.read_linear_u32(bus, lin),
        }
    }

    /// Read `size` bytes at `s:off` with the segment checks.
    #[inline(always)]
    pub(crate) fn read_mem(
        &mut self,
        bus: &mut dyn Bus,
        s: SegReg,
        off: u32,
        size: u8,
    ) -> Result<u32, Fault> {
        let lin = self.seg_check(s, off, size as u32)?;
        self.check_alignment(lin, size)?;
        if self.bp_data {
            self.check_data_breakpoints(lin, size, false);
        }
        Ok(self.read_linear(bus, lin, size))
    }

    /// Write `size` bytes at `s:off` with the segment checks.
    #[inline(always)]
    pub(crate) fn write_mem(
        &mut self,
        bus: &mut dyn Bus,
        s: SegReg,
        off: u32,
        size: u8,
        v: u32,
    ) -> Result<(), Fault> {
        let lin = self.seg_check_write(s, off, size as u32)?;
        self.check_alignment(lin, size)?;
        if self.bp_data {
            self.check_data_breakpoints(lin, size, true);
        }
        self.write_linear(bus, lin, size, v);
        Ok(())
    }

    /// #AC: a misaligned access at CPL 3 with CR0.AM and EFLAGS.AC set
    /// (SDM Vol. 3A §6.15, interrupt 17).
    #[inline(always)]
    fn check_alignment(&self, lin: u32, size: u8) -> Result<(), Fault> {
        if size > 1
            && lin & (size as u32 - 1) != 0
            && self.cpl == 3
            && self.cr[0] & crate::regs::cr0::AM != 0
            && self.flags.control(flags::AC)
        {
            return Err(Fault::with_error(
                crate::interrupt::Vector::AlignmentCheck,
                0,
            ));
        }
        Ok(())
    }

    /// Push `size` bytes on the stack (SS:SP or SS:ESP by SS.B).
    pub(crate) fn push(&mut self, bus: &mut dyn Bus, size: u8, v: u32) -> Result<(), Fault> {
        let esp = self.regs[crate::gpr::ESP];
        if self.segs[SegReg::Ss as usize].big() {
            let new = esp.wrapping_sub(size as u32);
            self.write_mem(bus, SegReg::Ss, new, size, v)?;
            self.regs[crate::gpr::ESP] = new;
        } else {
            let new = (esp as u16).wrapping_sub(size as u16);
            self.write_mem(bus, SegReg::Ss, new as u32, size, v)?;
            self.regs[crate::gpr::ESP] = (esp & 0xFFFF_0000) | new as u32;
        }
        Ok(())
    }

    /// Read the value `depth` bytes above the top of the stack without popping.
    pub(crate) fn stack_peek(
        &mut self,
        bus: &mut dyn Bus,
        depth: u32,
        size: u8,
    ) -> Result<u32, Fault> {
        let esp = self.regs[crate::gpr::ESP];
        let off = if self.segs[SegReg::Ss as usize].big() {
            esp.wrapping_add(depth)
        } else {
            (esp as u16).wrapping_add(depth as u16) as u32
        };
        self.read_mem(bus, SegReg::Ss, off, size)
    }

    /// Add `n` to the stack pointer (SP or ESP by SS.B).
    pub(crate) fn stack_adjust(&mut self, n: u32) {
        let esp = self.regs[crate::gpr::ESP];
        self.regs[crate::gpr::ESP] = if self.segs[SegReg::Ss as usize].big() {
            esp.wrapping_add(n)
        } else {
            (esp & 0xFFFF_0000) | (esp as u16).wrapping_add(n as u16) as u32
        };
    }

    /// Pop `size` bytes.
    pub(crate) fn pop(&mut self, bus: &mut dyn Bus, size: u8) -> Result<u32, Fault> {
        let v = self.stack_peek(bus, 0, size)?;
        self.stack_adjust(size as u32);
        Ok(v)
    }
}

/// Whether a segment with descriptor attributes `attrs` may be read (or
/// written): present, and data (writable for writes) or readable code.
#[inline(always)]
fn type_allows(attrs: u16, write: bool) -> bool {
    if attrs & 0x90 != 0x90 {
        return false;
    }
    let code = attrs & 0x08 != 0;
    if write {
        !code && attrs & 0x02 != 0
    } else {
        !code || attrs & 0x02 != 0
    }
}
