//! System-management mode (SMM), as a P6-family processor has it (Intel SDM
//! Vol. 3C ch. 34 in the 2016+ numbering, "System Management Mode").
//!
//! The board raises SMI# (here: a write to the APM control port 0xB2 with
//! the PIIX4's APMC_EN set); at the next instruction boundary the
//! processor saves its state in the state-save map at the top of SMRAM
//! (SMBASE + 0xFE00 … SMBASE + 0xFFFF), enters SMM in a real-mode-like
//! state with 4 GiB segment limits, and runs the handler at SMBASE +
//! 0x8000. `RSM` reloads the saved state, picks up a new SMBASE the handler
//! wrote (SMBASE relocation), and either re-enters HLT or continues where
//! the SMI struck.
//!
//! The state-save map, as offsets from SMBASE (the SDM's table lists the
//! same fields as 7Fxxh from SMBASE + 8000h):
//!
//! | offset  | field                                             |
//! |---------|---------------------------------------------------|
//! | FFFC    | CR0                                               |
//! | FFF8    | CR3                                               |
//! | FFF4    | EFLAGS                                            |
//! | FFF0    | EIP                                               |
//! | FFEC…FFD0 | EDI, ESI, EBP, ESP, EBX, EDX, ECX, EAX          |
//! | FFCC    | DR6                                               |
//! | FFC8    | DR7                                               |
//! | FFC4    | TR selector                                       |
//! | FFC0    | LDTR selector                                     |
//! | FFBC…FFA8 | GS, FS, DS, SS, CS, ES selectors                |
//! | FF84/FF90/FF9C | ES/CS/SS descriptor caches                 |
//! | FF78    | LDTR cache                                        |
//! | FF74/FF70 | GDTR base / limit                               |
//! | FF5C    | TR cache                                          |
//! | FF58/FF54 | IDTR base / limit                               |
//! | FF2C/FF38/FF44 | DS/FS/GS descriptor caches                 |
//! | FF14    | CR4                                               |
//! | FF02    | auto-HALT restart (word, bit 0)                   |
//! | FF00    | I/O instruction restart (word)                    |
//! | FEFC    | SMM revision identifier                           |
//! | FEF8    | SMBASE                                            |
//!
//! A descriptor cache is three dwords: attributes (the descriptor's bytes
//! 5–6 with the limit nibble masked out: type, S, DPL, P, AVL, D/B, G),
//! limit (in bytes), base. The SDM leaves that area "reserved": this is
//! the layout P6-class firmware and emulators agree on, and an SMI handler
//! only needs it to be what RSM reads back.
//!
//! The revision identifier is 0x0002_0000: bit 17, SMBASE relocation
//! supported; bit 16 (I/O instruction restart) clear, so the I/O restart
//! field is written 0 and not acted on. (Firmware recognises exactly this
//! value as the 32-bit map: SeaBIOS's handler does.)

use crate::events::Event;
use crate::flags;
use crate::processor::{Cpu, CpuMode, ATTN_STOP};
use crate::regs::{cr0, SegReg, Segment, TableReg};
use crate::Bus;

/// SMBASE after reset (SDM §34.4: 30000h).
pub const DEFAULT_SMBASE: u32 = 0x3_0000;
/// The SMM revision identifier this processor reports.
pub const REVISION_ID: u32 = 0x0002_0000;
/// Revision-identifier bit: SMBASE relocation supported.
pub const REV_SMBASE_RELOCATION: u32 = 1 << 17;

