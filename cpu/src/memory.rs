//! Guest memory access from the CPU's point of view: segment checks
//! (segmentation, SDM Vol. 3A §5.3), linear → physical through the TLB and
//! the page walk, and MMIO routed to the bus.

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
        // The usual case first: a present expand-up data segment (writable,
        // for a write) passes the type test in every mode, leaving only the
        // limit test.
        let (mask, want) = if write { (0x9E, 0x92) } else { (0x9C, 0x90) };
        if seg.attrs & mask == want && last <= seg.limit as u64 {
            return Ok(seg.base.wrapping_add(off));
        }
        let bad = if seg.expand_down() {
            let upper: u64 = if seg.big() { 0xFFFF_FFFF } else { 0xFFFF };
            (off as u64) <= seg.limit as u64 || last > upper
        } else {
            last > seg.limit as u64
        };
        if bad || (!type_allows(seg.attrs, write) && self.protected()) {
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
        self.read_lin(bus, lin, 4, false)
    }

    /// Read a word of a system structure.
    pub(crate) fn read_system_u16(&mut self, bus: &mut dyn Bus, lin: u32) -> Result<u16, Fault> {
        Ok(self.read_lin(bus, lin, 2, false)? as u16)
    }

    /// Write a byte of a system structure (accessed and busy bits).
    pub(crate) fn write_system_u8(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        v: u8,
    ) -> Result<(), Fault> {
        self.write_lin(bus, lin, 1, v as u32, false)
    }

    /// Write `size` bytes of a system structure (TSS state save).
    pub(crate) fn write_system(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        v: u32,
    ) -> Result<(), Fault> {
        self.write_lin(bus, lin, size, v, false)
    }

    /// Linear → physical for one access. Without paging the identity; with
    /// it, a TLB hit (tag compare, permission bit, add) or a walk that
    /// fills the TLB or raises #PF with CR2 set (SDM Vol. 3A §4.7).
    #[inline(always)]
    pub(crate) fn translate(&mut self, lin: u32, write: bool, user: bool) -> Result<u32, Fault> {
        if !self.paging {
            return Ok(lin);
        }
        if let Some(p) = self.tlb.lookup(lin, ringside_mmu::tlb::needed(write, user)) {
            return Ok(p);
        }
        self.translate_miss(lin, write, user, false)
    }

    #[cold]
    pub(crate) fn translate_miss(
        &mut self,
        lin: u32,
        write: bool,
        user: bool,
        fetch: bool,
    ) -> Result<u32, Fault> {
        let mode = self.paging_mode();
        let access = ringside_mmu::Access { write, user, fetch };
        let walked = ringside_mmu::walk(&mut self.mem, mode, lin, access, true);
        // The walk's accessed/dirty updates are stores too.
        self.note_smc();
        match walked {
            Ok(t) => {
                self.tlb.fill(lin, &t);
                self.emit(|| crate::events::Event::TlbFill {
                    linear: lin,
                    phys: t.phys,
                });
                Ok(t.phys)
            }
            Err(pf) => {
                self.cr[2] = lin;
                Err(Fault::with_error(
                    crate::interrupt::Vector::PageFault,
                    pf.error,
                ))
            }
        }
    }

    /// The paging controls as the walk wants them.
    pub fn paging_mode(&self) -> ringside_mmu::PagingMode {
        ringside_mmu::PagingMode {
            cr3: self.cr[3],
            pae: self.cr[4] & (1 << 5) != 0,
            pse: self.cr[4] & (1 << 4) != 0 || self.cr[4] & (1 << 5) != 0,
            pge: self.cr[4] & (1 << 7) != 0,
            wp: self.cr[0] & crate::regs::cr0::WP != 0,
        }
    }

    /// Read `size` bytes at a physical address (RAM/ROM fast path, else MMIO).
    #[inline(always)]
    pub(crate) fn read_phys(&mut self, bus: &mut dyn Bus, p: u32, size: u8) -> u32 {
        let fast = match size {
            1 => self.mem.read_u8(p).map(|v| v as u32),
            2 => self.mem.read_u16(p).map(|v| v as u32),
            _ => self.mem.read_u32(p),
        };
        match fast {
            Some(v) => v,
            None => self.read_phys_slow(bus, p, size),
        }
    }

    #[cold]
    fn read_phys_slow(&mut self, bus: &mut dyn Bus, p: u32, size: u8) -> u32 {
        let mut v = 0;
        for i in 0..size as u32 {
            let a = p.wrapping_add(i);
            let b = match self.mem.read_u8(a) {
                Some(b) => b,
                None => {
                    bus.sync_time(self.cycles);
                    bus.mmio_read(a & self.mem.a20_mask(), 1) as u8
                }
            };
            v |= (b as u32) << (8 * i);
        }
        v
    }

    #[inline(always)]
    pub(crate) fn write_phys(&mut self, bus: &mut dyn Bus, p: u32, size: u8, v: u32) {
        let plain = match size {
            1 => self.mem.write_ram_u8(p, v as u8),
            2 => self.mem.write_ram_u16(p, v as u16),
            _ => self.mem.write_ram_u32(p, v),
        };
        if !plain {
            self.write_phys_other(bus, p, size, v);
        }
    }

    /// A write to anything but a plain RAM page: ROM (dropped), MMIO, a
    /// page crossing, or a page holding decoded code, which the memory map
    /// queues; the run loop learns of the queue through its attention word
    /// (it does not poll the queue per instruction).
    #[cold]
    #[inline(never)]
    fn write_phys_other(&mut self, bus: &mut dyn Bus, p: u32, size: u8, v: u32) {
        let ok = match size {
            1 => self.mem.write_u8(p, v as u8),
            2 => self.mem.write_u16(p, v as u16),
            _ => self.mem.write_u32(p, v),
        };
        if !ok {
            self.write_phys_slow(bus, p, size, v);
        }
        self.note_smc();
    }

    /// Raise the run loop's attention if a store queued a code page.
    #[inline]
    pub(crate) fn note_smc(&mut self) {
        if self.mem.smc_pending() {
            self.attention |= crate::processor::ATTN_SMC;
        }
    }

    #[cold]
    fn write_phys_slow(&mut self, bus: &mut dyn Bus, p: u32, size: u8, v: u32) {
        for i in 0..size as u32 {
            let a = p.wrapping_add(i);
            let b = (v >> (8 * i)) as u8;
            if !self.mem.write_u8(a, b) {
                bus.sync_time(self.cycles);
                bus.mmio_write(a & self.mem.a20_mask(), 1, b as u32);
            }
        }
    }

    /// Read `size` bytes at a linear address; `user` for CPL-3 data accesses.
    /// An access that crosses a page boundary translates both pages first.
    #[inline(always)]
    pub(crate) fn read_lin(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        user: bool,
    ) -> Result<u32, Fault> {
        if (lin & 0xFFF) + size as u32 <= 0x1000 || !self.paging {
            let p = self.translate(lin, false, user)?;
            return Ok(self.read_phys(bus, p, size));
        }
        self.read_lin_split(bus, lin, size, user)
    }

    #[cold]
    fn read_lin_split(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        user: bool,
    ) -> Result<u32, Fault> {
        let p0 = self.translate(lin, false, user)?;
        let next = (lin | 0xFFF).wrapping_add(1);
        let p1 = self.translate(next, false, user)?;
        let mut v = 0;
        for i in 0..size as u32 {
            let p = split_byte(lin, next, p0, p1, i);
            v |= self.read_phys(bus, p, 1) << (8 * i);
        }
        Ok(v)
    }

    /// Write `size` bytes at a linear address. Both pages of a crossing
    /// write are checked before any byte is written.
    #[inline(always)]
    pub(crate) fn write_lin(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        v: u32,
        user: bool,
    ) -> Result<(), Fault> {
        if (lin & 0xFFF) + size as u32 <= 0x1000 || !self.paging {
            let p = self.translate(lin, true, user)?;
            self.write_phys(bus, p, size, v);
            return Ok(());
        }
        self.write_lin_split(bus, lin, size, v, user)
    }

    #[cold]
    fn write_lin_split(
        &mut self,
        bus: &mut dyn Bus,
        lin: u32,
        size: u8,
        v: u32,
        user: bool,
    ) -> Result<(), Fault> {
        let p0 = self.translate(lin, true, user)?;
        let next = (lin | 0xFFF).wrapping_add(1);
        let p1 = self.translate(next, true, user)?;
        for i in 0..size as u32 {
            let p = split_byte(lin, next, p0, p1, i);
            self.write_phys(bus, p, 1, v >> (8 * i));
        }
        Ok(())
    }

    /// Read a byte at a linear address as an instruction fetch.
    #[inline(always)]
    pub(crate) fn fetch_u8(&mut self, bus: &mut dyn Bus, lin: u32) -> Result<u8, Fault> {
        let user = self.cpl == 3;
        Ok(self.read_lin(bus, lin, 1, user)? as u8)
    }

    /// Linear → physical for an instruction fetch when no walk is needed
    /// (paging off, or a TLB hit); `None` sends the caller to
    /// [`Cpu::translate_fetch_slow`]. No `Result` on this path, so nothing
    /// is spilled for the common case.
    #[inline(always)]
    pub(crate) fn fetch_phys(&mut self, lin: u32) -> Option<u32> {
        if !self.paging {
            return Some(lin);
        }
        let user = self.cpl == 3;
        self.tlb
            .lookup_fetch(lin, ringside_mmu::tlb::needed(false, user))
    }

    /// The fetch translation after [`Cpu::fetch_phys`] found nothing: the
    /// walk, which fills the TLB or raises #PF.
    #[cold]
    #[inline(never)]
    pub(crate) fn translate_fetch_slow(&mut self, lin: u32) -> Result<u32, Fault> {
        let user = self.cpl == 3;
        self.translate_miss(lin, false, user, true)
    }

    /// The segment half of the fast paths: `len` bytes at `s:off` in a
    /// present, accessible (expand-up data, or readable code on a read)
    /// segment within its limit, no data breakpoint armed and no #AC
    /// possible. Gives the linear address and whether the access is a user
    /// one; `None` sends the access down the full path.
    #[inline(always)]
    fn fast_linear(&self, s: SegReg, off: u32, len: u32, write: bool) -> Option<(u32, bool)> {
        let seg = &self.segs[s as usize];
        let (mask, want) = if write { (0x9E, 0x92) } else { (0x9C, 0x90) };
        let last = off.checked_add(len.checked_sub(1)?)?;
        if seg.attrs & mask != want || last > seg.limit || self.bp_data {
            return None;
        }
        let user = self.cpl == 3;
        if user && self.cr[0] & crate::regs::cr0::AM != 0 && self.flags.control(flags::AC) {
            return None;
        }
        Some((seg.base.wrapping_add(off), user))
    }

    /// The physical address of the usual access, decided in one straight
    /// run: a present expand-up data segment (writable for a write) with
    /// every byte inside its limit, no data breakpoint armed, no alignment
    /// check possible (not CPL 3 with CR0.AM and EFLAGS.AC), and paging off
    /// or a TLB hit for an access within one page. `None` sends the access
    /// down the full path, which repeats every check and raises the faults;
    /// nothing here changes state.
    #[inline(always)]
    fn fast_phys(&self, s: SegReg, off: u32, size: u8, write: bool) -> Option<u32> {
        let (lin, user) = self.fast_linear(s, off, size as u32, write)?;
        if !self.paging {
            return Some(lin);
        }
        if (lin & 0xFFF) + size as u32 > 0x1000 {
            return None;
        }
        self.tlb.probe(lin, ringside_mmu::tlb::needed(write, user))
    }

    /// [`Cpu::fast_phys`] for `len` bytes (a run of string elements): the
    /// whole range inside the segment limit and inside one page (checked
    /// with paging off too, since the memory map decides per page). Counts
    /// nothing; the caller counts `hits` TLB hits once it has used it.
    pub(crate) fn fast_range(&self, s: SegReg, off: u32, len: u32, write: bool) -> Option<u32> {
        let (lin, user) = self.fast_linear(s, off, len, write)?;
        if (lin & 0xFFF) + len > 0x1000 {
            return None;
        }
        if !self.paging {
            return Some(lin);
        }
        self.tlb.probe(lin, ringside_mmu::tlb::needed(write, user))
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
        if let Some(p) = self.fast_phys(s, off, size, false) {
            if self.paging {
                self.tlb.stats.hits += 1;
            }
            return Ok(self.read_phys(bus, p, size));
        }
        self.read_mem_checked(bus, s, off, size)
    }

    /// [`Cpu::read_mem`] with every check in turn (and its faults).
    #[inline(never)]
    fn read_mem_checked(
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
        let user = self.cpl == 3;
        self.read_lin(bus, lin, size, user)
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
        if let Some(p) = self.fast_phys(s, off, size, true) {
            if self.paging {
                self.tlb.stats.hits += 1;
            }
            self.write_phys(bus, p, size, v);
            return Ok(());
        }
        self.write_mem_checked(bus, s, off, size, v)
    }

    /// [`Cpu::write_mem`] with every check in turn (and its faults).
    #[inline(never)]
    fn write_mem_checked(
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
        let user = self.cpl == 3;
        self.write_lin(bus, lin, size, v, user)
    }

    /// #AC: a misaligned access at CPL 3 with CR0.AM and EFLAGS.AC set
    /// (SDM Vol. 3A §6.15, interrupt 17).
    #[inline(always)]
    fn check_alignment(&self, lin: u32, size: u8) -> Result<(), Fault> {
        // CPL first: outside ring 3 (the kernel, which sets CR0.AM) one
        // compare decides.
        if self.cpl == 3
            && size > 1
            && lin & (size as u32 - 1) != 0
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

/// Physical address of byte `i` of an access at `lin` that crosses into the
/// page at `next`, given both pages' translations.
#[inline]
fn split_byte(lin: u32, next: u32, p0: u32, p1: u32, i: u32) -> u32 {
    let l = lin.wrapping_add(i);
    if l & !0xFFF == lin & !0xFFF {
        p0 + (l - lin)
    } else {
        p1 + (l - next)
    }
}
