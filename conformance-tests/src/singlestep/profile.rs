//! CPU profiles: what the recorded CPU was, and where it differs from the
//! modelled one.
//!
//! Ringside models a 386-and-later processor. The 286 data was recorded on a
//! Harris 80C286; wherever the 286 and the 386 differ *architecturally*, the
//! test cannot judge our CPU and is skipped — per test, only where the
//! difference shows, with a reason that the report prints and counts. The
//! rules are here, in one place, each with its justification.
//!
//! Flags that the Intel SDM documents as undefined after an instruction are
//! masked for every profile (`sdm_undefined_flags`), in addition to the
//! masks the suites ship (`metadata.json`, `80386.csv`).
//!
//! 286 rules (see `reason` for the wording the report prints):
//! - before running: F1 (ICE prefix), 0F 04/05 (STOREALL/LOADALL), SGDT/SIDT
//!   (sixth byte), SMSW (reserved MSW bits), LOCK where a 386 raises #UD,
//!   instructions over 10 bytes, MOV to/from sreg 4/5, instructions the 386
//!   added (when the 286 raised #UD), POPF/IRET whose popped image has
//!   IOPL/NT set;
//! - after running, only if the result differs: #GP(13) recorded where our
//!   CPU raised #SS(12); a faulting string instruction whose only
//!   differences are SI/DI/CX.
//!
//! Checked and found equal, so no rule: shift/rotate counts (the 286 masks
//! them to 5 bits like the 386), PUSH SP (pushes the old SP on both),
//! divide-error return address (the faulting instruction on both), IDIV of
//! the most negative quotient (no fault on either).
//!
//! The 386 profile has no skip rules: its data comes from the CPU family we
//! model. It loads and compares the 32-bit register file, ignores EFLAGS
//! bits 18-31 (absent on a 386) and compares the CR0 bits a 386 has.

use iced_x86::{CpuidFeature, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::moo::{Registers, TestCase};

/// Status-flag bits.
pub(crate) mod fl {
    pub const CF: u16 = 1 << 0;
    pub const PF: u16 = 1 << 2;
    pub const AF: u16 = 1 << 4;
    pub const ZF: u16 = 1 << 6;
    pub const SF: u16 = 1 << 7;
    pub const OF: u16 = 1 << 11;
    pub const STATUS: u16 = CF | PF | AF | ZF | SF | OF;
}

/// The CPU a test file was recorded on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Harris 80C286 (CPU id `C286`), 16-bit registers.
    I286,
    /// Intel 80386 / 80386EX (CPU id `386E`, `386 `), 32-bit registers.
    I386,
}

/// Skip reasons. Each is one category in the report.
pub(crate) mod reason {
    pub const REVOKED: &str = "revoked by the suite's revocation_list.txt";
    pub const NOT_REAL_MODE: &str = "not a real-mode test (CR0.PE/PG set or META cpu_mode != 0): the runner drives real mode only";
    pub const RAM_RANGE: &str = "test touches memory beyond the runner's 16 MiB + 64 KiB";
    pub const I286_ICE: &str =
        "286: F1 is the 286's ICE prefix (STOREALL); on a 386 F1 is ICEBP (INT 1)";
    pub const I286_LOADALL: &str =
        "286: 0F 05 is the 286 LOADALL; a 386 does not have it at this encoding (#UD)";
    pub const I286_SGDT: &str =
        "286: SGDT/SIDT store 0xFF as the 16-bit form's sixth byte on a 286, 0x00 on a 386 and later (SDM SGDT, IA-32 compat.)";
    pub const I286_SMSW: &str =
        "286: SMSW reads MSW bits 4-15 as 1 on a 286; a 386 returns CR0[15:0] (ET etc.)";
    pub const I286_LOCK: &str =
        "286: LOCK on an instruction that does not allow it: the 286 ignores it, a 386 raises #UD (SDM LOCK)";
    pub const I286_TOO_LONG: &str =
        "286: instruction longer than 10 bytes (extra prefixes): #GP(13) on the 286, a 386 accepts up to 15";
    pub const I286_FS_GS: &str =
        "286: MOV to/from sreg 4/5: #UD on the 286 (no FS/GS), MOV FS/GS on a 386";
    pub const I286_NEW_INSN: &str =
        "286: instruction added by the 386 or later: #UD on the 286, valid on a 386";
    pub const I286_IOPL_NT: &str =
        "286: POPF/IRET with IOPL/NT set in the popped image: a 286 in real mode keeps them 0, a 386 loads them";
    pub const I286_STRING_FAULT: &str =
        "286: a string instruction faulting on a segment-limit overrun has already \
         advanced SI/DI (and CX); on a 386 the fault is restartable and leaves them unchanged";
    pub const I286_SS_FAULT: &str =
        "286: stack-segment limit overrun: #GP(13) on the 286 in real mode, #SS(12) on a 386 (SDM real-mode exceptions)";
}

