//! The debug ports every emulator-aware firmware and test ROM knows:
//!
//! * `0xE9`, the debug console (Bochs' "port E9 hack", QEMU's `-debugcon`):
//!   each byte written goes to the host console; a read returns `0xE9`, so a
//!   guest can detect the port (QEMU's and Bochs' readback value).
//! * `0x80` (and an optional second port chosen by the user): POST codes, as
//!   the diagnostic cards that plug into an ISA slot show them. The last code
//!   is kept for the end-of-run summary.
//! * `0xF4`–`0xF7`, QEMU's `isa-debug-exit` device with `iosize=4`: a write of
//!   value `v` of any size asks the host to exit with status `(v << 1) | 1`.
//!   The device only records the request; the machine ends the run.
//!
//! Reads of the POST port and of the exit device return what QEMU returns
//! (all ones for port 0x80, zero for isa-debug-exit) so a ROM probing them sees
//! the same values on both.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::ops::RangeInclusive;
use std::path::Path;

/// Port of the debug console.
pub const DEBUGCON_PORT: u16 = 0xE9;
/// The standard POST-code port.
pub const POST_PORT: u16 = 0x80;
/// First port of the exit device (QEMU `isa-debug-exit,iobase=0xf4`).
pub const EXIT_PORT: u16 = 0xF4;
/// Number of ports the exit device decodes (QEMU `iosize=4`).
pub const EXIT_PORT_SIZE: u16 = 4;
/// The exit device's ports.
pub const EXIT_PORTS: RangeInclusive<u16> = EXIT_PORT..=EXIT_PORT + EXIT_PORT_SIZE - 1;

/// Where the bytes written to port 0xE9 go.
pub enum Console {
    /// The host's standard output, written through as they arrive so that an
    /// interactive user sees output before the guest finishes.
    Stdout,
    /// Discarded (still counted).
    Null,
    /// A host file, buffered; flushed at the end of the run.
    File(BufWriter<File>),
    /// Kept in memory: for tests and for frontends that show the text
    /// themselves.
    Capture(Vec<u8>),
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Console::Stdout => f.write_str("Stdout"),
            Console::Null => f.write_str("Null"),
            Console::File(_) => f.write_str("File"),
            Console::Capture(v) => write!(f, "Capture({} bytes)", v.len()),
        }
    }
}

impl Console {
    /// Create (truncate) `path` and send the console there.
    pub fn create_file(path: &Path) -> io::Result<Console> {
        Ok(Console::File(BufWriter::new(File::create(path)?)))
    }

    fn write_byte(&mut self, b: u8) -> io::Result<()> {
        match self {
            Console::Stdout => {
                // Stdout is line-buffered: a prompt without a newline would
                // sit in the buffer, so flush at line ends and let the final
                // flush catch the rest.
                let mut out = io::stdout().lock();
                out.write_all(&[b])?;
                if b == b'\n' {
                    out.flush()?;
                }
                Ok(())
            }
            Console::Null => Ok(()),
            Console::File(w) => w.write_all(&[b]),
            Console::Capture(v) => {
                v.push(b);
                Ok(())
            }
        }
    }

    /// Push buffered bytes to the host.
    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Console::Stdout => io::stdout().flush(),
            Console::File(w) => w.flush(),
            Console::Null | Console::Capture(_) => Ok(()),
        }
    }
}

fn null_console() -> Console {
    Console::Null
}

/// The debug console, POST-code and exit ports.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct DebugPorts {
    /// A host resource: not saved in snapshots (see [`crate::Pc::restore`]).
    #[serde(skip, default = "null_console")]
    console: Console,
    console_bytes: u64,
    /// Set after the first host write error so we warn once, not per byte.
    console_failed: bool,
    extra_post_port: Option<u16>,
    last_post_code: Option<u8>,
    post_codes: u64,
    exit_request: Option<u32>,
}

impl DebugPorts {
    /// Exchange host consoles (snapshot restore).
    pub(crate) fn swap_console(&mut self, other: &mut DebugPorts) {
        std::mem::swap(&mut self.console, &mut other.console);
    }

    /// Debug ports writing the console to `console`; `extra_post_port` is a
    /// second POST-code port besides 0x80 (some boards use 0x84 or 0x190).
    pub fn new(console: Console, extra_post_port: Option<u16>) -> DebugPorts {
        DebugPorts {
            console,
            console_bytes: 0,
            console_failed: false,
            extra_post_port,
            last_post_code: None,
            post_codes: 0,
            exit_request: None,
        }
    }

    /// The POST-code ports (write-only: a read of one goes to whatever
    /// else decodes it, as a POST card only listens).
    pub fn post_ports(&self) -> Vec<RangeInclusive<u16>> {
        let mut v = vec![POST_PORT..=POST_PORT];
        v.extend(self.extra_post_port.map(|p| p..=p));
        v
    }

    fn is_post_port(&self, port: u16) -> bool {
        port == POST_PORT || Some(port) == self.extra_post_port
    }

    /// Handle a port read; `None` if the port is not ours.
    pub fn io_read(&mut self, port: u16, size: u8) -> Option<u32> {
        if port == DEBUGCON_PORT {
            // Readback value: lets a guest check the console is there.
            return Some(if size == 1 {
                0xE9
            } else {
                0xE9 | (all_ones(size) & !0xFF)
            });
        }
        if exit_offset(port, size).is_some() {
            return Some(0);
        }
        None
    }