/// State-save map offsets from SMBASE.
pub mod map {
    /// CR0.
    pub const CR0: u32 = 0xFFFC;
    /// CR3.
    pub const CR3: u32 = 0xFFF8;
    /// EFLAGS.
    pub const EFLAGS: u32 = 0xFFF4;
    /// EIP.
    pub const EIP: u32 = 0xFFF0;
    /// EAX; ECX, EDX, EBX, ESP, EBP, ESI, EDI follow 4 bytes apart.
    pub const EAX: u32 = 0xFFD0;
    /// DR6.
    pub const DR6: u32 = 0xFFCC;
    /// DR7.
    pub const DR7: u32 = 0xFFC8;
    /// TR selector.
    pub const TR_SEL: u32 = 0xFFC4;
    /// LDTR selector.
    pub const LDTR_SEL: u32 = 0xFFC0;
    /// ES selector; CS, SS, DS, FS, GS follow 4 bytes apart.
    pub const ES_SEL: u32 = 0xFFA8;
    /// Descriptor caches of ES, CS, SS (12 bytes each).
    pub const ES_CACHE: u32 = 0xFF84;
    /// Descriptor caches of DS, FS, GS (12 bytes each).
    pub const DS_CACHE: u32 = 0xFF2C;
    /// LDTR's descriptor cache.
    pub const LDTR_CACHE: u32 = 0xFF78;
    /// GDTR base.
    pub const GDTR_BASE: u32 = 0xFF74;
    /// GDTR limit.
    pub const GDTR_LIMIT: u32 = 0xFF70;
    /// TR's descriptor cache.
    pub const TR_CACHE: u32 = 0xFF5C;
    /// IDTR base.
    pub const IDTR_BASE: u32 = 0xFF58;
    /// IDTR limit.
    pub const IDTR_LIMIT: u32 = 0xFF54;
    /// CR4.
    pub const CR4: u32 = 0xFF14;
    /// Auto-HALT restart field (word; bit 0).
    pub const AUTO_HALT: u32 = 0xFF02;
    /// I/O instruction restart field (word).
    pub const IO_RESTART: u32 = 0xFF00;
    /// SMM revision identifier.
    pub const REVISION: u32 = 0xFEFC;
    /// SMBASE.
    pub const SMBASE: u32 = 0xFEF8;
}

/// The processor's SMM state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smm {
    /// In system-management mode (between SMI entry and RSM).
    pub active: bool,
    /// Where SMRAM starts for this processor (relocatable through the
    /// state-save map).
    pub smbase: u32,
    /// An SMI arrived while in SMM: it is taken after RSM (SDM §34.5).
    pub pending: bool,
    /// NMI blocking as it was at entry (SMM blocks NMIs until RSM).
    pub saved_nmi_blocked: bool,
    /// A #DB trap of the instruction before the SMI: SMI outranks it
    /// (SDM Vol. 3A Table 6-2), so it waits until RSM.
    pub saved_debug_trap: bool,
}

impl Default for Smm {
    fn default() -> Smm {
        Smm {
            active: false,
            smbase: DEFAULT_SMBASE,
            pending: false,
            saved_nmi_blocked: false,
            saved_debug_trap: false,
        }
    }
}

/// A segment's descriptor cache as the state-save map keeps it.
fn cache_words(s: &Segment) -> [u32; 3] {
    [(s.attrs & 0xF0FF) as u32, s.limit, s.base]
}

impl Cpu {
    /// Whether the processor is in system-management mode.
    pub fn in_smm(&self) -> bool {
        self.smm.active
    }

    /// The processor's SMM state (SMBASE, pending SMI).
    pub fn smm_state(&self) -> Smm {
        self.smm
    }

    /// At an instruction boundary: latch an SMI from the bus and take it
    /// unless SMM is already running. Returns whether SMM was entered.
    pub(crate) fn poll_smi(&mut self, bus: &mut dyn Bus) -> bool {
        if bus.take_smi() {
            self.smm.pending = true;
        }
        if !self.smm.pending || self.smm.active {
            return false;
        }
        self.smm.pending = false;
        self.enter_smm(bus);
        true
    }

    fn smram_write(&mut self, bus: &mut dyn Bus, off: u32, v: u32) {
        let p = self.smm.smbase.wrapping_add(off);
        self.write_phys(bus, p, 4, v);
    }

    fn write_cache(&mut self, bus: &mut dyn Bus, at: u32, s: &Segment) {
        for (k, w) in cache_words(s).into_iter().enumerate() {
            self.smram_write(bus, at + 4 * k as u32, w);
        }
    }

    fn smram_read(&mut self, bus: &mut dyn Bus, off: u32) -> u32 {
        let p = self.smm.smbase.wrapping_add(off);
        self.read_phys(bus, p, 4)
    }