impl Profile {
    /// The profile for a MOO CPU id (`C286`, `386E`, ...).
    pub fn from_cpu_id(id: &str) -> Option<Profile> {
        let id = id.trim();
        if id.contains("286") {
            Some(Profile::I286)
        } else if id.contains("386") {
            Some(Profile::I386)
        } else {
            None
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Profile::I286 => "80286",
            Profile::I386 => "80386",
        }
    }

    /// EFLAGS bits of the initial state that are loaded into the CPU.
    ///
    /// 286: the initial state is what the generator gave LOADALL; in real mode
    /// a 286 cannot have IOPL/NT (bits 12-14) or bit 15 set, so the README
    /// says to mask the top four bits. 386: bits 18-31 do not exist on a 386
    /// (the recorded values there are the SMM dump's reserved bits).
    pub(crate) fn initial_flags_keep(self) -> u32 {
        match self {
            Profile::I286 => 0x0FFF,
            Profile::I386 => 0x3_FFFF,
        }
    }

    /// EFLAGS bits compared after the test (before undefined-flag masks).
    /// For the 286 the expected upper bits are 0: a 16-bit instruction must
    /// not set RF/VM/AC.
    pub(crate) fn flags_compared(self) -> u32 {
        0x3_FFFF
    }

    /// CR0 bits compared (386 layout only): the bits a 386 implements.
    pub(crate) fn cr0_compared(self) -> u32 {
        0x8000_001F
    }

    /// A reason to skip `t` before running it, if the recorded CPU and ours
    /// differ architecturally for this very test.
    pub(crate) fn pre_skip(self, t: &TestCase, insn: &Insn) -> Option<&'static str> {
        match self {
            Profile::I286 => pre_skip_286(t, insn),
            Profile::I386 => None,
        }
    }

    /// A reason to skip `t` after running it, for differences that can only
    /// be seen in what our CPU did (`got_exception`: vector it delivered).
    ///
    /// `diff_keys` names what differed (register names, `mem`, ...).
    pub(crate) fn post_skip(
        self,
        t: &TestCase,
        insn: &Insn,
        got_exception: Option<u8>,
        diff_keys: &[&str],
    ) -> Option<&'static str> {
        match self {
            Profile::I286 => {
                let want = t.exception.map(|e| e.number);
                if want == Some(13) && got_exception == Some(12) {
                    return Some(reason::I286_SS_FAULT);
                }
                let string_op = matches!(insn.opcode, 0x6C..=0x6F | 0xA4..=0xA7 | 0xAA..=0xAF);
                if string_op
                    && want == Some(13)
                    && matches!(got_exception, Some(12) | Some(13))
                    && diff_keys.iter().all(|k| matches!(*k, "si" | "di" | "cx"))
                {
                    return Some(reason::I286_STRING_FAULT);
                }
                None
            }
            Profile::I386 => None,
        }
    }
}

