//! Property tests of the x87 against the host CPU's own x87.
//!
//! Each case is one x87 instruction run natively and in Ringside from the
//! same FPU state (random control word: all masks, PC, RC; random
//! registers biased to edge cases: ±0, ±∞, QNaN/SNaN, denormals,
//! pseudo-denormals, unnormals, pseudo-NaN/-∞, extreme exponents, values
//! near the single/double limits and close pairs that cancel), memory
//! operand and EFLAGS. Everything must agree bit for bit: ST(0..7), control,
//! status (flags, SF, ES, C0–C3, TOP) and tag words, the memory operand,
//! AX and the status flags, except in the transcendental group, where
//! results may differ by the documented ulp bound (and then the PE/C1 bits
//! that depend on the rounding direction are not compared).
//!
//! `PROPTEST_CASES` sets the count per group (default 1024; a quarter of
//! that for the transcendentals). The seed is fixed so `cargo test` is
//! deterministic; `PROPTEST_RNG_SEED=n` explores elsewhere.

#[cfg(all(target_arch = "x86_64", unix))]
mod host {
    use std::cell::RefCell;

    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use ringside_conformance::x87::{self, ulp_distance, HostX87, X87Case, X87State};
    use ringside_cpu::fpu::F80;

    thread_local! {
        static HOST: RefCell<HostX87> = RefCell::new(HostX87::new().expect("map the x87 oracle page"));
    }

