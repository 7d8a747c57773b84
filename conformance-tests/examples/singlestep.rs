//! Run a SingleStepTests directory from the command line.
//!
//! ```text
//! cargo run -p ringside-conformance --release --example singlestep -- DIR [STEM...] [--max N] [--show N] [-v] [--verify-skips]
//! ```
//!
//! Exit status: 0 all passed, 1 failures, 2 a data or usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use ringside_conformance::singlestep::{run_dir, RunOptions};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir = None;
    let mut opts = RunOptions::default();
    while let Some(a) = args.next() {
        let num = |v: Option<String>| v.and_then(|s| s.parse::<usize>().ok());
        match a.as_str() {
            "--max" => opts.max_tests_per_file = num(args.next()),
            "--show" => opts.max_failures_shown = num(args.next()).unwrap_or(3),
            "-v" => opts.verbose = true,
            "--verify-skips" => opts.verify_skips = true,
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => opts.only.push(a),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: singlestep DIR [STEM...] [--max N] [--show N] [-v] [--verify-skips]");
        return ExitCode::from(2);
    };
    match run_dir(&dir, &opts, &mut std::io::stdout()) {
        Ok(s) if s.failed == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("singlestep: {e}");
            ExitCode::from(2)
        }
    }
}