fn pre_skip_286(t: &TestCase, insn: &Insn) -> Option<&'static str> {
    let exc = t.exception.map(|e| e.number);
    if insn.prefixes.contains(&0xF1) || t.bytes.first() == Some(&0xF1) {
        return Some(reason::I286_ICE);
    }
    match insn.opcode {
        0x0F04 | 0x0F05 => return Some(reason::I286_LOADALL),
        0x0F01 => match insn.modrm.map(|m| (m >> 3) & 7) {
            Some(0) | Some(1) => return Some(reason::I286_SGDT),
            Some(4) => return Some(reason::I286_SMSW),
            _ => {}
        },
        0x8C | 0x8E if matches!(insn.modrm.map(|m| (m >> 3) & 7), Some(4) | Some(5)) => {
            return Some(reason::I286_FS_GS);
        }
        _ => {}
    }
    if insn.prefixes.contains(&0xF0) && insn.valid && !insn.valid_strict && exc != Some(6) {
        return Some(reason::I286_LOCK);
    }
    if matches!(exc, Some(6) | Some(13)) && insn.valid && insn.len > 10 {
        return Some(reason::I286_TOO_LONG);
    }
    if exc == Some(6)
        && insn.valid_strict
        && insn
            .ins
            .cpuid_features()
            .iter()
            .any(|f| !is_286_feature(*f))
    {
        return Some(reason::I286_NEW_INSN);
    }
    if matches!(insn.opcode, 0x9D | 0xCF) {
        let regs = t.initial.regs.as_ref()?;
        let ss = regs.get_named("ss")?;
        let sp = regs.get_named("sp").or_else(|| regs.get_named("esp"))?;
        let depth = if insn.opcode == 0x9D { 0 } else { 4 };
        let addr = |k: u32| (ss & 0xFFFF) * 16 + ((sp + depth + k) & 0xFFFF);
        let lo = ram_byte(&t.initial.ram, addr(0))?;
        let hi = ram_byte(&t.initial.ram, addr(1))?;
        let image = u16::from_le_bytes([lo, hi]);
        if image & 0x7000 != 0 {
            return Some(reason::I286_IOPL_NT);
        }
    }
    None
}

fn is_286_feature(f: CpuidFeature) -> bool {
    matches!(
        f,
        CpuidFeature::INTEL8086
            | CpuidFeature::INTEL8086_ONLY
            | CpuidFeature::INTEL186
            | CpuidFeature::INTEL286
            | CpuidFeature::INTEL286_ONLY
            | CpuidFeature::FPU
            | CpuidFeature::FPU287
            | CpuidFeature::FPU287XL_ONLY
    )
}

/// The byte at `addr` in a RAM list.
pub(crate) fn ram_byte(ram: &[(u32, u8)], addr: u32) -> Option<u8> {
    ram.iter().find(|(a, _)| *a == addr).map(|(_, b)| *b)
}

/// The instruction under test, decoded for the profile rules and the report.
pub(crate) struct Insn {
    /// Decoded without iced's validity checks (e.g. LOCK misuse).
    pub ins: Instruction,
    /// Valid as iced decodes by default (LOCK rules applied).
    pub valid_strict: bool,
    /// Valid when LOCK misuse is ignored.
    pub valid: bool,
    /// Legacy prefixes before the opcode.
    pub prefixes: Vec<u8>,
    /// First opcode byte, or 0x0Fxx for two-byte opcodes.
    pub opcode: u16,
    /// The byte after the opcode (the ModR/M byte for opcodes that have one).
    pub modrm: Option<u8>,
    /// Length of the instruction (without the terminating HLT).
    pub len: usize,
}

