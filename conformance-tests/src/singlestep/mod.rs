//! SingleStepTests runner: hardware-recorded single-instruction tests in the
//! MOO format (80286 and 80386 suites by Daniel Balsom), run on
//! [`ringside_cpu::Cpu`].
//!
//! Each test is one instruction followed by HLT, with the initial registers
//! and memory, and the registers and memory bytes that changed. The runner
//! loads the initial state, steps the CPU until the next instruction is the
//! terminating HLT (or the CPU halts on its own for the HLT test), then
//! compares registers, flags (minus undefined flags) and memory.
//!
//! Where the recorded CPU (a 286) and the modelled one (a 386 or later)
//! differ architecturally, tests are skipped one by one with a printed,
//! counted reason; see [`Profile`].
//!
//! ```no_run
//! use ringside_conformance::singlestep::{run_dir, RunOptions};
//! let dir = ringside_conformance::singlestep::conformance_dir().join("singlestep-286");
//! let summary = run_dir(&dir, &RunOptions::default(), &mut std::io::stdout()).unwrap();
//! assert_eq!(summary.failed, 0);
//! ```

pub mod meta;
pub mod moo;
mod profile;
mod run;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub use profile::Profile;
pub use run::Harness;

use meta::{FlagMasks, Revocations};

/// A problem with the test data or the output (never a test failure).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A MOO file is truncated or malformed.
    #[error("{}: corrupt MOO file {source}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where and what.
        source: moo::ParseError,
    },
    /// A side file (`metadata.json`, `80386.csv`) is malformed.
    #[error("{}: {msg}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A MOO file names a CPU the runner has no profile for.
    #[error("{}: unsupported CPU id {id:?} (expected C286, 386E or 386)", path.display())]
    UnsupportedCpu {
        /// The file.
        path: PathBuf,
        /// The CPU id from the header.
        id: String,
    },
    /// The directory holds no `.MOO`/`.MOO.gz` files, or a requested stem has none.
    #[error("{}: {msg}", path.display())]
    NoTests {
        /// The directory.
        path: PathBuf,
        /// What is missing.
        msg: String,
    },
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// What to run and how much to print.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Only the files with these stems (file name without `.MOO`/`.MOO.gz`,
    /// case-insensitive, e.g. `F6.6`). Empty: all files.
    pub only: Vec<String>,
    /// Run at most this many tests per file.
    pub max_tests_per_file: Option<usize>,
    /// Failures printed in full per file (the rest are counted).
    pub max_failures_shown: usize,
    /// Report bytes the CPU wrote that the test does not list (scans the
    /// 64 KiB windows of the segments).
    pub check_stray_writes: bool,
    /// Print a line for every file, not only files with failures or skips.
    pub verbose: bool,
    /// Run the tests a profile rule would skip before running them, and
    /// count any that passes anyway as a failure ("skip not needed"): proves
    /// that every skip is one where the CPUs really differ.
    pub verify_skips: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            only: Vec::new(),
            max_tests_per_file: None,
            max_failures_shown: 3,
            check_stray_writes: true,
            verbose: false,
            verify_skips: false,
        }
    }
}

/// Counts over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Files run.
    pub files: usize,
    /// Tests that matched.
    pub passed: u64,
    /// Tests that did not match.
    pub failed: u64,
    /// Tests skipped (reasons in `skip_reasons`).
    pub skipped: u64,
    /// Skip count per reason.
    pub skip_reasons: BTreeMap<String, u64>,
    /// Files with failures and their failure counts.
    pub failed_files: Vec<(String, u64)>,
}

impl Summary {
    /// `N passed, M failed, K skipped`.
    pub fn line(&self) -> String {
        format!(
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }

    /// Add another summary's counts to this one.
    pub fn merge(&mut self, o: &Summary) {
        self.files += o.files;
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
        for (k, v) in &o.skip_reasons {
            *self.skip_reasons.entry(k.clone()).or_default() += v;
        }
        self.failed_files.extend(o.failed_files.iter().cloned());
    }
}

/// The shared conformance data directory: `$RINGSIDE_CONFORMANCE_DIR`, or
/// `../shared/conformance` next to the repository.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("RINGSIDE_CONFORMANCE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

/// Where the data come from upstream and how to point the runner at them.
pub const DATA_HOWTO: &str = "the SingleStepTests data come from upstream: the 80286 suite \
(github.com/SingleStepTests/80286, folder v1_real_mode: its .MOO.gz files into DIR/singlestep-286) \
and the 80386EX MOO sample (github.com/dbalsom/moo, crates/moo/tests/test_data/00.MOO, gzipped \
into DIR/moo-sample-386ex/00.MOO.gz); set RINGSIDE_CONFORMANCE_DIR=DIR \
(default: ../shared/conformance beside the repository)";

/// The folder `sub` of [`conformance_dir`], or `None` when it is missing,
/// after saying so: one `NOT RUN:` line naming `what`, the folder, where
/// the data come from and the variable that points at them, written
/// straight to stderr (cargo's test harness captures `eprintln!` and shows
/// it only for failures: a skip must not pass silently). With
/// `RINGSIDE_REQUIRE_CONFORMANCE` set (`.ci/run` sets it when the data is
/// there) a missing folder panics instead.
pub fn data_or_skip(sub: &str, what: &str) -> Option<PathBuf> {
    let dir = conformance_dir().join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("RINGSIDE_REQUIRE_CONFORMANCE").is_none(),
        "RINGSIDE_REQUIRE_CONFORMANCE is set but {} is missing: {DATA_HOWTO}",
        dir.display()
    );
    use std::io::Write as _;
    // One write, so the harness's own lines do not cut through it.
    let line = format!(
        "NOT RUN: {what}: {} is missing; {DATA_HOWTO}\n",
        dir.display()
    );
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
    None
}