    fn cases(scale: u32) -> u32 {
        let n = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1024u32);
        (n / scale).max(16)
    }

    /// A fixed seed keeps `cargo test` deterministic; set
    /// `PROPTEST_RNG_SEED` (any number) to explore other cases.
    fn config(scale: u32) -> ProptestConfig {
        let d = ProptestConfig::default();
        let rng_seed = if std::env::var_os("PROPTEST_RNG_SEED").is_some() {
            d.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x8087_0387)
        };
        ProptestConfig {
            cases: cases(scale),
            failure_persistence: None,
            rng_seed,
            ..d
        }
    }

    /// An 80-bit value biased toward the interesting encodings.
    fn value() -> impl Strategy<Value = F80> {
        let sign = any::<bool>().prop_map(|s| if s { 0x8000u16 } else { 0 });
        let normal_exp = prop_oneof![
            4 => 0x3FF0u16..0x4010,
            2 => 0x3F00u16..0x4100,
            1 => 1u16..0x7FFF,
            1 => prop::sample::select(vec![1u16, 2, 0x7FFE, 0x7FFD, 0x3FFF - 126, 0x3FFF - 127,
                0x3FFF - 149, 0x3FFF - 150, 0x3FFF + 127, 0x3FFF + 128, 0x3FFF - 1022,
                0x3FFF - 1023, 0x3FFF - 1074, 0x3FFF - 1075, 0x3FFF + 1023, 0x3FFF + 1024,
                0x3FFF + 62, 0x3FFF + 63, 0x3FFF + 64, 0x3FFF + 15, 0x3FFF + 31, 0x3FFF + 59]),
        ];
        let sig = prop_oneof![
            6 => any::<u64>(),
            1 => (0u32..64).prop_map(|b| !0u64 >> b),
            1 => (0u32..64).prop_map(|b| 1u64 << b),
            1 => (0u64..8).prop_map(|v| v << 61),
            1 => any::<u64>().prop_map(|v| v & 0xFFFF_FF00_0000_0000),
            1 => any::<u64>().prop_map(|v| v & 0xFFFF_FFFF_FFFF_F800),
        ];
        prop_oneof![
            12 => (sign.clone(), normal_exp, sig.clone())
                .prop_map(|(s, e, m)| F80 { se: s | e, sig: m | 1 << 63 }),
            2 => (sign.clone(), -40i64..40).prop_map(|(s, v)| { let f = F80::from_i64(v); F80 { se: f.se ^ s, ..f } }),
            1 => sign.clone().prop_map(|s| F80 { se: s, sig: 0 }),
            1 => sign.clone().prop_map(|s| F80 { se: s | 0x7FFF, sig: 1 << 63 }),
            1 => (sign.clone(), sig.clone()).prop_map(|(s, m)| F80 { se: s | 0x7FFF, sig: m | 3 << 62 }),
            1 => (sign.clone(), sig.clone()).prop_map(|(s, m)| F80 { se: s | 0x7FFF, sig: (m | 1 << 63 | 1) & !(1 << 62) }),
            1 => Just(F80::INDEFINITE),
            1 => (sign.clone(), sig.clone()).prop_map(|(s, m)| F80 { se: s, sig: (m >> 1).max(1) }),
            1 => (sign.clone(), sig.clone()).prop_map(|(s, m)| F80 { se: s, sig: m | 1 << 63 }),
            1 => (sign.clone(), 1u16..0x7FFF, sig.clone()).prop_map(|(s, e, m)| F80 { se: s | e, sig: m >> 1 }),
            1 => (sign, sig).prop_map(|(s, m)| F80 { se: s | 0x7FFF, sig: m >> 1 }),
        ]
    }

    /// A control word: random masks (usually all masked), PC and RC.
    fn control() -> impl Strategy<Value = u16> {
        (
            prop_oneof![4 => Just(0x3Fu16), 1 => 0u16..0x40],
            prop::sample::select(vec![0u16, 2, 3, 3]),
            0u16..4,
        )
            .prop_map(|(m, pc, rc)| 0x40 | m | pc << 8 | rc << 10)
    }

    /// An input state: ST(0), ST(1) and a third value somewhere, random
    /// TOP and empties, sticky flags only where masked.
    fn state() -> impl Strategy<Value = X87State> {
        (
            control(),
            0u16..8,
            any::<u16>(),
            prop::array::uniform8(value()),
            prop_oneof![6 => Just(0xFFu8), 1 => any::<u8>(), 1 => Just(0x7Fu8), 1 => Just(0x03u8)],
            // Close pairs: make ST(1) a near copy of ST(0) sometimes.
            prop_oneof![3 => Just(None), 1 => (0u64..4).prop_map(Some)],
        )
            .prop_map(|(cw, top, flags, mut st, valid_st, close)| {
                if let Some(d) = close {
                    st[1] = F80 {
                        se: st[0].se ^ if d & 1 == 1 { 0x8000 } else { 0 },
                        sig: st[0].sig.wrapping_add(d >> 1),
                    };
                }
                // valid_st bit i: ST(i) valid.
                let mut tw = 0u16;
                for i in 0..8 {
                    let p = (top as usize + i) & 7;
                    if valid_st & (1 << i) == 0 {
                        tw |= 3 << (2 * p);
                    }
                }
                let sw = (flags & 0x4700) | (flags & cw & 0x3F) | top << 11;
                X87State { cw, sw, tw, st }
            })
    }

    fn eflags() -> impl Strategy<Value = u32> {
        (0u32..8).prop_map(|b| (b & 1) | (b & 2) << 1 | (b & 4) << 4)
    }

    fn case(bytes: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = X87Case> {
        (
            bytes,
            state(),
            any::<[u8; 16]>(),
            value(),
            any::<bool>(),
            eflags(),
        )
            .prop_map(|(bytes, state, raw, v, use_value, eflags)| {
                let mut mem = raw;
                if use_value {
                    // A memory operand that is an interesting value in any of
                    // the formats (the low bytes serve m32/m64 too).
                    let b = v.to_bytes();
                    match bytes[0] {
                        0xD8 | 0xD9 => {
                            let f = F80::to_f64(v) as f32;
                            mem[..4].copy_from_slice(&f.to_bits().to_le_bytes());
                        }
                        0xDC | 0xDD => {
                            mem[..8].copy_from_slice(&v.to_f64().to_bits().to_le_bytes());
                        }
                        0xDA | 0xDE => {
                            let i = v.to_f64() as i32;
                            mem[..4].copy_from_slice(&i.to_le_bytes());
                        }
                        _ => mem[..10].copy_from_slice(&b),
                    }
                }
                X87Case {
                    bytes,
                    state,
                    mem,
                    eflags,
                }
            })
    }

    fn mem_form(op: u8, reg: u8) -> Vec<u8> {
        vec![op, (reg << 3) | 6]
    }

    /// Compare outcomes; `tolerance` in ulps for register contents. With a
    /// tolerance, C1 (rounded up) and PE are not compared: C1 reports the direction
    /// of the last rounding, which depends on the sign of the error of the
    /// internal approximation even when both round to the same value.
    fn compare(case: &X87Case, tolerance: u64) -> Result<(), TestCaseError> {
        let host = HOST
            .with(|h| h.borrow_mut().run(case))
            .map_err(TestCaseError::fail)?;
        let ours = x87::run_ringside(case).map_err(TestCaseError::fail)?;
        if ours == host {
            return Ok(());
        }
        let mut diffs = Vec::new();
        let mut inexact_ok = false;
        for i in 0..8 {
            let (a, b) = (ours.state.st[i], host.state.st[i]);
            if a != b {
                match ulp_distance(a, b) {
                    Some(d) if d <= tolerance => inexact_ok = true,
                    _ => diffs.push(format!(
                        "ST({i}) ours {:04X}:{:016X} host {:04X}:{:016X}",
                        a.se, a.sig, b.se, b.sig
                    )),
                }
            }
        }
        // Transcendentals: PE and UE too, as the host reports exact results
        // of its approximations (log2 of a power of two) as inexact.
        let mut sw_mask = if tolerance > 0 { !0x0230u16 } else { 0xFFFF };
        if inexact_ok {
            sw_mask &= !(0x0200 | 0x0020 | 0x0010);
        }
        if ours.state.sw & sw_mask != host.state.sw & sw_mask {
            diffs.push(format!(
                "FSW ours {:04X} host {:04X}",
                ours.state.sw, host.state.sw
            ));
        }
        if ours.state.cw != host.state.cw {
            diffs.push(format!(
                "FCW ours {:04X} host {:04X}",
                ours.state.cw, host.state.cw
            ));
        }
        if ours.state.tw != host.state.tw {
            diffs.push(format!(
                "FTW ours {:04X} host {:04X}",
                ours.state.tw, host.state.tw
            ));
        }
        if ours.mem != host.mem {
            diffs.push(format!("mem ours {:02X?} host {:02X?}", ours.mem, host.mem));
        }
        if ours.ax != host.ax && case.bytes == [0xDF, 0xE0] {
            diffs.push(format!("AX ours {:04X} host {:04X}", ours.ax, host.ax));
        }
        if ours.eflags != host.eflags {
            diffs.push(format!(
                "EFLAGS ours {:03X} host {:03X}",
                ours.eflags, host.eflags
            ));
        }
        if diffs.is_empty() {
            return Ok(());
        }
        Err(TestCaseError::fail(format!(
            "{:02X?}: {}\n input {}",
            case.bytes,
            diffs.join("; "),
            describe(case)
        )))
    }

    fn describe(c: &X87Case) -> String {
        let mut s = format!(
            "cw={:04X} sw={:04X} tw={:04X} eflags={:X} mem={:02X?}",
            c.state.cw, c.state.sw, c.state.tw, c.eflags, c.mem
        );
        for (i, r) in c.state.st.iter().enumerate() {
            s += &format!(" st{i}={:04X}:{:016X}", r.se, r.sig);
        }
        s
    }

    fn sel(v: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
        prop::sample::select(v)
    }

    fn reg_forms(op: u8, lo: u8, hi: u8) -> Vec<Vec<u8>> {
        (lo..=hi).map(|m| vec![op, m]).collect()
    }

    /// FADD/FMUL/FSUB(R)/FDIV(R) in memory (m32, m64, m16int, m32int),
    /// register and popping forms; FSQRT, FRNDINT, FABS, FCHS, FSCALE,
    /// FXTRACT, FPREM, FPREM1.
    fn arithmetic() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for op in [0xD8, 0xDC, 0xDA, 0xDE] {
            for reg in [0, 1, 4, 5, 6, 7] {
                v.push(mem_form(op, reg));
            }
        }
        v.extend(reg_forms(0xD8, 0xC0, 0xCF));
        v.extend(reg_forms(0xD8, 0xE0, 0xFF));
        v.extend(reg_forms(0xDC, 0xC0, 0xCF));
        v.extend(reg_forms(0xDC, 0xE0, 0xFF));
        v.extend(reg_forms(0xDE, 0xC0, 0xCF));
        v.extend(reg_forms(0xDE, 0xE0, 0xFF));
        for m in [0xFA, 0xFC, 0xE0, 0xE1, 0xFD, 0xF4, 0xF8, 0xF5] {
            for _ in 0..6 {
                v.push(vec![0xD9, m]);
            }
        }
        v
    }

    /// Loads and stores of every format.
    fn conversions() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for (op, regs) in [
            (0xD9u8, &[0u8, 2, 3][..]),
            (0xDD, &[0, 2, 3]),
            (0xDB, &[0, 2, 3, 5, 7]),
            (0xDF, &[0, 2, 3, 4, 5, 6, 7]),
        ] {
            for &r in regs {
                v.push(mem_form(op, r));
                v.push(mem_form(op, r));
            }
        }
        v.extend(reg_forms(0xD9, 0xC0, 0xC7)); // FLD ST(i)
        v.extend(reg_forms(0xDD, 0xD0, 0xDF)); // FST/FSTP ST(i)
        v.extend(reg_forms(0xD9, 0xE8, 0xEE)); // constants
        v
    }

    /// FCOM*, FUCOM*, FCOMI*, FUCOMI*, FTST, FXAM, FICOM*, FNSTSW AX.
    fn compares() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for op in [0xD8, 0xDC, 0xDA, 0xDE] {
            v.push(mem_form(op, 2));
            v.push(mem_form(op, 3));
        }
        v.extend(reg_forms(0xD8, 0xD0, 0xDF));
        v.extend(reg_forms(0xDD, 0xE0, 0xEF));
        v.extend(reg_forms(0xDB, 0xE8, 0xF7));
        v.extend(reg_forms(0xDF, 0xE8, 0xF7));
        for m in [
            [0xDE, 0xD9],
            [0xDA, 0xE9],
            [0xD9, 0xE4],
            [0xD9, 0xE5],
            [0xDF, 0xE0],
        ] {
            for _ in 0..4 {
                v.push(m.to_vec());
            }
        }
        v
    }

    /// FXCH, FCMOVcc, FFREE, FINCSTP, FDECSTP, FNOP, FNCLEX, FNINIT.
    fn misc() -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        v.extend(reg_forms(0xD9, 0xC8, 0xCF));
        v.extend(reg_forms(0xDA, 0xC0, 0xDF));
        v.extend(reg_forms(0xDB, 0xC0, 0xDF));
        v.extend(reg_forms(0xDD, 0xC0, 0xC7));
        for m in [
            [0xD9, 0xF6],
            [0xD9, 0xF7],
            [0xD9, 0xD0],
            [0xDB, 0xE2],
            [0xDB, 0xE3],
        ] {
            v.push(m.to_vec());
        }
        v
    }

    fn transcendental() -> Vec<Vec<u8>> {
        [0xF0u8, 0xF1, 0xF2, 0xF3, 0xF9, 0xFB, 0xFE, 0xFF]
            .iter()
            .map(|&m| vec![0xD9, m])
            .collect()
    }

    proptest! {
        #![proptest_config(config(1))]
        #[test]
        fn arithmetic_matches_host(c in case(sel(arithmetic()))) {
            // FSCALE with OE or UE unmasked: the host neither rebiases
            // consistently nor follows the SDM (see the FPU notes); skipped.
            prop_assume!(!(c.bytes == [0xD9, 0xFD] && c.state.cw & 0x18 != 0x18));
            // FPREM/FPREM1 handing back a pseudo-denormal ST(0) unchanged:
            // the host stores the same bits but tags them valid (00), which
            // a tag computed from the contents cannot express; skipped.
            let pseudo = c.state.st[0].biased_exp() == 0 && c.state.st[0].sig >> 63 == 1;
            prop_assume!(!(matches!(c.bytes[..], [0xD9, 0xF8] | [0xD9, 0xF5]) && pseudo));
            compare(&c, 0)?;
        }

        #[test]
        fn conversions_match_host(c in case(sel(conversions()))) {
            compare(&c, 0)?;
        }

        #[test]
        fn compares_match_host(c in case(sel(compares()))) {
            compare(&c, 0)?;
        }

        #[test]
        fn misc_matches_host(c in case(sel(misc()))) {
            compare(&c, 0)?;
        }
    }

    proptest! {
        #![proptest_config(config(4))]
        #[test]
        fn transcendentals_within_one_ulp(c in case(sel(transcendental()))) {
            // Outside the documented operand ranges the result is undefined.
            let x = c.state.st[0];
            let mag = x.abs().to_f64();
            let at_most_one = x.biased_exp() < 0x3FFF || x.abs() == F80::ONE;
            let defined = match c.bytes[1] {
                0xF0 => at_most_one,
                0xF9 => mag < 1.0 - std::f64::consts::FRAC_1_SQRT_2,
                _ => true,
            };
            prop_assume!(defined || x.is_nan() || x.biased_exp() == 0x7FFF);
            // PE/UE are not compared here (see `compare`), so they must not
            // decide whether ES is set either.
            prop_assume!(c.state.cw & 0x30 == 0x30);
            compare(&c, 1)?;
        }
    }
}