impl Insn {
    /// Decode the instruction bytes of a test as 16-bit code at `ip`.
    pub(crate) fn decode(bytes: &[u8], ip: u32) -> Insn {
        let mut buf = bytes.to_vec();
        buf.resize(bytes.len() + 16, 0);
        let mut d = Decoder::with_ip(16, &buf, ip as u64, DecoderOptions::NO_INVALID_CHECK);
        let ins = d.decode();
        let valid = !ins.is_invalid();
        let mut d2 = Decoder::with_ip(16, &buf, ip as u64, DecoderOptions::NONE);
        let valid_strict = !d2.decode().is_invalid();
        let np = bytes
            .iter()
            .take_while(|b| {
                matches!(
                    b,
                    0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 | 0x66 | 0x67 | 0xF0 | 0xF2 | 0xF3
                )
            })
            .count();
        let prefixes = bytes[..np].to_vec();
        let (opcode, modrm) = match bytes.get(np) {
            Some(0x0F) => (
                0x0F00 | *bytes.get(np + 1).unwrap_or(&0) as u16,
                bytes.get(np + 2).copied(),
            ),
            Some(&b) => (b as u16, bytes.get(np + 1).copied()),
            None => (0xFFFF, None),
        };
        let len = if valid {
            ins.len()
        } else {
            bytes.len().saturating_sub(1)
        };
        Insn {
            ins,
            valid_strict,
            valid,
            prefixes,
            opcode,
            modrm,
            len,
        }
    }

    /// Whether the instruction has a REP/REPNE prefix.
    pub(crate) fn has_rep(&self) -> bool {
        self.prefixes.iter().any(|p| matches!(p, 0xF2 | 0xF3))
    }
}

/// Flags the Intel SDM documents as undefined after this instruction with
/// this initial state (a bit set = undefined). `init` supplies CL for shift
/// counts.
pub(crate) fn sdm_undefined_flags(insn: &Insn, init: &Registers) -> u16 {
    use fl::*;
    if !insn.valid {
        return 0;
    }
    let ins = &insn.ins;
    let count = || -> u32 {
        let c = match ins.op1_kind() {
            OpKind::Immediate8 => ins.immediate8() as u32,
            OpKind::Register if ins.op1_register() == Register::CL => {
                init.get_named("cx")
                    .or_else(|| init.get_named("ecx"))
                    .unwrap_or(0)
                    & 0xFF
            }
            _ => 1,
        };
        c & 0x1F
    };
    let width = || -> u32 {
        match ins.op0_kind() {
            OpKind::Register => ins.op0_register().size() as u32 * 8,
            OpKind::Memory => ins.memory_size().size() as u32 * 8,
            _ => 16,
        }
    };
    match ins.mnemonic() {
        Mnemonic::Div | Mnemonic::Idiv => STATUS,
        Mnemonic::Mul | Mnemonic::Imul => SF | ZF | AF | PF,
        Mnemonic::Aam | Mnemonic::Aad => OF | AF | CF,
        Mnemonic::Aaa | Mnemonic::Aas => OF | SF | ZF | PF,
        Mnemonic::Daa | Mnemonic::Das => OF,
        Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Test => AF,
        Mnemonic::Bsf | Mnemonic::Bsr => CF | OF | SF | AF | PF,
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => OF | SF | AF | PF,
        Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar => {
            let c = count();
            let mut u = 0;
            if c != 0 {
                u |= AF;
            }
            if c > 1 {
                u |= OF;
            }
            if c >= width() && ins.mnemonic() != Mnemonic::Sar {
                u |= CF;
            }
            u
        }
        Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr if count() > 1 => OF,
        Mnemonic::Shld | Mnemonic::Shrd => {
            let c = match ins.op2_kind() {
                OpKind::Immediate8 => ins.immediate8() as u32 & 0x1F,
                _ => {
                    init.get_named("cx")
                        .or_else(|| init.get_named("ecx"))
                        .unwrap_or(0)
                        & 0x1F
                }
            };
            match c {
                0 => 0,
                1 => AF,
                c if c > width() => STATUS,
                _ => AF | OF,
            }
        }
        _ => 0,
    }
}