/// Read and parse one `.MOO` or `.MOO.gz` file.
pub fn load_moo(path: &Path) -> Result<moo::MooFile, Error> {
    let raw = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let data = moo::maybe_gunzip(raw).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    })?;
    moo::parse(&data).map_err(|source| Error::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// The stem of a test file name (`F6.6.MOO.gz` → `F6.6`), or `None` if it
/// is not a MOO file.
pub fn moo_stem(name: &str) -> Option<&str> {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".moo.gz") {
        Some(&name[..name.len() - 7])
    } else if lower.ends_with(".moo") {
        Some(&name[..name.len() - 4])
    } else {
        None
    }
}

/// A suite directory: its test files, undefined-flag masks and revocations.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The directory.
    pub dir: PathBuf,
    /// Test files, sorted by name.
    pub files: Vec<PathBuf>,
    /// Undefined-flag masks from `metadata.json` and/or `80386.csv`.
    pub masks: FlagMasks,
    /// Revoked test hashes.
    pub revoked: Revocations,
}

impl Suite {
    /// Scan `dir`: list its MOO files and read its side files if present.
    pub fn open(dir: &Path) -> Result<Suite, Error> {
        let rd = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        for e in rd {
            let e = e.map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let name = e.file_name();
            if moo_stem(&name.to_string_lossy()).is_some() {
                files.push(e.path());
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(Error::NoTests {
                path: dir.to_path_buf(),
                msg: "no .MOO or .MOO.gz test files".into(),
            });
        }
        let read_opt = |name: &str| -> Result<Option<(PathBuf, String)>, Error> {
            let p = dir.join(name);
            match std::fs::read(&p) {
                Ok(b) => Ok(Some((p, String::from_utf8_lossy(&b).into_owned()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(Error::Io { path: p, source }),
            }
        };
        let mut masks = FlagMasks::default();
        if let Some((p, text)) = read_opt("metadata.json")? {
            masks = FlagMasks::from_metadata_json(&p, &text)?;
        }
        if let Some((p, text)) = read_opt("80386.csv")? {
            // Both present (unusual): a flag undefined in either is masked.
            masks.merge(&FlagMasks::from_80386_csv(&p, &text)?);
        }
        let revoked = match read_opt("revocation_list.txt")? {
            Some((_, text)) => Revocations::parse(&text),
            None => Revocations::default(),
        };
        Ok(Suite {
            dir: dir.to_path_buf(),
            files,
            masks,
            revoked,
        })
    }

    /// The files selected by `opts.only` (all when empty). A stem with no
    /// file is an error, so a typo does not pass as "0 tests".
    pub fn selected(&self, opts: &RunOptions) -> Result<Vec<PathBuf>, Error> {
        if opts.only.is_empty() {
            return Ok(self.files.clone());
        }
        let mut out = Vec::new();
        for want in &opts.only {
            let hit = self.files.iter().find(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                moo_stem(&n).is_some_and(|s| s.eq_ignore_ascii_case(want))
            });
            match hit {
                Some(p) => out.push(p.clone()),
                None => {
                    return Err(Error::NoTests {
                        path: self.dir.clone(),
                        msg: format!("no test file with stem {want:?}"),
                    })
                }
            }
        }
        Ok(out)
    }
}

/// Run every selected test file of `dir`, writing the report to `out`. The
/// last line written is [`Summary::line`].
pub fn run_dir(dir: &Path, opts: &RunOptions, out: &mut dyn Write) -> Result<Summary, Error> {
    let suite = Suite::open(dir)?;
    let files = suite.selected(opts)?;
    let mut h = Harness::new();
    let mut total = Summary::default();
    for f in &files {
        let s = h.run_file(f, &suite, opts, out)?;
        total.merge(&s);
    }
    write_totals(&total, out)?;
    Ok(total)
}

/// Write the skip table and the final `N passed, M failed, K skipped` line.
pub fn write_totals(total: &Summary, out: &mut dyn Write) -> Result<(), Error> {
    if !total.skip_reasons.is_empty() {
        writeln!(out, "skipped, by reason:")?;
        for (r, n) in &total.skip_reasons {
            writeln!(out, "  {n:>6}  {r}")?;
        }
    }
    if !total.failed_files.is_empty() {
        let list: Vec<String> = total
            .failed_files
            .iter()
            .map(|(f, n)| format!("{f} ({n})"))
            .collect();
        writeln!(out, "files with failures: {}", list.join(", "))?;
    }
    writeln!(out, "{}", total.line())?;
    Ok(())
}

#[cfg(test)]
mod tests;
