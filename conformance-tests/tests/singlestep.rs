//! SingleStepTests on `ringside_cpu::Cpu`: the shared 80286 real-mode subset
//! (69,875 tests) and the 80386EX sample file must run with zero failures.
//! Skips are allowed only for the documented 286-vs-386 differences and are
//! printed with their reasons.
//!
//! The data lives outside the repository (`$RINGSIDE_CONFORMANCE_DIR`, or
//! `../shared/conformance` beside it; where it comes from upstream:
//! [`ringside_conformance::singlestep::DATA_HOWTO`]). When it is missing
//! these tests say `NOT RUN` and why, and pass, unless
//! `RINGSIDE_REQUIRE_CONFORMANCE` is set (`.ci/run` sets it when the data
//! is there).

use ringside_conformance::singlestep::{data_or_skip, run_dir, RunOptions, Summary};

fn run_suite(sub: &str, what: &str) -> Option<(Summary, String)> {
    let dir = data_or_skip(sub, what)?;
    let mut out = Vec::new();
    // verify_skips: a test a 286-profile rule skips must really fail on our
    // CPU, else it counts as a failure ("skip not needed").
    let opts = RunOptions {
        verify_skips: true,
        ..RunOptions::default()
    };
    let summary = run_dir(&dir, &opts, &mut out).unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out).into_owned();
    println!("{sub}:\n{text}");
    Some((summary, text))
}

#[test]
fn singlestep_286_real_mode_subset() {
    let Some((s, text)) = run_suite("singlestep-286", "singlestep_286_real_mode_subset") else {
        return;
    };
    // The developer subset: 325 files, the first 215 tests of each; the
    // whole upstream folder (326 files, 1.47 million tests) also does.
    let total = s.passed + s.failed + s.skipped;
    assert!(s.files >= 325, "{text}");
    assert!(total >= 69_875, "{text}");
    assert_eq!(s.failed, 0, "{text}");
    // Skips are for architectural 286/386 differences only: a small
    // fraction (under 2,000 of the subset's 69,875).
    assert!(s.skipped * 100 < total * 3, "too many skips:\n{text}");
}

#[test]
fn moo_sample_386ex() {
    let Some((s, text)) = run_suite("moo-sample-386ex", "moo_sample_386ex") else {
        return;
    };
    assert_eq!(s.files, 1, "{text}");
    assert_eq!(s.passed + s.failed + s.skipped, 500, "{text}");
    assert_eq!(s.failed, 0, "{text}");
    assert_eq!(s.skipped, 0, "{text}");
}
