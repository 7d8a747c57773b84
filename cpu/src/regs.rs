//! Registers: general-purpose registers, segment registers with their hidden
//! descriptor caches, control registers.

use iced_x86::Register;

/// General-purpose register numbers in the Intel encoding order.
pub mod gpr {
    /// EAX
    pub const EAX: usize = 0;
    /// ECX
    pub const ECX: usize = 1;
    /// EDX
    pub const EDX: usize = 2;
    /// EBX
    pub const EBX: usize = 3;
    /// ESP
    pub const ESP: usize = 4;
    /// EBP
    pub const EBP: usize = 5;
    /// ESI
    pub const ESI: usize = 6;
    /// EDI
    pub const EDI: usize = 7;
}

/// A segment register, numbered as in the Intel encoding (ES=0 … GS=5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SegReg {
    /// Extra segment
    Es = 0,
    /// Code segment
    Cs = 1,
    /// Stack segment
    Ss = 2,
    /// Data segment
    Ds = 3,
    /// FS
    Fs = 4,
    /// GS
    Gs = 5,
}

impl SegReg {
    /// All six, in encoding order.
    pub const ALL: [SegReg; 6] = [
        SegReg::Es,
        SegReg::Cs,
        SegReg::Ss,
        SegReg::Ds,
        SegReg::Fs,
        SegReg::Gs,
    ];

    /// The segment register named by an iced register (ES..GS).
    #[inline(always)]
    pub fn from_iced(r: Register) -> SegReg {
        match (r as u32).wrapping_sub(Register::ES as u32) {
            0 => SegReg::Es,
            1 => SegReg::Cs,
            2 => SegReg::Ss,
            3 => SegReg::Ds,
            4 => SegReg::Fs,
            _ => SegReg::Gs,
        }
    }

    /// Assembler name.
    pub fn name(self) -> &'static str {
        ["es", "cs", "ss", "ds", "fs", "gs"][self as usize]
    }
}

/// A segment register: the visible selector and the hidden descriptor cache
/// the CPU loaded with it (SDM Vol. 3A §3.4.3). In real mode the cache holds
/// base = selector × 16 and keeps whatever limit and attributes the last
/// protected-mode load left ("unreal mode").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// Visible part.
    pub selector: u16,
    /// Hidden: linear base address.
    pub base: u32,
    /// Hidden: limit in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Hidden: descriptor attribute bits (type, S, DPL, P, AVL, D/B, G), as
    /// bits 8..23 of the descriptor's high dword shifted down by 8.
    pub attrs: u16,
}

impl Segment {
    /// A real-mode data segment as it is after reset: writable, present, 64 KiB.
    pub fn real(selector: u16) -> Segment {
        Segment {
            selector,
            base: (selector as u32) << 4,
            limit: 0xFFFF,
            attrs: 0x93,
        }
    }

    /// D/B bit: 32-bit default operand size (code) or 32-bit stack (SS).
    #[inline(always)]
    pub fn big(&self) -> bool {
        self.attrs & 0x4000 != 0
    }

    /// Expand-down data segment (type bit 2 with S=1 and not code).
    #[inline(always)]
    pub fn expand_down(&self) -> bool {
        self.attrs & 0x1C == 0x14
    }
}

/// CR0 bits used by the core.
pub mod cr0 {
    /// Protection enable.
    pub const PE: u32 = 1 << 0;
    /// Monitor coprocessor.
    pub const MP: u32 = 1 << 1;
    /// Emulation (no x87).
    pub const EM: u32 = 1 << 2;
    /// Task switched.
    pub const TS: u32 = 1 << 3;
    /// Extension type (always 1 on a 386 with a 387 and later).
    pub const ET: u32 = 1 << 4;
    /// Numeric error.
    pub const NE: u32 = 1 << 5;
    /// Write protect.
    pub const WP: u32 = 1 << 16;
    /// Alignment mask.
    pub const AM: u32 = 1 << 18;
    /// Not write-through.
    pub const NW: u32 = 1 << 29;
    /// Cache disable.
    pub const CD: u32 = 1 << 30;
    /// Paging.
    pub const PG: u32 = 1 << 31;

    /// Every bit above with its SDM name, highest first: the one list the
    /// trap log and the debugger print CR0 with.
    pub const NAMES: [(u32, &str); 11] = [
        (PG, "PG"),
        (CD, "CD"),
        (NW, "NW"),
        (AM, "AM"),
        (WP, "WP"),
        (NE, "NE"),
        (ET, "ET"),
        (TS, "TS"),
        (EM, "EM"),
        (MP, "MP"),
        (PE, "PE"),
    ];

    /// The names of the bits set in `v`, separated by spaces ("PG PE").
    pub fn names(v: u32) -> String {
        let on: Vec<&str> = NAMES
            .iter()
            .filter(|(b, _)| v & b != 0)
            .map(|(_, n)| *n)
            .collect();
        on.join(" ")
    }
}

/// A descriptor-table register (GDTR or IDTR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableReg {
    /// Linear base.
    pub base: u32,
    /// Limit in bytes.
    pub limit: u16,
}