    /// SMI: save the state at SMBASE + FE00h… and enter SMM (SDM §34.5,
    /// Table 34-4 for the entry state).
    fn enter_smm(&mut self, bus: &mut dyn Bus) {
        let (cpl, mode, paging, tr) = (
            self.cpl,
            self.mode(),
            self.cr[0] & cr0::PG != 0,
            self.tr.selector,
        );
        let halted = self.halted;
        let (from_cs, from_eip) = (self.segs[SegReg::Cs as usize].selector, self.eip);
        // SMRAM opens first: the state goes to SMRAM, not the VGA.
        self.smm.active = true;
        self.mem.set_smm(true);
        self.smm.saved_nmi_blocked = self.nmi_blocked;
        self.smm.saved_debug_trap = std::mem::take(&mut self.pending_debug_trap);

        let words = [
            (map::CR0, self.cr[0]),
            (map::CR3, self.cr[3]),
            (map::EFLAGS, self.flags.get()),
            (map::EIP, self.eip),
            (map::DR6, self.dr[6]),
            (map::DR7, self.dr[7]),
            (map::TR_SEL, self.tr.selector as u32),
            (map::LDTR_SEL, self.ldtr.selector as u32),
            (map::GDTR_BASE, self.gdtr.base),
            (map::GDTR_LIMIT, self.gdtr.limit as u32),
            (map::IDTR_BASE, self.idtr.base),
            (map::IDTR_LIMIT, self.idtr.limit as u32),
            (map::CR4, self.cr[4]),
            // Auto-HALT restart (word at FF02h) over the I/O restart word
            // at FF00h, which stays 0 (not supported, see the revision ID).
            (map::IO_RESTART, (halted as u32) << 16),
            (map::REVISION, REVISION_ID),
            (map::SMBASE, self.smm.smbase),
        ];
        for (off, v) in words {
            self.smram_write(bus, off, v);
        }
        for (i, r) in self.regs.into_iter().enumerate() {
            self.smram_write(bus, map::EAX + 4 * i as u32, r);
        }
        for (i, s) in self.segs.into_iter().enumerate() {
            let i = i as u32;
            self.smram_write(bus, map::ES_SEL + 4 * i, s.selector as u32);
            let at = if i < 3 {
                map::ES_CACHE + 12 * i
            } else {
                map::DS_CACHE + 12 * (i - 3)
            };
            self.write_cache(bus, at, &s);
        }
        let (ldtr, tr_seg) = (self.ldtr, self.tr);
        self.write_cache(bus, map::LDTR_CACHE, &ldtr);
        self.write_cache(bus, map::TR_CACHE, &tr_seg);

        // The entry state (SDM Table 34-4).
        let base = self.smm.smbase;
        self.flags.set(flags::RESERVED1);
        self.eip = 0x8000;
        self.cr[0] &= !(cr0::PE | cr0::EM | cr0::TS | cr0::PG);
        self.cr[4] = 0;
        self.paging = false;
        self.dr[7] = 0x400;
        self.update_breakpoints();
        for s in SegReg::ALL {
            self.segs[s as usize] = Segment {
                selector: 0,
                base: 0,
                limit: 0xFFFF_FFFF,
                attrs: 0x93,
            };
        }
        self.segs[SegReg::Cs as usize] = Segment {
            selector: (base >> 4) as u16,
            base,
            limit: 0xFFFF_FFFF,
            attrs: 0x9B,
        };
        self.cpl = 0;
        self.halted = false;
        self.nmi_blocked = true;
        self.tlb.flush(ringside_mmu::FlushCause::ControlBits, false);
        self.cycles += SMI_CYCLES;
        self.emit(|| Event::SmmEntry {
            smbase: base,
            cs: from_cs,
            eip: from_eip,
            halted,
        });
        self.emit_state_changes(cpl, mode, paging, tr, "SMI");
    }

