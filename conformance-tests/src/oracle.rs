//! The host-CPU oracle: run one register-only instruction natively and in
//! Ringside from the same registers and flags, and compare what the
//! architecture defines.
//!
//! The native side ([`HostCpu`], x86-64 Unix hosts only) assembles a small
//! stub into an executable page: it loads the eight GPRs (all but RSP) and
//! the status flags from a [`HostRegs`] block, executes the instruction under
//! test (encoded for 64-bit mode), and stores the GPRs and `pushfq` back.
//! The Ringside side ([`run_ringside`]) executes the same instruction encoded
//! for 16-bit real-mode code, where 32-bit operands get an operand-size
//! prefix. Only the low 32 bits of each register are compared.
//!
//! Which flags (and which destination bits) an instruction defines depends on
//! the instruction, its operand size and sometimes its operands (a shift's
//! count, a BSF source of zero): [`expectation`] says, with the Intel SDM
//! Vol. 2 wording it relies on.

use iced_x86::{Encoder, Formatter, Instruction, Mnemonic, NasmFormatter, OpKind, Register};
use ringside_cpu::{flags, Cpu, NullBus, PhysMem, SegReg};

/// The six status flags (CF, PF, AF, ZF, SF, OF).
pub const STATUS: u32 = flags::STATUS;

/// Register names in encoding order, for diffs.
pub const REG_NAMES: [&str; 8] = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];

/// The state an oracle case starts from or ends in: the eight 32-bit GPRs in
/// encoding order (EAX ECX EDX EBX ESP EBP ESI EDI) and EFLAGS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct State {
    /// GPRs in encoding order.
    pub regs: [u32; 8],
    /// EFLAGS.
    pub eflags: u32,
}

/// What of an instruction's outcome the architecture defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Status flags whose output value is defined (including flags the
    /// instruction leaves unchanged: "unaffected" is defined).
    pub flags: u32,
    /// Per GPR, the bits whose output value is defined.
    pub regs: [u32; 8],
    /// Why something is left out, for the failure message.
    pub note: Option<&'static str>,
}

/// Where a GPR lives: index in [`State::regs`] and the bit mask it covers.
/// `None` for anything that is not one of the 8/16/32-bit legacy GPRs.
pub fn reg_slot(r: Register) -> Option<(usize, u32)> {
    let n = r as u32;
    let within = |first: Register, count: u32| n.wrapping_sub(first as u32) < count;
    if within(Register::EAX, 8) {
        Some(((n - Register::EAX as u32) as usize, 0xFFFF_FFFF))
    } else if within(Register::AX, 8) {
        Some(((n - Register::AX as u32) as usize, 0xFFFF))
    } else if within(Register::AL, 4) {
        Some(((n - Register::AL as u32) as usize, 0xFF))
    } else if within(Register::AH, 4) {
        Some(((n - Register::AH as u32) as usize, 0xFF00))
    } else {
        None
    }
}

/// Read a legacy GPR (AL..BH, AX..DI, EAX..EDI) from `regs`, shifted down.
pub fn read_reg(regs: &[u32; 8], r: Register) -> u32 {
    match reg_slot(r) {
        Some((i, m)) => (regs[i] & m) >> m.trailing_zeros(),
        None => 0,
    }
}

/// Operand size in bits of a legacy GPR.
fn reg_bits(r: Register) -> u32 {
    match reg_slot(r) {
        Some((_, 0xFFFF_FFFF)) => 32,
        Some((_, 0xFFFF)) => 16,
        _ => 8,
    }
}

/// Encode `ins` for code of `bitness` (16, 32 or 64) at address 0.
pub fn encode(ins: &Instruction, bitness: u32) -> Result<Vec<u8>, String> {
    let mut enc = Encoder::new(bitness);
    enc.encode(ins, 0)
        .map_err(|e| format!("cannot encode `{}` for {bitness}-bit code: {e}", nasm(ins)))?;
    Ok(enc.take_buffer())
}

