//! SingleStepTests on `ringside_cpu::Cpu`: the shared 80286 real-mode subset
//! (69,875 tests) and the 80386EX sample file must run with zero failures.
//! Skips are allowed only for the documented 286-vs-386 differences and are
//! printed with their reasons.
//!
//! The data lives outside the repository (`../shared/conformance`, or
//! `$RINGSIDE_CONFORMANCE_DIR`); if it is missing these tests fail.

use std::path::PathBuf;

use ringside_conformance::singlestep::{conformance_dir, run_dir, RunOptions, Summary};

fn data_dir(sub: &str) -> PathBuf {
    let d = conformance_dir().join(sub);
    assert!(
        d.is_dir(),
        "conformance data {} is missing: put the shared conformance data there or set RINGSIDE_CONFORMANCE_DIR",
        d.display()
    );
    d
}

fn run_suite(sub: &str) -> (Summary, String) {
    let dir = data_dir(sub);
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
    (summary, text)
}

#[test]
fn singlestep_286_real_mode_subset() {
    let (s, text) = run_suite("singlestep-286");
    assert_eq!(s.files, 325, "{text}");
    assert_eq!(s.passed + s.failed + s.skipped, 69_875, "{text}");
    assert_eq!(s.failed, 0, "{text}");
    // Skips are for architectural 286/386 differences only: a small fraction.
    assert!(s.skipped < 2_000, "too many skips:\n{text}");
}

#[test]
fn moo_sample_386ex() {
    let (s, text) = run_suite("moo-sample-386ex");
    assert_eq!(s.files, 1, "{text}");
    assert_eq!(s.passed + s.failed + s.skipped, 500, "{text}");
    assert_eq!(s.failed, 0, "{text}");
    assert_eq!(s.skipped, 0, "{text}");
}
