//! Property-based conformance against the host CPU.
//!
//! Each case is one register-only instruction from the ALU, shift/rotate,
//! multiply/divide, bit test/scan, double shift, XADD/CMPXCHG, BSWAP and
//! SETcc/CMOVcc groups at 8/16/32-bit sizes, with random registers and status
//! flags. It runs natively (x86-64 hosts) and in Ringside; results and every
//! flag the SDM defines for that instruction must agree (see
//! `ringside_conformance::oracle::expectation`). CMPXCHG8B, whose operand
//! is memory, has its own runners on both sides and is compared on EDX:EAX,
//! the quadword in memory and the status flags. A failure shrinks to a
//! minimal case and prints it in NASM syntax with a register/flag diff.
//!
//! 256 cases per group by default; `PROPTEST_CASES=N` changes that.

#[cfg(all(target_arch = "x86_64", unix))]
mod host {
    use std::cell::RefCell;
    use std::fmt;

    use iced_x86::{Code, Instruction, Register};
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use ringside_conformance::oracle::{self, HostCpu, State, REG_NAMES};
    use ringside_cpu::flags;

    /// One oracle case: the instruction and the state it starts from.
    #[derive(Clone)]
    struct Case {
        ins: Instruction,
        input: State,
    }

    impl fmt::Debug for Case {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "`{}` with", oracle::nasm(&self.ins))?;
            for (i, r) in self.input.regs.iter().enumerate() {
                write!(f, " {}={r:08X}", REG_NAMES[i])?;
            }
            write!(f, " eflags={:08X}", self.input.eflags)
        }
    }

    thread_local! {
        static HOST: RefCell<HostCpu> = RefCell::new(HostCpu::new().expect("map the host oracle page"));
    }

    /// Run the case on both sides and compare.
    fn check(case: &Case) -> Result<(), TestCaseError> {
        let host = HOST
            .with(|h| h.borrow_mut().run(&case.ins, &case.input))
            .map_err(TestCaseError::fail)?;
        let ours = oracle::run_ringside(&case.ins, &case.input).map_err(TestCaseError::fail)?;
        oracle::compare(&case.ins, &case.input, &ours, &host).map_err(TestCaseError::fail)
    }

    fn config() -> ProptestConfig {
        // ProptestConfig::default() reads PROPTEST_CASES (256 when unset).
        ProptestConfig {
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// A register value, biased toward edge cases.
    fn reg_value() -> impl Strategy<Value = u32> {
        prop_oneof![
            6 => any::<u32>(),
            1 => Just(0u32),
            1 => 0u32..0x100,
            1 => prop::sample::select(vec![0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 1]),
            1 => (0u32..32).prop_map(|b| 1 << b),
        ]
    }

    fn regs() -> impl Strategy<Value = [u32; 8]> {
        prop::array::uniform8(reg_value())
    }

    /// Status flags only (plus reserved bit 1): never TF, IF, DF.
    fn status_flags() -> impl Strategy<Value = u32> {
        (0u32..64).prop_map(|bits| {
            let all = [
                flags::CF,
                flags::PF,
                flags::AF,
                flags::ZF,
                flags::SF,
                flags::OF,
            ];
            all.iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(flags::RESERVED1, |a, (_, f)| a | f)
        })
    }

    /// Operand size index: 0 = 8-bit, 1 = 16-bit, 2 = 32-bit.
    fn gpr(size: usize, n: u8) -> Register {
        match size {
            // AL CL DL BL AH CH DH BH: all eight are usable.
            0 => [
                Register::AL,
                Register::CL,
                Register::DL,
                Register::BL,
                Register::AH,
                Register::CH,
                Register::DH,
                Register::BH,
            ][n as usize % 8],
            // Seven registers: never (E)SP.
            1 => [
                Register::AX,
                Register::CX,
                Register::DX,
                Register::BX,
                Register::BP,
                Register::SI,
                Register::DI,
            ][n as usize % 7],
            _ => [
                Register::EAX,
                Register::ECX,
                Register::EDX,
                Register::EBX,
                Register::EBP,
                Register::ESI,
                Register::EDI,
            ][n as usize % 7],
        }
    }

    fn case_strategy<F>(build: F) -> impl Strategy<Value = Case>
    where
        F: Fn(usize, usize, usize, u8, u8, u32, &mut [u32; 8]) -> Instruction + Clone + 'static,
    {
        // (op, size, form, r0, r1, imm, regs, flags)
        (
            0usize..64,
            0usize..3,
            0usize..8,
            0u8..8,
            0u8..8,
            any::<u32>(),
            regs(),
            status_flags(),
        )
            .prop_map(move |(op, size, form, r0, r1, imm, mut regs, eflags)| {
                let ins = build(op, size, form, r0, r1, imm, &mut regs);
                Case {
                    ins,
                    input: State { regs, eflags },
                }
            })
    }

    fn ins2(code: Code, a: Register, b: Register) -> Instruction {
        Instruction::with2(code, a, b).unwrap_or_else(|e| panic!("{code:?} {a:?} {b:?}: {e}"))
    }

    fn ins_imm(code: Code, a: Register, imm: u32) -> Instruction {
        Instruction::with2(code, a, imm).unwrap_or_else(|e| panic!("{code:?} {a:?} {imm:#X}: {e}"))
    }

    fn ins_imm_signed(code: Code, a: Register, imm: i32) -> Instruction {
        Instruction::with2(code, a, imm).unwrap_or_else(|e| panic!("{code:?} {a:?} {imm:#X}: {e}"))
    }

    fn ins1(code: Code, a: Register) -> Instruction {
        Instruction::with1(code, a).unwrap_or_else(|e| panic!("{code:?} {a:?}: {e}"))
    }

    // ---------------------------------------------------------------- ALU

    /// Per binary ALU op: [rm,r ×3], [r,rm ×3], [acc,imm ×3], [rm,imm ×3], [rm16,imm8, rm32,imm8].
    type AluCodes = ([Code; 3], [Code; 3], [Code; 3], [Code; 3], [Code; 2]);

    const ALU: [AluCodes; 8] = [
        (
            [Code::Add_rm8_r8, Code::Add_rm16_r16, Code::Add_rm32_r32],
            [Code::Add_r8_rm8, Code::Add_r16_rm16, Code::Add_r32_rm32],
            [Code::Add_AL_imm8, Code::Add_AX_imm16, Code::Add_EAX_imm32],
            [
                Code::Add_rm8_imm8,
                Code::Add_rm16_imm16,
                Code::Add_rm32_imm32,
            ],
            [Code::Add_rm16_imm8, Code::Add_rm32_imm8],
        ),
        (
            [Code::Or_rm8_r8, Code::Or_rm16_r16, Code::Or_rm32_r32],
            [Code::Or_r8_rm8, Code::Or_r16_rm16, Code::Or_r32_rm32],
            [Code::Or_AL_imm8, Code::Or_AX_imm16, Code::Or_EAX_imm32],
            [Code::Or_rm8_imm8, Code::Or_rm16_imm16, Code::Or_rm32_imm32],
            [Code::Or_rm16_imm8, Code::Or_rm32_imm8],
        ),
        (
            [Code::Adc_rm8_r8, Code::Adc_rm16_r16, Code::Adc_rm32_r32],
            [Code::Adc_r8_rm8, Code::Adc_r16_rm16, Code::Adc_r32_rm32],
            [Code::Adc_AL_imm8, Code::Adc_AX_imm16, Code::Adc_EAX_imm32],
            [
                Code::Adc_rm8_imm8,
                Code::Adc_rm16_imm16,
                Code::Adc_rm32_imm32,
            ],
            [Code::Adc_rm16_imm8, Code::Adc_rm32_imm8],
        ),
        (
            [Code::Sbb_rm8_r8, Code::Sbb_rm16_r16, Code::Sbb_rm32_r32],
            [Code::Sbb_r8_rm8, Code::Sbb_r16_rm16, Code::Sbb_r32_rm32],
            [Code::Sbb_AL_imm8, Code::Sbb_AX_imm16, Code::Sbb_EAX_imm32],
            [
                Code::Sbb_rm8_imm8,
                Code::Sbb_rm16_imm16,
                Code::Sbb_rm32_imm32,
            ],
            [Code::Sbb_rm16_imm8, Code::Sbb_rm32_imm8],
        ),
        (
            [Code::And_rm8_r8, Code::And_rm16_r16, Code::And_rm32_r32],
            [Code::And_r8_rm8, Code::And_r16_rm16, Code::And_r32_rm32],
            [Code::And_AL_imm8, Code::And_AX_imm16, Code::And_EAX_imm32],
            [
                Code::And_rm8_imm8,
                Code::And_rm16_imm16,
                Code::And_rm32_imm32,
            ],
            [Code::And_rm16_imm8, Code::And_rm32_imm8],
        ),
        (
            [Code::Sub_rm8_r8, Code::Sub_rm16_r16, Code::Sub_rm32_r32],
            [Code::Sub_r8_rm8, Code::Sub_r16_rm16, Code::Sub_r32_rm32],
            [Code::Sub_AL_imm8, Code::Sub_AX_imm16, Code::Sub_EAX_imm32],
            [
                Code::Sub_rm8_imm8,
                Code::Sub_rm16_imm16,
                Code::Sub_rm32_imm32,
            ],
            [Code::Sub_rm16_imm8, Code::Sub_rm32_imm8],
        ),
        (
            [Code::Xor_rm8_r8, Code::Xor_rm16_r16, Code::Xor_rm32_r32],
            [Code::Xor_r8_rm8, Code::Xor_r16_rm16, Code::Xor_r32_rm32],
            [Code::Xor_AL_imm8, Code::Xor_AX_imm16, Code::Xor_EAX_imm32],
            [
                Code::Xor_rm8_imm8,
                Code::Xor_rm16_imm16,
                Code::Xor_rm32_imm32,
            ],
            [Code::Xor_rm16_imm8, Code::Xor_rm32_imm8],
        ),
        (
            [Code::Cmp_rm8_r8, Code::Cmp_rm16_r16, Code::Cmp_rm32_r32],
            [Code::Cmp_r8_rm8, Code::Cmp_r16_rm16, Code::Cmp_r32_rm32],
            [Code::Cmp_AL_imm8, Code::Cmp_AX_imm16, Code::Cmp_EAX_imm32],
            [
                Code::Cmp_rm8_imm8,
                Code::Cmp_rm16_imm16,
                Code::Cmp_rm32_imm32,
            ],
            [Code::Cmp_rm16_imm8, Code::Cmp_rm32_imm8],
        ),
    ];

    const TEST: ([Code; 3], [Code; 3], [Code; 3]) = (
        [Code::Test_rm8_r8, Code::Test_rm16_r16, Code::Test_rm32_r32],
        [
            Code::Test_AL_imm8,
            Code::Test_AX_imm16,
            Code::Test_EAX_imm32,
        ],
        [
            Code::Test_rm8_imm8,
            Code::Test_rm16_imm16,
            Code::Test_rm32_imm32,
        ],
    );

    /// INC, DEC, NEG, NOT.
    const UNARY: [[Code; 3]; 4] = [
        [Code::Inc_rm8, Code::Inc_rm16, Code::Inc_rm32],
        [Code::Dec_rm8, Code::Dec_rm16, Code::Dec_rm32],
        [Code::Neg_rm8, Code::Neg_rm16, Code::Neg_rm32],
        [Code::Not_rm8, Code::Not_rm16, Code::Not_rm32],
    ];

    fn size_imm(size: usize, imm: u32) -> u32 {
        match size {
            0 => imm & 0xFF,
            1 => imm & 0xFFFF,
            _ => imm,
        }
    }

    fn build_alu(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
        _: &mut [u32; 8],
    ) -> Instruction {
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        match op % 13 {
            n @ 0..=7 => {
                let (rm_r, r_rm, acc, rm_imm, rm_imm8) = ALU[n];
                match form % 5 {
                    0 => ins2(rm_r[size], a, b),
                    1 => ins2(r_rm[size], a, b),
                    2 => ins_imm(acc[size], gpr(size, 0), size_imm(size, imm)),
                    3 => ins_imm(rm_imm[size], a, size_imm(size, imm)),
                    _ if size == 0 => ins_imm(rm_imm[0], a, imm & 0xFF),
                    _ => ins_imm_signed(rm_imm8[size - 1], a, imm as i8 as i32),
                }
            }
            8 => match form % 3 {
                0 => ins2(TEST.0[size], a, b),
                1 => ins_imm(TEST.1[size], gpr(size, 0), size_imm(size, imm)),
                _ => ins_imm(TEST.2[size], a, size_imm(size, imm)),
            },
            n => ins1(UNARY[n - 9][size], a),
        }
    }

    // ---------------------------------------------------- shifts / rotates

    /// ROL ROR RCL RCR SHL SHR SAR; per op [by 1 ×3], [by CL ×3], [by imm8 ×3].
    const SHIFTS: [[[Code; 3]; 3]; 7] = [
        [
            [Code::Rol_rm8_1, Code::Rol_rm16_1, Code::Rol_rm32_1],
            [Code::Rol_rm8_CL, Code::Rol_rm16_CL, Code::Rol_rm32_CL],
            [Code::Rol_rm8_imm8, Code::Rol_rm16_imm8, Code::Rol_rm32_imm8],
        ],
        [
            [Code::Ror_rm8_1, Code::Ror_rm16_1, Code::Ror_rm32_1],
            [Code::Ror_rm8_CL, Code::Ror_rm16_CL, Code::Ror_rm32_CL],
            [Code::Ror_rm8_imm8, Code::Ror_rm16_imm8, Code::Ror_rm32_imm8],
        ],
        [
            [Code::Rcl_rm8_1, Code::Rcl_rm16_1, Code::Rcl_rm32_1],
            [Code::Rcl_rm8_CL, Code::Rcl_rm16_CL, Code::Rcl_rm32_CL],
            [Code::Rcl_rm8_imm8, Code::Rcl_rm16_imm8, Code::Rcl_rm32_imm8],
        ],
        [
            [Code::Rcr_rm8_1, Code::Rcr_rm16_1, Code::Rcr_rm32_1],
            [Code::Rcr_rm8_CL, Code::Rcr_rm16_CL, Code::Rcr_rm32_CL],
            [Code::Rcr_rm8_imm8, Code::Rcr_rm16_imm8, Code::Rcr_rm32_imm8],
        ],
        [
            [Code::Shl_rm8_1, Code::Shl_rm16_1, Code::Shl_rm32_1],
            [Code::Shl_rm8_CL, Code::Shl_rm16_CL, Code::Shl_rm32_CL],
            [Code::Shl_rm8_imm8, Code::Shl_rm16_imm8, Code::Shl_rm32_imm8],
        ],
        [
            [Code::Shr_rm8_1, Code::Shr_rm16_1, Code::Shr_rm32_1],
            [Code::Shr_rm8_CL, Code::Shr_rm16_CL, Code::Shr_rm32_CL],
            [Code::Shr_rm8_imm8, Code::Shr_rm16_imm8, Code::Shr_rm32_imm8],
        ],
        [
            [Code::Sar_rm8_1, Code::Sar_rm16_1, Code::Sar_rm32_1],
            [Code::Sar_rm8_CL, Code::Sar_rm16_CL, Code::Sar_rm32_CL],
            [Code::Sar_rm8_imm8, Code::Sar_rm16_imm8, Code::Sar_rm32_imm8],
        ],
    ];

    /// Counts 0..63, with now and then a full byte (bits 5-7 must be masked off).
    fn count_of(imm: u32) -> u32 {
        if imm & 0x700 == 0 {
            imm & 0xFF
        } else {
            imm & 0x3F
        }
    }

    fn build_shift(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        _: u8,
        imm: u32,
        regs: &mut [u32; 8],
    ) -> Instruction {
        let a = gpr(size, r0);
        let codes = SHIFTS[op % 7];
        let count = count_of(imm);
        match form % 3 {
            0 => ins_imm(codes[0][size], a, 1),
            1 => {
                // Usually CL holds the count; the destination may be CL itself.
                regs[1] = (regs[1] & !0xFF) | count;
                Instruction::with2(codes[1][size], a, Register::CL).unwrap()
            }
            _ => ins_imm(codes[2][size], a, count),
        }
    }

    // ----------------------------------------------------- multiply / divide

    fn build_muldiv(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
        regs: &mut [u32; 8],
    ) -> Instruction {
        let a = gpr(size, r0);
        match op % 5 {
            0 => ins1([Code::Mul_rm8, Code::Mul_rm16, Code::Mul_rm32][size], a),
            1 => ins1([Code::Imul_rm8, Code::Imul_rm16, Code::Imul_rm32][size], a),
            // IMUL r, r/m and IMUL r, r/m, imm exist for 16/32 bits only.
            2 if size > 0 => {
                let (d, s) = (gpr(size, r0), gpr(size, r1));
                let w = size == 1;
                match form % 3 {
                    0 => ins2(
                        if w {
                            Code::Imul_r16_rm16
                        } else {
                            Code::Imul_r32_rm32
                        },
                        d,
                        s,
                    ),
                    1 => Instruction::with3(
                        if w {
                            Code::Imul_r16_rm16_imm8
                        } else {
                            Code::Imul_r32_rm32_imm8
                        },
                        d,
                        s,
                        imm as i8 as i32,
                    )
                    .unwrap(),
                    _ if w => {
                        Instruction::with3(Code::Imul_r16_rm16_imm16, d, s, imm & 0xFFFF).unwrap()
                    }
                    _ => Instruction::with3(Code::Imul_r32_rm32_imm32, d, s, imm as i32).unwrap(),
                }
            }
            2 => ins1(Code::Imul_rm8, a),
            n => {
                let signed = n == 4;
                let code = match (signed, size) {
                    (false, 0) => Code::Div_rm8,
                    (false, 1) => Code::Div_rm16,
                    (false, _) => Code::Div_rm32,
                    (true, 0) => Code::Idiv_rm8,
                    (true, 1) => Code::Idiv_rm16,
                    (true, _) => Code::Idiv_rm32,
                };
                // The divisor is never the high half of the dividend (AH, DX,
                // EDX): such a divide almost always raises #DE.
                let mut src = a;
                if matches!(src, Register::AH | Register::DX | Register::EDX) {
                    src = gpr(size, 1);
                }
                let ins = ins1(code, src);
                make_divide_valid(&ins, size, signed, imm, regs);
                ins
            }
        }
    }

    /// Rewrite the dividend so that the divide cannot fault: pick a quotient
    /// in range (from `seed`), a remainder smaller than the divisor, and set
    /// dividend = quotient × divisor + remainder.
    fn make_divide_valid(
        ins: &Instruction,
        size: usize,
        signed: bool,
        seed: u32,
        regs: &mut [u32; 8],
    ) {
        let src = ins.op0_register();
        let bits = 8u32 << size;
        let mask = (1u64 << bits) - 1;
        let (si, sm) = oracle::reg_slot(src).unwrap();
        if (regs[si] & sm) == 0 {
            regs[si] |= 1 << sm.trailing_zeros();
        }
        let write_dividend = |regs: &mut [u32; 8], n: u64| match size {
            0 => regs[0] = (regs[0] & !0xFFFF) | (n as u32 & 0xFFFF),
            1 => {
                regs[0] = (regs[0] & !0xFFFF) | (n as u32 & 0xFFFF);
                regs[2] = (regs[2] & !0xFFFF) | ((n >> 16) as u32 & 0xFFFF);
            }
            _ => {
                regs[0] = n as u32;
                regs[2] = (n >> 32) as u32;
            }
        };
        let d = oracle::read_reg(regs, src) as u64;
        let low_is_divisor = matches!(src, Register::AL | Register::AX | Register::EAX);
        if low_is_divisor {
            // Only the high half is free: unsigned needs high < divisor;
            // signed uses the divisor sign-extended (quotient 1) unless the
            // random high half already works.
            if signed {
                if oracle::divide_faults(ins, regs) {
                    let ext = if d & (1 << (bits - 1)) != 0 {
                        (mask << bits) | d
                    } else {
                        d
                    };
                    write_dividend(regs, ext);
                }
            } else {
                let high = (seed as u64 & mask) % d;
                write_dividend(regs, (high << bits) | d);
            }
            return;
        }
        let q_raw = seed as u64 & mask;
        let r_raw = (seed as u64).rotate_left(13) & mask;
        let n = if signed {
            let sx = |v: u64| ((v << (64 - bits)) as i64) >> (64 - bits);
            let (q, d) = (sx(q_raw) as i128, sx(d) as i128);
            let mut r = sx(r_raw) as i128 % d;
            // The remainder takes the dividend's sign: keep it only if that holds.
            let n = q * d + r;
            if r != 0 && (n < 0) != (r < 0) {
                r = 0;
            }
            (q * d + r) as u64 & ((mask << bits) | mask)
        } else {
            q_raw * d + r_raw % d
        };
        write_dividend(regs, n);
    }

    // --------------------------------------------------- bit test / scan

    fn build_bit(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
        _: &mut [u32; 8],
    ) -> Instruction {
        let size = 1 + size % 2; // 16 or 32 bits only
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        let w = size == 1;
        let pick = |c16: Code, c32: Code| if w { c16 } else { c32 };
        let (rr, ri) = match op % 6 {
            0 => (
                pick(Code::Bt_rm16_r16, Code::Bt_rm32_r32),
                pick(Code::Bt_rm16_imm8, Code::Bt_rm32_imm8),
            ),
            1 => (
                pick(Code::Bts_rm16_r16, Code::Bts_rm32_r32),
                pick(Code::Bts_rm16_imm8, Code::Bts_rm32_imm8),
            ),
            2 => (
                pick(Code::Btr_rm16_r16, Code::Btr_rm32_r32),
                pick(Code::Btr_rm16_imm8, Code::Btr_rm32_imm8),
            ),
            3 => (
                pick(Code::Btc_rm16_r16, Code::Btc_rm32_r32),
                pick(Code::Btc_rm16_imm8, Code::Btc_rm32_imm8),
            ),
            4 => return ins2(pick(Code::Bsf_r16_rm16, Code::Bsf_r32_rm32), a, b),
            _ => return ins2(pick(Code::Bsr_r16_rm16, Code::Bsr_r32_rm32), a, b),
        };
        if form & 1 == 0 {
            ins2(rr, a, b)
        } else {
            ins_imm(ri, a, imm & 0xFF)
        }
    }

    // ---------------------------------------------------------- SHLD / SHRD

    fn build_dshift(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
        regs: &mut [u32; 8],
    ) -> Instruction {
        let size = 1 + size % 2;
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        let w = size == 1;
        let count = count_of(imm);
        let (ci, cc) = match (op % 2, w) {
            (0, true) => (Code::Shld_rm16_r16_imm8, Code::Shld_rm16_r16_CL),
            (0, false) => (Code::Shld_rm32_r32_imm8, Code::Shld_rm32_r32_CL),
            (_, true) => (Code::Shrd_rm16_r16_imm8, Code::Shrd_rm16_r16_CL),
            (_, false) => (Code::Shrd_rm32_r32_imm8, Code::Shrd_rm32_r32_CL),
        };
        if form & 1 == 0 {
            Instruction::with3(ci, a, b, count).unwrap()
        } else {
            regs[1] = (regs[1] & !0xFF) | count;
            Instruction::with3(cc, a, b, Register::CL).unwrap()
        }
    }

    // ------------------------------------------------ XADD / CMPXCHG / BSWAP

    fn build_xchg(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        _: u32,
        regs: &mut [u32; 8],
    ) -> Instruction {
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        match op % 3 {
            0 => ins2(
                [Code::Xadd_rm8_r8, Code::Xadd_rm16_r16, Code::Xadd_rm32_r32][size],
                a,
                b,
            ),
            1 => {
                // Half the time make the comparison succeed.
                if form & 1 == 0 {
                    let (i, m) = oracle::reg_slot(a).unwrap();
                    let v = (regs[i] & m) >> m.trailing_zeros();
                    let (ai, am) = oracle::reg_slot(gpr(size, 0)).unwrap();
                    regs[ai] = (regs[ai] & !am) | (v << am.trailing_zeros());
                }
                ins2(
                    [
                        Code::Cmpxchg_rm8_r8,
                        Code::Cmpxchg_rm16_r16,
                        Code::Cmpxchg_rm32_r32,
                    ][size],
                    a,
                    b,
                )
            }
            _ => ins1(Code::Bswap_r32, gpr(2, r0)),
        }
    }

    // ------------------------------------------------------ SETcc / CMOVcc

    const SETCC: [Code; 16] = [
        Code::Seto_rm8,
        Code::Setno_rm8,
        Code::Setb_rm8,
        Code::Setae_rm8,
        Code::Sete_rm8,
        Code::Setne_rm8,
        Code::Setbe_rm8,
        Code::Seta_rm8,
        Code::Sets_rm8,
        Code::Setns_rm8,
        Code::Setp_rm8,
        Code::Setnp_rm8,
        Code::Setl_rm8,
        Code::Setge_rm8,
        Code::Setle_rm8,
        Code::Setg_rm8,
    ];

    const CMOV16: [Code; 16] = [
        Code::Cmovo_r16_rm16,
        Code::Cmovno_r16_rm16,
        Code::Cmovb_r16_rm16,
        Code::Cmovae_r16_rm16,
        Code::Cmove_r16_rm16,
        Code::Cmovne_r16_rm16,
        Code::Cmovbe_r16_rm16,
        Code::Cmova_r16_rm16,
        Code::Cmovs_r16_rm16,
        Code::Cmovns_r16_rm16,
        Code::Cmovp_r16_rm16,
        Code::Cmovnp_r16_rm16,
        Code::Cmovl_r16_rm16,
        Code::Cmovge_r16_rm16,
        Code::Cmovle_r16_rm16,
        Code::Cmovg_r16_rm16,
    ];

    const CMOV32: [Code; 16] = [
        Code::Cmovo_r32_rm32,
        Code::Cmovno_r32_rm32,
        Code::Cmovb_r32_rm32,
        Code::Cmovae_r32_rm32,
        Code::Cmove_r32_rm32,
        Code::Cmovne_r32_rm32,
        Code::Cmovbe_r32_rm32,
        Code::Cmova_r32_rm32,
        Code::Cmovs_r32_rm32,
        Code::Cmovns_r32_rm32,
        Code::Cmovp_r32_rm32,
        Code::Cmovnp_r32_rm32,
        Code::Cmovl_r32_rm32,
        Code::Cmovge_r32_rm32,
        Code::Cmovle_r32_rm32,
        Code::Cmovg_r32_rm32,
    ];

    fn build_cc(
        op: usize,
        size: usize,
        _: usize,
        r0: u8,
        r1: u8,
        _: u32,
        _: &mut [u32; 8],
    ) -> Instruction {
        let cc = op % 16;
        match size {
            0 => ins1(SETCC[cc], gpr(0, r0)),
            1 => ins2(CMOV16[cc], gpr(1, r0), gpr(1, r1)),
            _ => ins2(CMOV32[cc], gpr(2, r0), gpr(2, r1)),
        }
    }

    // ------------------------------------------------------- flag chains

    /// A straight-line sequence and the state it starts from.
    #[derive(Clone)]
    struct Chain {
        seq: Vec<Instruction>,
        input: State,
    }

    impl fmt::Debug for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "`{}` with", oracle::describe(&self.seq))?;
            for (i, r) in self.input.regs.iter().enumerate() {
                write!(f, " {}={r:08X}", REG_NAMES[i])?;
            }
            write!(f, " eflags={:08X}", self.input.eflags)
        }
    }

    /// First link: an instruction that defines CF, OF, SF, ZF and PF (AF may
    /// be undefined: no later link reads it except a final LAHF, whose AH bit
    /// the sequence expectation masks).
    fn build_producer(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
    ) -> Instruction {
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        match op % 6 {
            0..=2 => build_alu(op / 6, size, form, r0, r1, imm, &mut [0; 8]),
            3 => ins2(
                [Code::Xadd_rm8_r8, Code::Xadd_rm16_r16, Code::Xadd_rm32_r32][size],
                a,
                b,
            ),
            4 => ins2(
                [
                    Code::Cmpxchg_rm8_r8,
                    Code::Cmpxchg_rm16_r16,
                    Code::Cmpxchg_rm32_r32,
                ][size],
                a,
                b,
            ),
            // Shifts by 1 define every flag but AF; by 0 they leave all alone.
            _ => ins_imm(SHIFTS[(op / 6) % 7][2][size], a, imm & 1),
        }
    }

    /// Later links: instructions that read the flags or update only some of
    /// them, so the lazily evaluated state of the link before must be right.
    /// Rotates by more than one (OF undefined) only come last.
    fn build_consumer(
        op: usize,
        size: usize,
        form: usize,
        r0: u8,
        r1: u8,
        imm: u32,
        last: bool,
    ) -> Instruction {
        let (a, b) = (gpr(size, r0), gpr(size, r1));
        let lahf = oracle::host_has_lahf_sahf();
        match op % 12 {
            0 => build_cc(op / 12, 0, form, r0, r1, imm, &mut [0; 8]),
            1 => build_cc(op / 12, 1 + size % 2, form, r0, r1, imm, &mut [0; 8]),
            2 => ins2(
                [Code::Adc_rm8_r8, Code::Adc_rm16_r16, Code::Adc_rm32_r32][size],
                a,
                b,
            ),
            3 => ins2(
                [Code::Sbb_rm8_r8, Code::Sbb_rm16_r16, Code::Sbb_rm32_r32][size],
                a,
                b,
            ),
            4 => ins1([Code::Inc_rm8, Code::Inc_rm16, Code::Inc_rm32][size], a),
            5 => ins1([Code::Dec_rm8, Code::Dec_rm16, Code::Dec_rm32][size], a),
            // RCL, RCR, ROL, ROR, SHL, SHR, SAR by an immediate.
            6 => {
                let count = if last { count_of(imm) } else { imm & 1 };
                ins_imm(SHIFTS[(op / 12) % 7][2][size], a, count)
            }
            7 => Instruction::with([Code::Cmc, Code::Clc, Code::Stc][(op / 12) % 3]),
            // LAHF copies AF, which may be undefined, into AH: only as the
            // last link, so no later instruction computes with that bit.
            8 if lahf && last => Instruction::with(Code::Lahf),
            9 if lahf => Instruction::with(Code::Sahf),
            10 => {
                let (rr, ri) = [
                    (Code::Bt_rm16_r16, Code::Bt_rm16_imm8),
                    (Code::Bt_rm32_r32, Code::Bt_rm32_imm8),
                ][size % 2];
                let (w0, w1) = (gpr(1 + size % 2, r0), gpr(1 + size % 2, r1));
                // BT leaves OF/SF/AF/PF undefined: only as the last link.
                if !last {
                    ins1([Code::Not_rm8, Code::Not_rm16, Code::Not_rm32][size], a)
                } else if form & 1 == 0 {
                    ins2(rr, w0, w1)
                } else {
                    ins_imm(ri, w0, imm & 0xFF)
                }
            }
            _ => build_alu(op / 12, size, form, r0, r1, imm, &mut [0; 8]),
        }
    }

    type Link = (usize, usize, usize, u8, u8, u32);

    fn link() -> impl Strategy<Value = Link> {
        (
            0usize..256,
            0usize..3,
            0usize..8,
            0u8..8,
            0u8..8,
            any::<u32>(),
        )
    }

    fn chain_strategy() -> impl Strategy<Value = Chain> {
        (
            link(),
            prop::collection::vec(link(), 1..=2),
            regs(),
            status_flags(),
        )
            .prop_map(|(first, rest, regs, eflags)| {
                let mut seq = vec![build_producer(
                    first.0, first.1, first.2, first.3, first.4, first.5,
                )];
                let n = rest.len();
                for (i, l) in rest.into_iter().enumerate() {
                    seq.push(build_consumer(l.0, l.1, l.2, l.3, l.4, l.5, i + 1 == n));
                }
                Chain {
                    seq,
                    input: State { regs, eflags },
                }
            })
    }

    /// Run a chain: natively one instruction at a time (the host's flags are
    /// architectural state, and that yields every intermediate state), in
    /// Ringside as consecutive steps over contiguous code.
    fn check_chain(chain: &Chain) -> Result<(), TestCaseError> {
        let mut states = vec![chain.input];
        for ins in &chain.seq {
            let before = *states.last().unwrap();
            let after = HOST
                .with(|h| h.borrow_mut().run(ins, &before))
                .map_err(TestCaseError::fail)?;
            states.push(after);
        }
        let host = states.pop().unwrap();
        let ours =
            oracle::run_ringside_sequence(&chain.seq, &chain.input).map_err(TestCaseError::fail)?;
        let e = oracle::sequence_expectation(&chain.seq, &states);
        oracle::compare_expect(&chain.seq, &chain.input, &ours, &host, &e)
            .map_err(TestCaseError::fail)
    }

    proptest! {
        #![proptest_config(config())]

        /// ADD OR ADC SBB AND SUB XOR CMP TEST INC DEC NEG NOT, all forms with register operands.
        #[test]
        fn alu(case in case_strategy(build_alu)) {
            check(&case)?;
        }

        /// ROL ROR RCL RCR SHL SHR SAR by 1, CL and imm8 (counts 0..63 and whole bytes).
        #[test]
        fn shift_rotate(case in case_strategy(build_shift)) {
            check(&case)?;
        }

        /// MUL, IMUL (1/2/3 operands), DIV, IDIV with non-faulting operands.
        #[test]
        fn multiply_divide(case in case_strategy(build_muldiv)) {
            check(&case)?;
        }

        /// BT BTS BTR BTC (register and imm8 offsets), BSF, BSR.
        #[test]
        fn bit_test_scan(case in case_strategy(build_bit)) {
            check(&case)?;
        }

        /// SHLD, SHRD by imm8 and CL.
        #[test]
        fn double_shift(case in case_strategy(build_dshift)) {
            check(&case)?;
        }

        /// XADD, CMPXCHG, BSWAP.
        #[test]
        fn exchange_bswap(case in case_strategy(build_xchg)) {
            check(&case)?;
        }

        /// SETcc and CMOVcc for all sixteen conditions.
        #[test]
        fn setcc_cmovcc(case in case_strategy(build_cc)) {
            check(&case)?;
        }

        /// Two or three instructions in a row: a flag producer, then flag
        /// readers and partial flag writers (SETcc, CMOVcc, ADC, SBB, INC,
        /// DEC, shifts/rotates by 0/1/n, CMC/CLC/STC, LAHF/SAHF, BT, ALU).
        /// Exercises Ringside's lazy flag evaluation across instructions.
        #[test]
        fn flag_chains(chain in chain_strategy()) {
            check_chain(&chain)?;
        }
    }

    /// The inputs of one CMPXCHG8B case: EDX:EAX, ECX:EBX, the quadword in
    /// memory, the status flags, and whether the LOCK prefix is used.
    #[derive(Clone, Copy, Debug)]
    struct Cx8Case {
        edx_eax: u64,
        ecx_ebx: u64,
        mem: u64,
        eflags: u32,
        lock: bool,
    }

    /// What CMPXCHG8B leaves: EDX:EAX, the quadword in memory, the status
    /// flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Cx8Out {
        edx_eax: u64,
        mem: u64,
        status: u32,
    }

    const STATUS: u32 = flags::CF | flags::PF | flags::AF | flags::ZF | flags::SF | flags::OF;

    fn cx8_case() -> impl Strategy<Value = Cx8Case> {
        let quad = || (reg_value(), reg_value()).prop_map(|(lo, hi)| (hi as u64) << 32 | lo as u64);
        (
            quad(),
            quad(),
            quad(),
            0u8..4,
            status_flags(),
            any::<bool>(),
        )
            .prop_map(|(edx_eax, ecx_ebx, mem, how, eflags, lock)| {
                // Half the cases compare equal; some differ in one half only.
                let mem = match how {
                    0 | 1 => edx_eax,
                    2 => (mem & 0xFFFF_FFFF) | (edx_eax & !0xFFFF_FFFF),
                    _ => mem,
                };
                Cx8Case {
                    edx_eax,
                    ecx_ebx,
                    mem,
                    eflags,
                    lock,
                }
            })
    }

    /// CMPXCHG8B on the host (the same instruction in 64-bit mode: no REX.W,
    /// so it compares EDX:EAX and stores ECX:EBX).
    fn host_cmpxchg8b(c: &Cx8Case) -> Cx8Out {
        let mut mem = c.mem;
        let mut eax = c.edx_eax & 0xFFFF_FFFF;
        let mut edx = c.edx_eax >> 32;
        let host_flags: u64;
        // SAFETY: reads the host's RFLAGS; touches no memory but the stack.
        unsafe { std::arch::asm!("pushfq", "pop {}", out(reg) host_flags) };
        // Keep the host's control flags (TF, IF, DF, ...): only the status
        // flags come from the case.
        let mut fl = (host_flags & !(STATUS as u64)) | (c.eflags & STATUS) as u64;
        let ptr: *mut u64 = &mut mem;
        // RBX is reserved by the compiler: swap the case's EBX in and out
        // around the instruction.
        macro_rules! run {
            ($ins:literal) => {
                // SAFETY: `ptr` points at `mem`, a live u64 on this stack;
                // RBX and RFLAGS are restored before the block ends (the
                // flags only in their status bits, which are outputs).
                unsafe {
                    std::arch::asm!(
                        "xchg {b}, rbx",
                        "push {fl}",
                        "popfq",
                        $ins,
                        "pushfq",
                        "pop {fl}",
                        "xchg {b}, rbx",
                        b = inout(reg) c.ecx_ebx & 0xFFFF_FFFF => _,
                        fl = inout(reg) fl,
                        p = in(reg) ptr,
                        inout("rax") eax,
                        inout("rdx") edx,
                        in("rcx") c.ecx_ebx >> 32,
                    )
                }
            };
        }
        if c.lock {
            run!("lock cmpxchg8b qword ptr [{p}]");
        } else {
            run!("cmpxchg8b qword ptr [{p}]");
        }
        Cx8Out {
            edx_eax: (edx & 0xFFFF_FFFF) << 32 | (eax & 0xFFFF_FFFF),
            mem,
            status: fl as u32 & STATUS,
        }
    }

    /// CMPXCHG8B in Ringside: real mode, `cmpxchg8b [0200h]` at 1000:0100
    /// with DS = 2000.
    fn ringside_cmpxchg8b(c: &Cx8Case) -> Result<Cx8Out, String> {
        use ringside_cpu::{gpr, Cpu, NullBus, PhysMem, SegReg};
        let mut cpu = Cpu::new(PhysMem::new(1 << 20));
        cpu.load_seg_real(SegReg::Cs, 0x1000);
        for s in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs] {
            cpu.load_seg_real(s, 0x2000);
        }
        cpu.eip = 0x100;
        let mut code = vec![0x0F, 0xC7, 0x0E, 0x00, 0x02]; // cmpxchg8b [0200h]
        if c.lock {
            code.insert(0, 0xF0);
        }
        cpu.mem.poke(0x10100, &code);
        cpu.mem.poke(0x20200, &c.mem.to_le_bytes());
        cpu.regs[gpr::EAX] = c.edx_eax as u32;
        cpu.regs[gpr::EDX] = (c.edx_eax >> 32) as u32;
        cpu.regs[gpr::EBX] = c.ecx_ebx as u32;
        cpu.regs[gpr::ECX] = (c.ecx_ebx >> 32) as u32;
        cpu.set_eflags(c.eflags);
        cpu.step(&mut NullBus);
        if let Some(f) = cpu.last_exception {
            return Err(format!("Ringside raised {f}"));
        }
        if cpu.eip != 0x100 + code.len() as u32 {
            return Err(format!("Ringside ended at IP {:04X}", cpu.eip));
        }
        let mem = u64::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(0x20200 + i as u32)));
        Ok(Cx8Out {
            edx_eax: (cpu.regs[gpr::EDX] as u64) << 32 | cpu.regs[gpr::EAX] as u64,
            mem,
            status: cpu.eflags() & STATUS,
        })
    }

    proptest! {
        #![proptest_config(config())]

        /// CMPXCHG8B (with and without LOCK): equal → ZF=1 and ECX:EBX
        /// stored; different → ZF=0 and the quadword loaded into EDX:EAX
        /// (SDM Vol. 2A CMPXCHG8B); every other status flag unchanged.
        #[test]
        fn cmpxchg8b(c in cx8_case()) {
            let host = host_cmpxchg8b(&c);
            let ours = ringside_cmpxchg8b(&c).map_err(TestCaseError::fail)?;
            prop_assert_eq!(ours, host, "{:x?}", c);
        }
    }

    /// Both CMPXCHG8B runners on two hand-worked cases, so the property
    /// above compares two working sides.
    #[test]
    fn cmpxchg8b_runners_by_hand() {
        let equal = Cx8Case {
            edx_eax: 0x1111_2222_3333_4444,
            ecx_ebx: 0x5555_6666_7777_8888,
            mem: 0x1111_2222_3333_4444,
            eflags: flags::RESERVED1 | flags::CF,
            lock: false,
        };
        let want = Cx8Out {
            edx_eax: 0x1111_2222_3333_4444,
            mem: 0x5555_6666_7777_8888,
            status: flags::CF | flags::ZF,
        };
        assert_eq!(host_cmpxchg8b(&equal), want);
        assert_eq!(ringside_cmpxchg8b(&equal), Ok(want));
        let differ = Cx8Case {
            mem: 0x1111_2222_3333_4445,
            eflags: flags::RESERVED1 | flags::ZF | flags::OF,
            lock: true,
            ..equal
        };
        let want = Cx8Out {
            edx_eax: 0x1111_2222_3333_4445,
            mem: 0x1111_2222_3333_4445,
            status: flags::OF,
        };
        assert_eq!(host_cmpxchg8b(&differ), want);
        assert_eq!(ringside_cmpxchg8b(&differ), Ok(want));
    }

    /// The divide generator must never hand the host a faulting divide (that
    /// would be a SIGFPE, not a test failure).
    #[test]
    fn divide_generator_never_faults() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let strat = case_strategy(build_muldiv);
        for _ in 0..20_000 {
            let case = strat.new_tree(&mut runner).unwrap().current();
            if matches!(
                case.ins.mnemonic(),
                iced_x86::Mnemonic::Div | iced_x86::Mnemonic::Idiv
            ) {
                assert!(
                    !oracle::divide_faults(&case.ins, &case.input.regs),
                    "{case:?}"
                );
            }
        }
    }
}

/// On hosts that are not x86-64 Unix there is no native oracle: say so
/// loudly instead of passing silently.
#[cfg(not(all(target_arch = "x86_64", unix)))]
#[test]
#[ignore = "host oracle unavailable: needs an x86-64 Unix host"]
fn host_oracle_unavailable() {
    eprintln!("host oracle unavailable: needs an x86-64 Unix host; no case ran");
}