/// The instruction in NASM syntax.
pub fn nasm(ins: &Instruction) -> String {
    let mut f = NasmFormatter::new();
    f.options_mut().set_uppercase_hex(true);
    f.options_mut().set_space_after_operand_separator(true);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

/// The count operand of a shift, rotate or double shift (immediate or CL),
/// before masking.
fn shift_count(ins: &Instruction, input: &State) -> u32 {
    let last = ins.op_count() - 1;
    match ins.op_kind(last) {
        OpKind::Immediate8 => ins.immediate8() as u32,
        OpKind::Register => read_reg(&input.regs, ins.op_register(last)),
        _ => 1,
    }
}

/// Whether a DIV/IDIV with these registers raises #DE (divisor zero or
/// quotient too large), per the SDM Vol. 2 DIV and IDIV pseudocode. The host
/// oracle refuses such cases: natively they would be a SIGFPE.
pub fn divide_faults(ins: &Instruction, regs: &[u32; 8]) -> bool {
    let src = ins.op0_register();
    let bits = reg_bits(src);
    let divisor = read_reg(regs, src) as u64;
    if divisor == 0 {
        return true;
    }
    let dividend: u64 = match bits {
        8 => (regs[0] & 0xFFFF) as u64,
        16 => ((regs[2] & 0xFFFF) as u64) << 16 | (regs[0] & 0xFFFF) as u64,
        _ => (regs[2] as u64) << 32 | regs[0] as u64,
    };
    if ins.mnemonic() == Mnemonic::Div {
        dividend / divisor > (1u64 << bits) - 1
    } else {
        let sx = |v: u64, b: u32| ((v as i128) << (128 - b)) >> (128 - b);
        let q = sx(dividend, 2 * bits) / sx(divisor, bits);
        q > (1i128 << (bits - 1)) - 1 || q < -(1i128 << (bits - 1))
    }
}

/// What the architecture defines of `ins`'s outcome from `input`.
///
/// The flag rules quote the "Flags Affected" sections of the Intel SDM
/// Vol. 2 instruction pages. Only the instruction groups the oracle tests
/// are listed; anything else compares everything.
pub fn expectation(ins: &Instruction, input: &State) -> Expect {
    const CF: u32 = flags::CF;
    const PF: u32 = flags::PF;
    const AF: u32 = flags::AF;
    const ZF: u32 = flags::ZF;
    const SF: u32 = flags::SF;
    const OF: u32 = flags::OF;
    let mut e = Expect {
        flags: STATUS,
        regs: [0xFFFF_FFFF; 8],
        note: None,
    };
    let dest = ins.op0_register();
    let bits = reg_bits(dest);
    let undefine_dest = |e: &mut Expect| {
        if let Some((i, m)) = reg_slot(dest) {
            e.regs[i] &= !m;
        }
    };
    match ins.mnemonic() {
        // ADD, ADC, SUB, SBB, CMP, NEG, XADD, CMPXCHG: "The OF, SF, ZF, AF, CF,
        // and PF flags are set according to the result." INC/DEC: "The CF flag
        // is not affected. The OF, SF, ZF, AF, and PF flags are set according
        // to the result." NOT, BSWAP, SETcc, CMOVcc: "None."
        Mnemonic::Add
        | Mnemonic::Adc
        | Mnemonic::Sub
        | Mnemonic::Sbb
        | Mnemonic::Cmp
        | Mnemonic::Neg
        | Mnemonic::Xadd
        | Mnemonic::Cmpxchg
        | Mnemonic::Inc
        | Mnemonic::Dec
        | Mnemonic::Not
        | Mnemonic::Bswap => {}
        // CMC/CLC/STC: "The CF flag is complemented/cleared/set. The OF, ZF,
        // SF, AF, and PF flags are unaffected." LAHF: "None." SAHF: "The SF,
        // ZF, AF, PF, and CF flags are loaded with values from the AH
        // register." (OF unaffected.)
        Mnemonic::Cmc | Mnemonic::Clc | Mnemonic::Stc | Mnemonic::Lahf | Mnemonic::Sahf => {}
        m if is_setcc_or_cmovcc(m) => {}
        // AND, OR, XOR, TEST: "The OF and CF flags are cleared; the SF, ZF, and
        // PF flags are set according to the result. The state of the AF flag
        // is undefined."
        Mnemonic::And | Mnemonic::Or | Mnemonic::Xor | Mnemonic::Test => {
            e.flags = STATUS & !AF;
            e.note = Some("AF undefined (logical op)");
        }
        // MUL: "The OF and CF flags are set to 0 if the upper half of the result
        // is 0; otherwise, they are set to 1. The SF, ZF, AF, and PF flags are
        // undefined." IMUL (all forms): CF/OF as the truncation test; "The SF,
        // ZF, AF, and PF flags are undefined."
        Mnemonic::Mul | Mnemonic::Imul => {
            e.flags = CF | OF;
            e.note = Some("SF/ZF/AF/PF undefined (multiply)");
        }
        // DIV, IDIV: "The CF, OF, SF, ZF, AF, and PF flags are undefined."
        Mnemonic::Div | Mnemonic::Idiv => {
            e.flags = 0;
            e.note = Some("all status flags undefined (divide)");
        }
        // SAL/SAR/SHL/SHR: "The CF flag contains the value of the last bit
        // shifted out of the destination operand; it is undefined for SHL and
        // SHR instructions where the count is greater than or equal to the size
        // (in bits) of the destination operand. The OF flag is affected only
        // for 1-bit shifts; otherwise, it is undefined. The SF, ZF, and PF
        // flags are set according to the result. If the count is 0, the flags
        // are not affected. For a non-zero count, the AF flag is undefined."
        // The count is masked to 5 bits.
        Mnemonic::Shl | Mnemonic::Sal | Mnemonic::Shr | Mnemonic::Sar => {
            let count = shift_count(ins, input) & 0x1F;
            if count != 0 {
                e.flags = SF | ZF | PF | CF | OF;
                e.note = Some("AF undefined (shift count != 0)");
                if count != 1 {
                    e.flags &= !OF;
                    e.note = Some("AF and OF undefined (shift count > 1)");
                }
                if ins.mnemonic() != Mnemonic::Sar && count >= bits {
                    e.flags &= !CF;
                    e.note = Some("AF, OF and CF undefined (SHL/SHR count >= operand size)");
                }
            }
        }
        // RCL/RCR/ROL/ROR: "If the masked count is 0, the flags are not
        // affected. If the masked count is 1, then the OF flag is affected,
        // otherwise (masked count is greater than 1) the OF flag is undefined.
        // The CF flag is affected when the masked count is nonzero. The SF, ZF,
        // AF, and PF flags are always unaffected."
        Mnemonic::Rol | Mnemonic::Ror | Mnemonic::Rcl | Mnemonic::Rcr => {
            let count = shift_count(ins, input) & 0x1F;
            if count > 1 {
                e.flags = STATUS & !OF;
                e.note = Some("OF undefined (rotate count > 1)");
            }
        }
        // SHLD/SHRD: "If the count is 1 or greater, the CF flag is filled with
        // the last bit shifted out of the destination operand and the SF, ZF,
        // and PF flags are set according to the value of the result. For a
        // 1-bit shift, the OF flag is set if a sign change occurred; otherwise,
        // it is cleared. For shifts greater than 1 bit, the OF flag is
        // undefined. If a shift occurs, the AF flag is undefined. If the count
        // operand is 0, the flags are not affected. If the count is greater
        // than the operand size, the flags are undefined." The description adds
        // that the destination is then undefined too.
        Mnemonic::Shld | Mnemonic::Shrd => {
            let count = shift_count(ins, input) & 0x1F;
            if count > bits {
                e.flags = 0;
                undefine_dest(&mut e);
                e.note =
                    Some("flags and destination undefined (double-shift count > operand size)");
            } else if count > 1 {
                e.flags = CF | SF | ZF | PF;
                e.note = Some("AF and OF undefined (double-shift count > 1)");
            } else if count == 1 {
                e.flags = CF | SF | ZF | PF | OF;
                e.note = Some("AF undefined (double-shift count 1)");
            }
        }
        // BT/BTS/BTR/BTC: "The CF flag contains the value of the selected bit
        // [before it is changed]. The ZF flag is unaffected. The OF, SF, AF,
        // and PF flags are undefined."
        Mnemonic::Bt | Mnemonic::Bts | Mnemonic::Btr | Mnemonic::Btc => {
            e.flags = CF | ZF;
            e.note = Some("OF/SF/AF/PF undefined (bit test)");
        }
        // BSF/BSR: "The ZF flag is set to 1 if the source operand is 0;
        // otherwise, the ZF flag is cleared. The CF, OF, SF, AF, and PF flags
        // are undefined." and "If the content of the source operand is 0, the
        // content of the destination operand is undefined."
        Mnemonic::Bsf | Mnemonic::Bsr => {
            e.flags = ZF;
            e.note = Some("CF/OF/SF/AF/PF undefined (bit scan)");
            if read_reg(&input.regs, ins.op1_register()) == 0 {
                undefine_dest(&mut e);
                e.note = Some("CF/OF/SF/AF/PF and destination undefined (bit scan of zero)");
            }
        }
        _ => {}
    }
    e
}

fn is_setcc_or_cmovcc(m: Mnemonic) -> bool {
    use Mnemonic::*;
    matches!(
        m,
        Seto | Setno
            | Setb
            | Setae
            | Sete
            | Setne
            | Setbe
            | Seta
            | Sets
            | Setns
            | Setp
            | Setnp
            | Setl
            | Setge
            | Setle
            | Setg
            | Cmovo
            | Cmovno
            | Cmovb
            | Cmovae
            | Cmove
            | Cmovne
            | Cmovbe
            | Cmova
            | Cmovs
            | Cmovns
            | Cmovp
            | Cmovnp
            | Cmovl
            | Cmovge
            | Cmovle
            | Cmovg
    )
}

/// Whether the oracle may run `ins` natively: one of the instruction groups
/// it knows, with legacy-GPR (not ESP) and immediate operands only, and not a
/// faulting divide for `regs`.
pub fn host_safe(ins: &Instruction, regs: &[u32; 8]) -> Result<(), String> {
    use Mnemonic::*;
    let m = ins.mnemonic();
    let known = matches!(
        m,
        Add | Or
            | Adc
            | Sbb
            | And
            | Sub
            | Xor
            | Cmp
            | Test
            | Inc
            | Dec
            | Neg
            | Not
            | Rol
            | Ror
            | Rcl
            | Rcr
            | Shl
            | Sal
            | Shr
            | Sar
            | Mul
            | Imul
            | Div
            | Idiv
            | Bt
            | Bts
            | Btr
            | Btc
            | Bsf
            | Bsr
            | Shld
            | Shrd
            | Xadd
            | Cmpxchg
            | Bswap
            | Cmc
            | Clc
            | Stc
    ) || is_setcc_or_cmovcc(m)
        || (matches!(m, Lahf | Sahf) && host_has_lahf_sahf());
    if !known {
        return Err(format!(
            "`{}` is not in the oracle's instruction groups",
            nasm(ins)
        ));
    }
    for i in 0..ins.op_count() {
        match ins.op_kind(i) {
            OpKind::Register => {
                let r = ins.op_register(i);
                match reg_slot(r) {
                    Some((4, _)) => return Err(format!("`{}` uses the stack pointer", nasm(ins))),
                    Some(_) => {}
                    None => return Err(format!("`{}` uses {r:?}", nasm(ins))),
                }
            }
            OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32 => {}
            k => return Err(format!("`{}` has a {k:?} operand", nasm(ins))),
        }
    }
    if matches!(m, Div | Idiv) && divide_faults(ins, regs) {
        return Err(format!("`{}` would raise #DE", nasm(ins)));
    }
    Ok(())
}

/// Whether LAHF/SAHF can run natively: in 64-bit mode they need
/// CPUID.80000001H:ECX.LAHF-SAHF (bit 0). Always false off x86-64.
pub fn host_has_lahf_sahf() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: CPUID exists on every x86-64 processor; leaf 0x80000000
        // reports the highest extended leaf, checked before 0x80000001 is read.
        #[allow(unused_unsafe)]
        unsafe {
            use std::arch::x86_64::__cpuid;
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & 1 != 0
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Real-mode code segment and offset where [`run_ringside`] places the instruction.
pub const RINGSIDE_CS: u16 = 0x1000;
/// Offset of the instruction in [`RINGSIDE_CS`].
pub const RINGSIDE_IP: u32 = 0x0100;

/// Execute `ins` once in a fresh Ringside CPU in real mode (16-bit code at
/// 1000:0100, data and stack segments at 2000) starting from `input`.
/// Errors if the instruction faulted or did not end where it should.
pub fn run_ringside(ins: &Instruction, input: &State) -> Result<State, String> {
    run_ringside_sequence(std::slice::from_ref(ins), input)
}

/// Like [`run_ringside`] for a straight-line sequence, one `step` per
/// instruction: the later instructions see the earlier ones' (lazily
/// evaluated) flags.
pub fn run_ringside_sequence(seq: &[Instruction], input: &State) -> Result<State, String> {
    let mut bytes = Vec::new();
    for ins in seq {
        bytes.extend(encode(ins, 16)?);
    }
    let text = describe(seq);
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.load_seg_real(SegReg::Cs, RINGSIDE_CS);
    for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
        cpu.load_seg_real(s, 0x2000);
    }
    cpu.eip = RINGSIDE_IP;
    cpu.regs = input.regs;
    cpu.set_eflags(input.eflags);
    let lin = ((RINGSIDE_CS as u32) << 4) + RINGSIDE_IP;
    cpu.mem.poke(lin, &bytes);
    for _ in seq {
        cpu.step(&mut NullBus);
        if let Some(f) = cpu.last_exception {
            return Err(format!(
                "Ringside raised {f} executing `{text}` ({})",
                hex(&bytes)
            ));
        }
        if cpu.is_shutdown() {
            return Err(format!("Ringside shut down executing `{text}`"));
        }
    }
    let want_ip = RINGSIDE_IP + bytes.len() as u32;
    if cpu.eip != want_ip || cpu.segs[SegReg::Cs as usize].selector != RINGSIDE_CS {
        return Err(format!(
            "Ringside ended at {:04X}:{:04X}, expected {RINGSIDE_CS:04X}:{want_ip:04X} after `{text}` ({})",
            cpu.segs[SegReg::Cs as usize].selector,
            cpu.eip,
            hex(&bytes)
        ));
    }
    Ok(State {
        regs: cpu.regs,
        eflags: cpu.eflags(),
    })
}

/// A sequence in NASM syntax, instructions separated by "; ".
pub fn describe(seq: &[Instruction]) -> String {
    seq.iter().map(nasm).collect::<Vec<_>>().join("; ")
}

/// What the architecture defines after a straight-line sequence, given the
/// state before each instruction (`before[i]` is the input of `seq[i]`):
/// a conservative intersection, so a flag that any instruction leaves
/// undefined is not compared at the end even if a later one redefines it.
/// Registers are treated the same way. Undefinedness is not followed
/// through data flow: a sequence must never let an instruction compute with
/// a flag or register bit an earlier one left undefined (LAHF's AF bit, for
/// one, may only be produced by the last instruction).
pub fn sequence_expectation(seq: &[Instruction], before: &[State]) -> Expect {
    let mut e = Expect {
        flags: STATUS,
        regs: [0xFFFF_FFFF; 8],
        note: None,
    };
    for (ins, st) in seq.iter().zip(before) {
        if ins.mnemonic() == Mnemonic::Lahf {
            // AH receives SF ZF AF PF CF: a flag undefined so far makes its
            // bit of AH undefined (they sit at the same bit positions + 8).
            e.regs[0] &= !(((!e.flags) & STATUS & !flags::OF) << 8);
        }
        let x = expectation(ins, st);
        e.flags &= x.flags;
        for (r, m) in e.regs.iter_mut().zip(x.regs) {
            *r &= m;
        }
        e.note = e.note.or(x.note);
    }
    e
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn flag_names(v: u32) -> String {
    let names = [
        (flags::CF, "CF"),
        (flags::PF, "PF"),
        (flags::AF, "AF"),
        (flags::ZF, "ZF"),
        (flags::SF, "SF"),
        (flags::OF, "OF"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| v & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if set.is_empty() {
        "-".to_string()
    } else {
        set.join(" ")
    }
}

/// Compare Ringside's result with the host's under `ins`'s [`expectation`].
/// Also checks that Ringside left the non-status EFLAGS bits alone. The
/// error is a readable report: the instruction in NASM syntax, the input,
/// and every differing register or flag.
pub fn compare(
    ins: &Instruction,
    input: &State,
    ringside: &State,
    host: &State,
) -> Result<(), String> {
    compare_expect(
        std::slice::from_ref(ins),
        input,
        ringside,
        host,
        &expectation(ins, input),
    )
}

/// [`compare`] for a sequence, under an expectation the caller computed
/// (e.g. with [`sequence_expectation`]).
pub fn compare_expect(
    seq: &[Instruction],
    input: &State,
    ringside: &State,
    host: &State,
    e: &Expect,
) -> Result<(), String> {
    let mut diffs = Vec::new();
    for (i, &m) in e.regs.iter().enumerate() {
        if (ringside.regs[i] ^ host.regs[i]) & m != 0 {
            diffs.push(format!(
                "  {:3}: ringside {:08X}  host {:08X}{}",
                REG_NAMES[i],
                ringside.regs[i],
                host.regs[i],
                if m == 0xFFFF_FFFF {
                    String::new()
                } else {
                    format!("  (compared bits {m:08X})")
                }
            ));
        }
    }
    let fd = (ringside.eflags ^ host.eflags) & e.flags;
    if fd != 0 {
        diffs.push(format!(
            "  flags differ in {}: ringside [{}]  host [{}]  (compared: [{}])",
            flag_names(fd),
            flag_names(ringside.eflags & e.flags),
            flag_names(host.eflags & e.flags),
            flag_names(e.flags)
        ));
    }
    let other = (ringside.eflags ^ input.eflags) & !STATUS;
    if other != 0 {
        diffs.push(format!(
            "  Ringside changed non-status EFLAGS bits {other:08X} (in {:08X}, out {:08X})",
            input.eflags, ringside.eflags
        ));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    let code16: Vec<String> = seq
        .iter()
        .map(|i| encode(i, 16).map(|b| hex(&b)).unwrap_or_default())
        .collect();
    let mut s = format!(
        "`{}` (16-bit: {})\n  input:",
        describe(seq),
        code16.join(" | ")
    );
    for (i, r) in input.regs.iter().enumerate() {
        s += &format!(" {}={r:08X}", REG_NAMES[i]);
    }
    s += &format!(" flags=[{}]\n", flag_names(input.eflags));
    if let Some(n) = e.note {
        s += &format!("  not compared: {n}\n");
    }
    s += &diffs.join("\n");
    Err(s)
}

/// The register block the native stub reads and writes (pointer in RDI).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct HostRegs {
    /// RAX RCX RDX RBX RSP(unused) RBP RSI RDI.
    pub regs: [u64; 8],
    /// RFLAGS.
    pub flags: u64,
}

#[cfg(all(target_arch = "x86_64", unix))]
pub use host::HostCpu;

#[cfg(all(target_arch = "x86_64", unix))]
mod host {
    use super::{encode, host_safe, HostRegs, State, STATUS};
    use iced_x86::{Code, Encoder, Instruction, MemoryOperand, Register};
    use ringside_cpu::flags;

    use crate::execpage::ExecPage;

    /// Executes single instructions on the host CPU through a stub in an
    /// executable page of its own (written while RW, then flipped to RX).
    pub struct HostCpu {
        page: ExecPage,
    }

    impl HostCpu {
        /// Map the stub page.
        pub fn new() -> std::io::Result<HostCpu> {
            Ok(HostCpu {
                page: ExecPage::new()?,
            })
        }

        /// Run `ins` natively from `input`. Only the status flags of
        /// `input.eflags` are loaded (DF, TF and the rest stay clear). The
        /// returned ESP is `input`'s (the stub does not touch RSP's value for
        /// the instruction). Refuses anything [`host_safe`] refuses.
        pub fn run(&mut self, ins: &Instruction, input: &State) -> Result<State, String> {
            host_safe(ins, &input.regs)?;
            let code = stub(&encode(ins, 64)?)?;
            self.page.load(&code)?;
            let mut block = HostRegs {
                regs: input.regs.map(u64::from),
                flags: (input.eflags & STATUS | flags::RESERVED1) as u64,
            };
            // SAFETY: the page holds the stub built by `stub`: it saves and
            // restores every callee-saved register it uses (RBX, RBP, R15),
            // leaves RSP balanced, reads and writes only the HostRegs block
            // whose address it gets in RDI (valid and exclusively borrowed
            // here), and loads only status flags into RFLAGS (DF stays clear as
            // the ABI requires). The instruction in the middle passed
            // `host_safe`: a register-only ALU/shift/multiply/bit operation
            // that does not use RSP, cannot branch and (for DIV/IDIV) cannot
            // fault with these inputs.
            unsafe {
                let f: unsafe extern "sysv64" fn(*mut HostRegs) =
                    std::mem::transmute(self.page.entry());
                f(&mut block);
            }
            let mut regs = block.regs.map(|r| r as u32);
            regs[4] = input.regs[4];
            Ok(State {
                regs,
                eflags: block.flags as u32,
            })
        }
    }

    /// GPRs the stub loads and stores, with their offset in HostRegs (RSP is left out).
    const LOADED: [(Register, i64); 7] = [
        (Register::RAX, 0),
        (Register::RCX, 8),
        (Register::RDX, 16),
        (Register::RBX, 24),
        (Register::RBP, 40),
        (Register::RSI, 48),
        (Register::RDI, 56),
    ];
    const FLAGS_OFFSET: i64 = 64;

    /// The stub: `void stub(HostRegs *rdi)` with `body` in the middle.
    fn stub(body: &[u8]) -> Result<Vec<u8>, String> {
        let block = |d: i64| MemoryOperand::with_base_displ(Register::R15, d);
        let mut pre = Vec::new();
        let mut post = Vec::new();
        let err = |e: iced_x86::IcedError| e.to_string();
        for r in [Register::RBX, Register::RBP, Register::R15] {
            pre.push(Instruction::with1(Code::Push_r64, r).map_err(err)?);
        }
        pre.push(
            Instruction::with2(Code::Mov_r64_rm64, Register::R15, Register::RDI).map_err(err)?,
        );
        pre.push(Instruction::with1(Code::Push_rm64, block(FLAGS_OFFSET)).map_err(err)?);
        pre.push(Instruction::with(Code::Popfq));
        for (r, off) in LOADED {
            pre.push(Instruction::with2(Code::Mov_r64_rm64, r, block(off)).map_err(err)?);
        }
        post.push(Instruction::with(Code::Pushfq));
        for (r, off) in LOADED {
            post.push(Instruction::with2(Code::Mov_rm64_r64, block(off), r).map_err(err)?);
        }
        post.push(Instruction::with1(Code::Pop_rm64, block(FLAGS_OFFSET)).map_err(err)?);
        for r in [Register::R15, Register::RBP, Register::RBX] {
            post.push(Instruction::with1(Code::Pop_r64, r).map_err(err)?);
        }
        post.push(Instruction::with(Code::Retnq));
        let mut enc = Encoder::new(64);
        for i in &pre {
            enc.encode(i, 0).map_err(err)?;
        }
        let mut out = enc.take_buffer();
        out.extend_from_slice(body);
        for i in &post {
            enc.encode(i, 0).map_err(err)?;
        }
        out.extend_from_slice(&enc.take_buffer());
        Ok(out)
    }
}

#[cfg(all(test, target_arch = "x86_64", unix))]
mod tests {
    use super::*;
    use iced_x86::Code;

    #[test]
    fn host_stub_adds_and_sets_flags() {
        let mut h = HostCpu::new().unwrap();
        let ins = Instruction::with2(Code::Add_rm32_r32, Register::EAX, Register::ECX).unwrap();
        let input = State {
            regs: [0xFFFF_FFFF, 1, 2, 3, 0x1234, 5, 6, 7],
            eflags: flags::RESERVED1,
        };
        let out = h.run(&ins, &input).unwrap();
        assert_eq!(out.regs, [0, 1, 2, 3, 0x1234, 5, 6, 7]);
        assert_eq!(
            out.eflags & STATUS,
            flags::CF | flags::ZF | flags::PF | flags::AF
        );
    }

    #[test]
    fn host_stub_keeps_high_byte_registers_apart() {
        let mut h = HostCpu::new().unwrap();
        let ins = Instruction::with2(Code::Xor_rm8_r8, Register::BH, Register::AH).unwrap();
        let input = State {
            regs: [0x1234_5678, 0, 0, 0xAABB_CCDD, 0, 0, 0, 0],
            eflags: flags::RESERVED1 | flags::CF | flags::OF,
        };
        let out = h.run(&ins, &input).unwrap();
        assert_eq!(out.regs[3], 0xAABB_9ADD);
        assert_eq!(out.eflags & (flags::CF | flags::OF), 0);
    }

    #[test]
    fn host_refuses_faulting_divide_and_stack_pointer() {
        let mut h = HostCpu::new().unwrap();
        let div = Instruction::with1(Code::Div_rm8, Register::CL).unwrap();
        assert!(h
            .run(
                &div,
                &State {
                    regs: [0x100, 1, 0, 0, 0, 0, 0, 0],
                    eflags: 2
                }
            )
            .is_err());
        assert!(h
            .run(
                &div,
                &State {
                    regs: [0x100, 0, 0, 0, 0, 0, 0, 0],
                    eflags: 2
                }
            )
            .is_err());
        assert!(h
            .run(
                &div,
                &State {
                    regs: [0x100, 2, 0, 0, 0, 0, 0, 0],
                    eflags: 2
                }
            )
            .is_ok());
        let sp = Instruction::with2(Code::Add_rm32_r32, Register::ESP, Register::ECX).unwrap();
        assert!(h.run(&sp, &State::default()).is_err());
    }

    #[test]
    fn idiv_most_negative_quotient_does_not_fault() {
        let idiv = Instruction::with1(Code::Idiv_rm8, Register::CL).unwrap();
        // -256 / 2 = -128 fits; 256 / 2 = 128 does not.
        assert!(!divide_faults(&idiv, &[0xFF00, 2, 0, 0, 0, 0, 0, 0]));
        assert!(divide_faults(&idiv, &[0x0100, 2, 0, 0, 0, 0, 0, 0]));
    }
}

#[cfg(test)]
mod ringside_side_tests {
    use super::*;
    use iced_x86::Code;

    #[test]
    fn ringside_runs_the_instruction_in_16_bit_code() {
        let ins = Instruction::with2(Code::Sub_rm16_r16, Register::BX, Register::SI).unwrap();
        let input = State {
            regs: [0, 0, 0, 0x1234_0005, 0, 0, 7, 0],
            eflags: flags::RESERVED1,
        };
        let out = run_ringside(&ins, &input).unwrap();
        assert_eq!(out.regs[3], 0x1234_FFFE);
        assert_eq!(
            out.eflags & (flags::CF | flags::SF | flags::ZF),
            flags::CF | flags::SF
        );
    }

    #[test]
    fn compare_reports_defined_differences_only() {
        let mul = Instruction::with1(Code::Mul_rm8, Register::CL).unwrap();
        let input = State {
            regs: [3, 5, 0, 0, 0, 0, 0, 0],
            eflags: flags::RESERVED1,
        };
        let host = State {
            regs: [15, 5, 0, 0, 0, 0, 0, 0],
            eflags: flags::RESERVED1 | flags::PF,
        };
        // SF/ZF/AF/PF are undefined after MUL: a difference there is not reported.
        let ours = State {
            eflags: flags::RESERVED1 | flags::ZF,
            ..host
        };
        assert!(compare(&mul, &input, &ours, &host).is_ok());
        let ours = State {
            eflags: flags::RESERVED1 | flags::CF,
            ..host
        };
        let msg = compare(&mul, &input, &ours, &host).unwrap_err();
        assert!(
            msg.contains("mul cl") && msg.contains("flags differ in CF"),
            "{msg}"
        );
        let ours = State {
            regs: [16, 5, 0, 0, 0, 0, 0, 0],
            ..host
        };
        assert!(compare(&mul, &input, &ours, &host)
            .unwrap_err()
            .contains("eax: ringside 00000010  host 0000000F"));
    }

    #[test]
    fn shift_expectations_follow_the_count() {
        let shl = |n: u32| Instruction::with2(Code::Shl_rm8_imm8, Register::AL, n).unwrap();
        let s = State::default();
        assert_eq!(expectation(&shl(0), &s).flags, STATUS);
        assert_eq!(expectation(&shl(1), &s).flags, STATUS & !flags::AF);
        assert_eq!(
            expectation(&shl(7), &s).flags,
            flags::CF | flags::SF | flags::ZF | flags::PF
        );
        assert_eq!(
            expectation(&shl(8), &s).flags,
            flags::SF | flags::ZF | flags::PF
        );
        // Counts are masked to 5 bits: 32 is 0, flags unaffected.
        assert_eq!(expectation(&shl(32), &s).flags, STATUS);
        let shld = Instruction::with3(Code::Shld_rm16_r16_imm8, Register::AX, Register::BX, 17u32)
            .unwrap();
        let e = expectation(&shld, &s);
        assert_eq!((e.flags, e.regs[0]), (0, 0xFFFF_0000));
        let bsf = Instruction::with2(Code::Bsf_r32_rm32, Register::EDX, Register::ECX).unwrap();
        assert_eq!(expectation(&bsf, &s).regs[2], 0);
    }
}
