//! The x87 floating-point unit of a Pentium II (SDM Vol. 1 chapter 8).
//!
//! - [`f80`]: the 80-bit format and exactly rounded arithmetic with the
//!   x87's precision control, NaN rules and masked/unmasked responses.
//! - `transcendental`: F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN & co on a
//!   128-bit working float.
//! - `exec`: the instruction handlers (stack, tags, condition codes, the
//!   environment and state images, #NM and pending-exception delivery).
//!
//! Error reporting (SDM Vol. 1 §8.7, Vol. 3A §6.15 interrupt 16): an
//! unmasked exception sets ES and is *pending*; the next waiting x87
//! instruction (or WAIT) raises #MF when CR0.NE = 1. With CR0.NE = 0 it
//! asserts FERR# instead ([`Fpu::ferr`]), which a PC routes to IRQ13, and
//! stalls once so the board can deliver that interrupt; if nothing clears
//! ES before the instruction runs again, it proceeds (as if IGNNE# were
//! asserted).

mod exec;
pub mod f80;
mod transcendental;

use std::fmt;

pub use f80::{Class, F80};

pub(crate) use exec::select;

/// Control word after FINIT: all exceptions masked, 64-bit precision,
/// round to nearest.
pub const FINIT_CW: u16 = 0x037F;

/// The x87 register file and its control/status/tag state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fpu {
    /// Physical data registers R0–R7 (ST(i) is R((TOP + i) mod 8)).
    pub regs: [F80; 8],
    /// Control word.
    pub cw: u16,
    /// Status word without TOP (bits 11–13 are kept in `top`).
    pub sw: u16,
    /// Top-of-stack pointer.
    pub top: u8,
    /// Bit i set: R(i) is in use (tag ≠ empty). The 2-bit tags FSTENV
    /// reports are computed from the contents, as a P6 does.
    pub valid: u8,
    /// Last non-control instruction: offset in its code segment.
    pub fip: u32,
    /// Last non-control instruction: code segment selector.
    pub fcs: u16,
    /// Linear address of that instruction (to recover its opcode).
    pub fip_linear: u32,
    /// Last memory operand: offset.
    pub fdp: u32,
    /// Last memory operand: segment selector.
    pub fds: u16,
    /// FERR# output (legacy error reporting, CR0.NE = 0).
    pub(crate) ferr: bool,
}

impl Default for Fpu {
    fn default() -> Fpu {
        let mut f = Fpu {
            regs: [F80::ZERO; 8],
            cw: 0,
            sw: 0,
            top: 0,
            valid: 0,
            fip: 0,
            fcs: 0,
            fip_linear: 0,
            fdp: 0,
            fds: 0,
            ferr: false,
        };
        f.reset();
        f
    }
}

/// A register's 2-bit tag (SDM Vol. 1 §8.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    /// 00: a normal finite number.
    Valid = 0,
    /// 01: ±0.
    Zero = 1,
    /// 10: NaN, ∞, denormal or unsupported.
    Special = 2,
    /// 11: empty.
    Empty = 3,
}

impl Fpu {
    /// Power-on RESET state (SDM Vol. 3A Table 9-1): control word 0040H,
    /// every register +0.0 and tagged valid (tag word 5555H).
    pub fn reset(&mut self) {
        self.regs = [F80::ZERO; 8];
        self.cw = 0x0040;
        self.sw = 0;
        self.top = 0;
        self.valid = 0xFF;
        self.clear_pointers();
        self.ferr = false;
    }

    /// FNINIT (SDM Vol. 2A FINIT): control 037FH, status 0, all empty,
    /// pointers cleared; register contents are kept.
    pub fn init(&mut self) {
        self.cw = FINIT_CW;
        self.sw = 0;
        self.top = 0;
        self.valid = 0;
        self.clear_pointers();
        self.ferr = false;
    }

    fn clear_pointers(&mut self) {
        self.fip = 0;
        self.fcs = 0;
        self.fip_linear = 0;
        self.fdp = 0;
        self.fds = 0;
    }

    /// The status word as FSTSW stores it (TOP included, B mirrors ES).
    pub fn status_word(&self) -> u16 {
        let mut s = (self.sw & !(7 << 11 | f80::B)) | ((self.top as u16) << 11);
        if s & f80::ES != 0 {
            s |= f80::B;
        }
        s
    }

    /// Load a status word (FLDENV, FRSTOR): TOP goes to `top`; ES and B
    /// follow the unmasked exception flags.
    pub fn set_status_word(&mut self, v: u16) {
        self.top = ((v >> 11) & 7) as u8;
        self.sw = v & !(7 << 11 | f80::B | f80::ES);
        self.update_es();
    }

    /// Recompute ES from the flags and masks (after FLDCW and friends).
    pub(crate) fn update_es(&mut self) {
        if self.sw & !self.cw & f80::EXC != 0 {
            self.sw |= f80::ES;
        } else {
            self.sw &= !f80::ES;
            self.ferr = false;
        }
    }

    /// Physical register number of ST(i).
    #[inline(always)]
    pub fn phys(&self, i: usize) -> usize {
        (self.top as usize + i) & 7
    }

    /// ST(i).
    #[inline(always)]
    pub fn st(&self, i: usize) -> F80 {
        self.regs[self.phys(i)]
    }

    /// Whether ST(i) is empty.
    #[inline(always)]
    pub fn st_empty(&self, i: usize) -> bool {
        self.valid & (1 << self.phys(i)) == 0
    }

    /// The tag of physical register R(i), computed from its contents.
    pub fn tag(&self, r: usize) -> Tag {
        if self.valid & (1 << r) == 0 {
            return Tag::Empty;
        }
        let v = self.regs[r];
        match v.class() {
            Class::Zero => Tag::Zero,
            Class::Normal => Tag::Valid,
            _ => Tag::Special,
        }
    }

