//! The host-x87 oracle: run one x87 instruction natively and in Ringside
//! from the same FPU state, memory operand and EFLAGS, and compare the
//! 80-bit registers bit for bit, the control, status and tag words, the
//! stored memory operand, AX and the status flags.
//!
//! The native side ([`HostX87`], x86-64 Unix hosts) maps a stub that does
//! `push [rdx]; popfq; frstor [rdi]; <instruction>; fnsave [rdi];
//! mov [rdx+8], rax; pushfq; pop [rdx+16]; ret`. FNSAVE is a no-wait
//! instruction, so an unmasked exception the instruction raised stays
//! pending in the saved image instead of trapping, and FNSAVE leaves the
//! host FPU initialised, as the ABI expects. The instruction's memory
//! operand is always `[rsi]` (ModR/M mod=00 rm=110), which is `[esi]` in
//! 32-bit code: Ringside runs the very same bytes from a code segment with
//! D=1 in real mode ("big real mode").

use ringside_cpu::fpu::F80;
use ringside_cpu::{flags, Cpu, NullBus, PhysMem, SegReg};

/// An x87 state as FSAVE stores it (108-byte 32-bit layout), the parts the
/// oracle sets and compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X87State {
    /// Control word.
    pub cw: u16,
    /// Status word (TOP in bits 11–13).
    pub sw: u16,
    /// Tag word (2 bits per physical register).
    pub tw: u16,
    /// ST(0)..ST(7).
    pub st: [F80; 8],
}

impl X87State {
    /// The 108-byte FRSTOR image (pointers zero).
    pub fn image(&self) -> [u8; 108] {
        let mut b = [0u8; 108];
        b[0..2].copy_from_slice(&self.cw.to_le_bytes());
        b[4..6].copy_from_slice(&self.sw.to_le_bytes());
        b[8..10].copy_from_slice(&self.tw.to_le_bytes());
        for (i, r) in self.st.iter().enumerate() {
            b[28 + 10 * i..38 + 10 * i].copy_from_slice(&r.to_bytes());
        }
        b
    }

    /// Parse an FSAVE image.
    pub fn from_image(b: &[u8; 108]) -> X87State {
        let w = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let mut st = [F80::ZERO; 8];
        for (i, r) in st.iter_mut().enumerate() {
            let mut x = [0u8; 10];
            x.copy_from_slice(&b[28 + 10 * i..38 + 10 * i]);
            *r = F80::from_bytes(x);
        }
        X87State {
            cw: w(0),
            sw: w(4),
            tw: w(8),
            st,
        }
    }
}

/// One oracle case.
#[derive(Clone, Debug)]
pub struct X87Case {
    /// Instruction bytes (memory operand, if any, as ModR/M rm=110 mod=00).
    pub bytes: Vec<u8>,
    /// Input state. Its status word must not hold an unmasked exception
    /// flag (the host would trap at the instruction).
    pub state: X87State,
    /// The 16 bytes at the memory operand.
    pub mem: [u8; 16],
    /// EFLAGS status bits (for FCMOVcc).
    pub eflags: u32,
}

/// What an instruction left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct X87Outcome {
    /// FPU state.
    pub state: X87State,
    /// The memory operand bytes.
    pub mem: [u8; 16],
    /// Low 16 bits of EAX (FNSTSW AX).
    pub ax: u16,
    /// EFLAGS status bits.
    pub eflags: u32,
}

/// Where Ringside's memory operand lives.
const MEM_AT: u32 = 0x2000;
const CODE_AT: u32 = 0x1000;

/// Run a case in Ringside (32-bit code segment in real mode).
pub fn run_ringside(case: &X87Case) -> Result<X87Outcome, String> {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    for s in SegReg::ALL {
        cpu.load_seg_real(s, 0);
    }
    // D=1 code segment: the same ModR/M bytes address [esi].
    cpu.segs[SegReg::Cs as usize].attrs |= 0x4000;
    cpu.eip = CODE_AT;
    cpu.regs[6] = MEM_AT; // ESI
    cpu.regs[0] = 0xDEAD_0000;
    cpu.set_eflags(case.eflags & flags::STATUS | flags::RESERVED1);
    cpu.mem.poke(CODE_AT, &case.bytes);
    cpu.mem.poke(MEM_AT, &case.mem);
    let f = &mut cpu.fpu;
    f.cw = case.state.cw;
    f.set_tag_word(case.state.tw);
    f.set_status_word(case.state.sw);
    for i in 0..8 {
        let p = f.phys(i);
        f.regs[p] = case.state.st[i];
    }
    cpu.step(&mut NullBus);
    if let Some(e) = cpu.last_exception {
        return Err(format!("Ringside raised {e:?}"));
    }
    let want = CODE_AT + case.bytes.len() as u32;
    if cpu.eip != want {
        return Err(format!(
            "Ringside ended at {:X}, expected {want:X}",
            cpu.eip
        ));
    }
    let f = &cpu.fpu;
    let mut st = [F80::ZERO; 8];
    for (i, r) in st.iter_mut().enumerate() {
        *r = f.st(i);
    }
    let mut mem = [0u8; 16];
    for (i, b) in mem.iter_mut().enumerate() {
        *b = cpu.mem.peek(MEM_AT + i as u32);
    }
    Ok(X87Outcome {
        state: X87State {
            cw: f.cw,
            sw: f.status_word(),
            tw: f.tag_word(),
            st,
        },
        mem,
        ax: cpu.regs[0] as u16,
        eflags: cpu.eflags() & flags::STATUS,
    })
}