    /// RSM (0F AA): leave SMM, restoring the state-save map (SDM §34.11,
    /// Vol. 2B "RSM"). Outside SMM it is #UD. A saved state that is not a
    /// valid processor state (CR4 reserved bits, PG without PE, NW without
    /// CD) shuts the processor down, as the SDM says.
    pub(crate) fn rsm(&mut self, bus: &mut dyn Bus) -> Result<(), crate::Fault> {
        if !self.smm.active {
            return Err(crate::Fault::UD);
        }
        let (cpl, mode, paging, tr) = (
            self.cpl,
            self.mode(),
            self.cr[0] & cr0::PG != 0,
            self.tr.selector,
        );
        let rd = |c: &mut Cpu, bus: &mut dyn Bus, off| c.smram_read(bus, off);
        let cr0v = rd(self, bus, map::CR0);
        let cr4v = rd(self, bus, map::CR4);
        let halt_word = rd(self, bus, map::IO_RESTART) >> 16;
        let smbase = rd(self, bus, map::SMBASE);
        if cr4v & !0x0000_06FF != 0
            || (cr0v & cr0::PG != 0 && cr0v & cr0::PE == 0)
            || (cr0v & cr0::NW != 0 && cr0v & cr0::CD == 0)
        {
            log::warn!("RSM: invalid saved state (CR0 {cr0v:#x}, CR4 {cr4v:#x}): shutdown");
            self.leave_smm();
            self.shutdown = true;
            self.attention |= ATTN_STOP;
            return Ok(());
        }
        self.cr[3] = rd(self, bus, map::CR3);
        let eflags = rd(self, bus, map::EFLAGS);
        self.eip = rd(self, bus, map::EIP);
        for i in 0..8 {
            self.regs[i] = rd(self, bus, map::EAX + 4 * i as u32);
        }
        self.dr[6] = rd(self, bus, map::DR6) | 0xFFFF_0FF0;
        self.dr[7] = (rd(self, bus, map::DR7) | 0x400) & !0x0000_D000;
        let cache = |c: &mut Cpu, bus: &mut dyn Bus, sel: u32, at: u32| Segment {
            selector: rd(c, bus, sel) as u16,
            attrs: rd(c, bus, at) as u16,
            limit: rd(c, bus, at + 4),
            base: rd(c, bus, at + 8),
        };
        for i in 0..6u32 {
            let at = if i < 3 {
                map::ES_CACHE + 12 * i
            } else {
                map::DS_CACHE + 12 * (i - 3)
            };
            self.segs[i as usize] = cache(self, bus, map::ES_SEL + 4 * i, at);
        }
        self.ldtr = cache(self, bus, map::LDTR_SEL, map::LDTR_CACHE);
        self.tr = cache(self, bus, map::TR_SEL, map::TR_CACHE);
        self.gdtr = TableReg {
            base: rd(self, bus, map::GDTR_BASE),
            limit: rd(self, bus, map::GDTR_LIMIT) as u16,
        };
        self.idtr = TableReg {
            base: rd(self, bus, map::IDTR_BASE),
            limit: rd(self, bus, map::IDTR_LIMIT) as u16,
        };
        if REVISION_ID & REV_SMBASE_RELOCATION != 0 {
            self.smm.smbase = smbase;
        }
        self.cr[0] = (cr0v & 0xE005_003F) | cr0::ET;
        self.cr[4] = cr4v;
        self.paging = self.cr[0] & cr0::PG != 0;
        self.flags.set(eflags);
        // CPL is SS.DPL in protected mode (what the P6 keeps), 3 in
        // virtual-8086 mode, 0 in real mode.
        self.cpl = match self.mode() {
            CpuMode::Real => 0,
            CpuMode::Virtual8086 => 3,
            CpuMode::Protected => ((self.segs[SegReg::Ss as usize].attrs >> 5) & 3) as u8,
        };
        self.update_breakpoints();
        self.tlb.flush(ringside_mmu::FlushCause::ControlBits, false);
        self.leave_smm();
        if halt_word & 1 != 0 {
            self.halted = true;
            self.attention |= ATTN_STOP;
        }
        let new_base = self.smm.smbase;
        self.emit(|| Event::Rsm { smbase: new_base });
        self.emit_state_changes(cpl, mode, paging, tr, "RSM");
        Ok(())
    }

    /// The part of leaving SMM that does not depend on the saved state.
    fn leave_smm(&mut self) {
        self.smm.active = false;
        self.mem.set_smm(false);
        self.nmi_blocked = self.smm.saved_nmi_blocked;
        self.pending_debug_trap = std::mem::take(&mut self.smm.saved_debug_trap);
        // Pending SMI, NMI and INTR are looked at again, and the run loop
        // drops its chaining (the SMRAM pages' code went).
        self.request_yield();
    }
}

/// Cycles an SMI entry costs (state save and mode switch), charged to the
/// virtual clock like an interrupt delivery.
const SMI_CYCLES: u64 = 100;