    /// The full tag word (FSTENV/FSAVE).
    pub fn tag_word(&self) -> u16 {
        (0..8).fold(0, |w, r| w | (self.tag(r) as u16) << (2 * r))
    }

    /// Load a tag word: only "empty or not" is kept (FLDENV/FRSTOR).
    pub fn set_tag_word(&mut self, w: u16) {
        self.valid = (0..8).fold(0, |v, r| {
            if (w >> (2 * r)) & 3 == 3 {
                v
            } else {
                v | 1 << r
            }
        });
    }

    /// FERR#: an unmasked exception is pending and legacy (CR0.NE = 0)
    /// reporting has signalled it. A PC board turns this into IRQ13 and
    /// stops requesting once the guest clears the exception (FNCLEX,
    /// FNINIT, …), when this goes false again.
    pub fn ferr(&self) -> bool {
        self.ferr && self.sw & f80::ES != 0
    }

    /// A snapshot for debuggers: registers in ST(i) order, tags, decoded
    /// control and status words. Its `Display` prints a table.
    pub fn view(&self) -> FpuView {
        let mut st = [StEntry {
            phys: 0,
            tag: Tag::Empty,
            value: F80::ZERO,
        }; 8];
        for (i, e) in st.iter_mut().enumerate() {
            let p = self.phys(i);
            *e = StEntry {
                phys: p as u8,
                tag: self.tag(p),
                value: self.regs[p],
            };
        }
        FpuView {
            st,
            cw: self.cw,
            sw: self.status_word(),
            tw: self.tag_word(),
            fip: self.fip,
            fcs: self.fcs,
            fdp: self.fdp,
            fds: self.fds,
        }
    }
}

/// One stack slot in a [`FpuView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StEntry {
    /// Physical register number (R0–R7) of this ST(i).
    pub phys: u8,
    /// Its tag.
    pub tag: Tag,
    /// Its contents (meaningless when empty).
    pub value: F80,
}

/// What a debugger shows of the FPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpuView {
    /// ST(0)..ST(7).
    pub st: [StEntry; 8],
    /// Control word.
    pub cw: u16,
    /// Status word (with TOP).
    pub sw: u16,
    /// Tag word.
    pub tw: u16,
    /// Instruction pointer offset.
    pub fip: u32,
    /// Instruction pointer selector.
    pub fcs: u16,
    /// Data pointer offset.
    pub fdp: u32,
    /// Data pointer selector.
    pub fds: u16,
}

impl FpuView {
    /// Registers in physical order R0..R7: (ST index, entry).
    pub fn physical(&self) -> [(u8, StEntry); 8] {
        let mut out = [(0, self.st[0]); 8];
        for (i, e) in self.st.iter().enumerate() {
            out[e.phys as usize] = (i as u8, *e);
        }
        out
    }
}

/// A short human description of a value.
pub fn describe(v: F80) -> String {
    match v.class() {
        Class::Zero => (if v.sign() { "-0.0" } else { "+0.0" }).to_string(),
        Class::Infinity => (if v.sign() { "-inf" } else { "+inf" }).to_string(),
        Class::QNaN => "QNaN".to_string(),
        Class::SNaN => "SNaN".to_string(),
        Class::Unsupported => "unsupported".to_string(),
        Class::Denormal => format!("denormal ~{:e}", v.to_f64()),
        Class::Normal => format!("{:e}", v.to_f64()),
    }
}

impl fmt::Display for FpuView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = |w: u16, names: &[(u16, &str)]| -> String {
            names
                .iter()
                .filter(|(b, _)| w & b != 0)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let exc: [(u16, &str); 6] = [
            (f80::IE, "IE"),
            (f80::DE, "DE"),
            (f80::ZE, "ZE"),
            (f80::OE, "OE"),
            (f80::UE, "UE"),
            (f80::PE, "PE"),
        ];
        let pc = ["24-bit", "reserved", "53-bit", "64-bit"][((self.cw >> 8) & 3) as usize];
        let rc = ["nearest", "down", "up", "toward zero"][((self.cw >> 10) & 3) as usize];
        writeln!(
            f,
            "FCW={:04X} masks[{}] PC={} RC={}",
            self.cw,
            flags(self.cw, &exc),
            pc,
            rc
        )?;
        let sw = self.sw;
        writeln!(
            f,
            "FSW={:04X} TOP={} C3={} C2={} C1={} C0={} flags[{}]{}{}",
            sw,
            (sw >> 11) & 7,
            (sw >> 14) & 1,
            (sw >> 10) & 1,
            (sw >> 9) & 1,
            (sw >> 8) & 1,
            flags(sw, &exc),
            if sw & f80::SF != 0 { " SF" } else { "" },
            if sw & f80::ES != 0 { " ES" } else { "" },
        )?;
        writeln!(
            f,
            "FTW={:04X} FIP={:04X}:{:08X} FDP={:04X}:{:08X}",
            self.tw, self.fcs, self.fip, self.fds, self.fdp
        )?;
        for (i, e) in self.st.iter().enumerate() {
            let tag = match e.tag {
                Tag::Valid => "valid",
                Tag::Zero => "zero",
                Tag::Special => "special",
                Tag::Empty => "empty",
            };
            write!(f, "ST({i}) R{} {:<7} ", e.phys, tag)?;
            if e.tag == Tag::Empty {
                writeln!(f)?;
            } else {
                writeln!(
                    f,
                    "{:04X} {:016X}  {}",
                    e.value.se,
                    e.value.sig,
                    describe(e.value)
                )?;
            }
        }
        Ok(())
    }
}