#[cfg(all(target_arch = "x86_64", unix))]
pub use host::HostX87;

#[cfg(all(target_arch = "x86_64", unix))]
mod host {
    use super::{X87Case, X87Outcome, X87State};
    use ringside_cpu::flags;

    use crate::execpage::ExecPage;

    #[repr(C, align(16))]
    struct Image([u8; 108]);

    #[repr(C, align(16))]
    struct Aux {
        flags_in: u64,
        rax_out: u64,
        flags_out: u64,
    }

    /// Runs single x87 instructions on the host through a stub page.
    pub struct HostX87 {
        page: ExecPage,
    }

    impl HostX87 {
        /// Map the stub page.
        pub fn new() -> std::io::Result<HostX87> {
            Ok(HostX87 {
                page: ExecPage::new()?,
            })
        }

        /// Run a case natively. Refuses instruction bytes that are not a
        /// single x87 instruction without side effects beyond the FPU,
        /// `[rsi]`, AX and the status flags.
        pub fn run(&mut self, case: &X87Case) -> Result<X87Outcome, String> {
            check_bytes(&case.bytes)?;
            if case.state.sw & !case.state.cw & 0x3F != 0 {
                return Err("input status word has an unmasked exception pending".into());
            }
            let mut code = vec![0xFF, 0x32, 0x9D, 0xDD, 0x27];
            code.extend_from_slice(&case.bytes);
            code.extend_from_slice(&[
                0xDD, 0x37, 0x48, 0x89, 0x42, 0x08, 0x9C, 0x8F, 0x42, 0x10, 0xC3,
            ]);
            self.page.load(&code)?;
            let mut image = Image(case.state.image());
            let mut mem = case.mem;
            let mut aux = Aux {
                flags_in: (case.eflags & flags::STATUS | flags::RESERVED1) as u64,
                rax_out: 0,
                flags_out: 0,
            };
            // SAFETY: the stub loads only status flags into RFLAGS (DF stays
            // clear), restores the FPU from the 108-byte image at RDI, runs
            // one x87 instruction that `check_bytes` accepted (its only
            // memory operand is the 16-byte buffer at RSI; FNSTSW AX is the
            // only GPR write), saves the FPU back with the no-wait FNSAVE
            // (which also reinitialises it, so no exception can trap later),
            // and writes RAX and RFLAGS to the Aux block at RDX. RSP is
            // balanced and no callee-saved register is touched. All three
            // buffers are live and exclusively borrowed for the call.
            unsafe {
                let f: unsafe extern "sysv64" fn(*mut u8, *mut u8, *mut Aux) =
                    std::mem::transmute(self.page.entry());
                f(image.0.as_mut_ptr(), mem.as_mut_ptr(), &mut aux);
            }
            Ok(X87Outcome {
                state: X87State::from_image(&image.0),
                mem,
                ax: aux.rax_out as u16,
                eflags: aux.flags_out as u32 & flags::STATUS,
            })
        }
    }

    /// Accept exactly one x87 escape with either a register form or the
    /// `[rsi]` memory form, excluding the state/environment instructions
    /// (they would address more than the 16-byte buffer).
    fn check_bytes(b: &[u8]) -> Result<(), String> {
        let bad = || Err(format!("refused instruction bytes {b:02X?}"));
        if b.len() != 2 || !(0xD8..=0xDF).contains(&b[0]) {
            return bad();
        }
        let modrm = b[1];
        if modrm >= 0xC0 {
            return Ok(());
        }
        if modrm & 0xC7 != 0x06 {
            return bad();
        }
        let reg = (modrm >> 3) & 7;
        // D9 /4 FLDENV, /6 FNSTENV; DD /4 FRSTOR, /6 FNSAVE.
        if matches!((b[0], reg), (0xD9, 4) | (0xD9, 6) | (0xDD, 4) | (0xDD, 6)) {
            return bad();
        }
        Ok(())
    }
}

/// Units in the last place between two finite values of the same sign
/// (None when they are not comparable that way).
pub fn ulp_distance(a: F80, b: F80) -> Option<u64> {
    if a.sign() != b.sign() {
        return None;
    }
    // Normal numbers of adjacent exponents are contiguous in this order.
    let key = |x: F80| -> Option<i128> {
        let e = x.biased_exp() as i128;
        if e == 0x7FFF || (e != 0 && x.sig >> 63 == 0) {
            return None;
        }
        let frac = (x.sig & !(1 << 63)) as i128;
        Some(if e == 0 {
            x.sig as i128
        } else {
            (e << 63) + frac
        })
    };
    Some((key(a)? - key(b)?).unsigned_abs() as u64)
}