    /// Handle a port write; returns `false` if the port is not ours.
    pub fn io_write(&mut self, port: u16, size: u8, value: u32) -> bool {
        if exit_offset(port, size).is_some() {
            let v = value & all_ones(size);
            if self.exit_request.is_none() {
                log::info!("exit port {port:#x} written with {v:#x}");
                self.exit_request = Some(v);
            }
            return true;
        }
        if port == DEBUGCON_PORT {
            // Only the low byte: the console is a byte-wide port.
            self.console_byte(value as u8);
            return true;
        }
        if self.is_post_port(port) {
            let code = value as u8;
            self.last_post_code = Some(code);
            self.post_codes += 1;
            log::info!("POST code {code:02X} (port {port:#x})");
            return true;
        }
        false
    }

    fn console_byte(&mut self, b: u8) {
        self.console_bytes += 1;
        if self.console_failed {
            return;
        }
        if let Err(e) = self.console.write_byte(b) {
            log::warn!("debug console: {e}; further output is dropped");
            self.console_failed = true;
        }
    }

    /// The value written to the exit device, if any.
    pub fn exit_request(&self) -> Option<u32> {
        self.exit_request
    }

    /// Forget an exit request (a frontend that keeps the machine running).
    pub fn clear_exit_request(&mut self) {
        self.exit_request = None;
    }

    /// The last POST code written, if any.
    pub fn last_post_code(&self) -> Option<u8> {
        self.last_post_code
    }

    /// How many POST codes were written.
    pub fn post_code_count(&self) -> u64 {
        self.post_codes
    }

    /// Bytes the guest wrote to the console.
    pub fn console_bytes(&self) -> u64 {
        self.console_bytes
    }

    /// The captured console text, when the console is [`Console::Capture`].
    pub fn captured(&self) -> Option<&[u8]> {
        match &self.console {
            Console::Capture(v) => Some(v),
            _ => None,
        }
    }

    /// Flush the console to the host.
    pub fn flush(&mut self) -> io::Result<()> {
        self.console.flush()
    }
}

/// A value of `size` bytes with every bit set (the open ISA bus).
fn all_ones(size: u8) -> u32 {
    if size >= 4 {
        u32::MAX
    } else {
        (1u32 << (8 * size as u32)) - 1
    }
}

/// If an access of `size` bytes at `port` lies wholly inside the exit
/// device, its offset there. An access that straddles the device's edge is
/// not decoded by it (QEMU drops such accesses too, so a ROM behaves the
/// same on both).
fn exit_offset(port: u16, size: u8) -> Option<u16> {
    let last = port as u32 + size.max(1) as u32 - 1;
    if port >= EXIT_PORT && last < (EXIT_PORT + EXIT_PORT_SIZE) as u32 {
        Some(port - EXIT_PORT)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports() -> DebugPorts {
        DebugPorts::new(Console::Capture(Vec::new()), Some(0x84))
    }

    #[test]
    fn console_bytes_are_captured_low_byte_only() {
        let mut d = ports();
        assert!(d.io_write(0xE9, 1, b'H' as u32));
        assert!(d.io_write(0xE9, 2, 0x4269));
        assert_eq!(d.captured(), Some(&b"Hi"[..]));
        assert_eq!(d.console_bytes(), 2);
        assert_eq!(d.io_read(0xE9, 1), Some(0xE9));
    }

    #[test]
    fn post_codes_on_both_ports() {
        let mut d = ports();
        assert_eq!(d.last_post_code(), None);
        assert!(d.io_write(0x80, 1, 0x12));
        assert_eq!(d.last_post_code(), Some(0x12));
        assert!(d.io_write(0x84, 1, 0x5A));
        assert_eq!(d.last_post_code(), Some(0x5A));
        assert_eq!(d.post_code_count(), 2);
        assert!(!d.io_write(0x85, 1, 0x00), "not a POST port");
        assert_eq!(
            d.io_read(0x80, 1),
            None,
            "reads fall through to the open bus"
        );
    }

    #[test]
    fn exit_device_takes_every_size_and_offset() {
        for (port, size, value, want) in [
            (0xF4, 1, 0x05, 0x05),
            (0xF4, 2, 0x1234, 0x1234),
            (0xF4, 4, 0xDEAD_BEEF, 0xDEAD_BEEF),
            (0xF5, 1, 0x07, 0x07),
            (0xF6, 2, 0x0102, 0x0102),
            (0xF7, 1, 0x0102_0304, 0x04),
        ] {
            let mut d = ports();
            assert!(d.io_write(port, size, value), "port {port:#x} size {size}");
            assert_eq!(d.exit_request(), Some(want), "port {port:#x} size {size}");
        }
    }

    #[test]
    fn exit_device_ignores_accesses_across_its_edges() {
        for (port, size) in [
            (0xF8, 1),
            (0xF3, 1),
            (0xF2, 4),
            (0xF3, 2),
            (0xF6, 4),
            (0xF7, 2),
        ] {
            let mut d = ports();
            assert!(!d.io_write(port, size, 1), "port {port:#x} size {size}");
            assert_eq!(d.exit_request(), None);
        }
    }

    #[test]
    fn first_exit_request_wins() {
        let mut d = ports();
        d.io_write(0xF4, 1, 3);
        d.io_write(0xF4, 1, 9);
        assert_eq!(d.exit_request(), Some(3));
        d.clear_exit_request();
        assert_eq!(d.exit_request(), None);
    }

    #[test]
    fn null_console_counts() {
        let mut d = DebugPorts::new(Console::Null, None);
        d.io_write(0xE9, 1, b'x' as u32);
        assert_eq!(d.console_bytes(), 1);
        assert_eq!(d.captured(), None);
        assert!(d.flush().is_ok());
    }
}
