//! Our BIOS's own log: its POST banner, the drives it found, the boot's
//! progress and why a boot failed. A channel of the machine's, apart from
//! the guest's debug console (port 0xE9 is the guest's alone: a test
//! program's `--debugcon` file holds its own bytes and nothing of ours, as
//! under QEMU, where SeaBIOS logs to port 0x402 instead).
//!
//! The BIOS runs its services in Rust ([`ringside_bios::Bios`]); the lines
//! they write are handed over after each hypercall, never through a port.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::MachineError;

/// Where our BIOS's log goes (`--bios-log stderr|null|PATH`).
#[derive(Default)]
pub enum BiosLog {
    /// The host's standard error, written as the lines come (the CLI's
    /// default, so a failed boot says why even with `--debugcon null`).
    Stderr,
    /// Discarded.
    #[default]
    Null,
    /// A host file, buffered; flushed at the end of each run.
    File(BufWriter<File>),
    /// Kept in memory: for tests and frontends that show it themselves.
    Capture(Vec<u8>),
}

impl std::fmt::Debug for BiosLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BiosLog::Stderr => f.write_str("Stderr"),
            BiosLog::Null => f.write_str("Null"),
            BiosLog::File(_) => f.write_str("File"),
            BiosLog::Capture(v) => write!(f, "Capture({} bytes)", v.len()),
        }
    }
}

impl BiosLog {
    /// The channel named on a command line: `stderr`, `null`, or a file
    /// path (created, truncated).
    pub fn from_arg(arg: &str) -> Result<BiosLog, MachineError> {
        match arg {
            "stderr" => Ok(BiosLog::Stderr),
            "null" => Ok(BiosLog::Null),
            path => File::create(Path::new(path))
                .map(|f| BiosLog::File(BufWriter::new(f)))
                .map_err(|source| MachineError::BiosLog {
                    path: PathBuf::from(path),
                    source,
                }),
        }
    }

    /// Append the firmware's text. A host write error is reported once
    /// and the log is dropped from then on: the guest runs on.
    pub fn write(&mut self, text: &str) {
        let r = match self {
            BiosLog::Stderr => io::stderr().lock().write_all(text.as_bytes()),
            BiosLog::Null => Ok(()),
            BiosLog::File(w) => w.write_all(text.as_bytes()),
            BiosLog::Capture(v) => {
                v.extend_from_slice(text.as_bytes());
                Ok(())
            }
        };
        if let Err(e) = r {
            log::warn!("BIOS log: {e}; it is discarded from now on");
            *self = BiosLog::Null;
        }
    }

    /// Push buffered text to the host.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            BiosLog::Stderr => io::stderr().flush(),
            BiosLog::File(w) => w.flush(),
            BiosLog::Null | BiosLog::Capture(_) => Ok(()),
        }
    }

    /// What a [`BiosLog::Capture`] holds (empty for the others).
    pub fn captured(&self) -> &[u8] {
        match self {
            BiosLog::Capture(v) => v,
            _ => &[],
        }
    }
}
