//! The ports the Bochs BIOS (rombios, rombios32) and the LGPL VGA BIOS
//! write their messages to, and Bochs' APM shutdown port:
//!
//! * `0x400`, `0x401`: panic. The BIOS writes the source line of a
//!   `BX_PANIC` (a word) and then usually halts; we log it as a warning so
//!   the reason a third-party BIOS stopped is visible.
//! * `0x402`: info messages (`BX_INFO`), one byte per character; `0x403`:
//!   debug messages (`BX_DEBUG`). Bochs writes them to its log, and so do
//!   we: one log line per text line (`RUST_LOG=ringside_devices=info`).
//! * `0x8900`: Bochs' shutdown port. Writing the characters of `Shutdown`
//!   in sequence turns the machine off (the Bochs BIOS's APM "set power
//!   state: off" does this).
//!
//! QEMU's SeaBIOS uses port 0x402 for its debug console only after a read
//! returns 0xE9, which this device does not answer, so SeaBIOS stays quiet
//! here as on a board without QEMU's debugcon.

use std::ops::RangeInclusive;

/// Panic port (a word: the BIOS source line).
pub const PANIC_PORT: u16 = 0x400;
/// Second panic port.
pub const PANIC_PORT2: u16 = 0x401;
/// Info message port.
pub const INFO_PORT: u16 = 0x402;
/// Debug message port.
pub const DEBUG_PORT: u16 = 0x403;
/// Bochs' shutdown port.
pub const SHUTDOWN_PORT: u16 = 0x8900;

const SHUTDOWN: &[u8] = b"Shutdown";
/// A line longer than this is logged in pieces (a guest that never writes
/// a newline must not grow the buffer without bound).
const MAX_LINE: usize = 256;

/// The message ports' line buffers and the shutdown sequence.
#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone, PartialEq, Eq)]
pub struct BochsPorts {
    info: Vec<u8>,
    debug: Vec<u8>,
    /// How many characters of `Shutdown` arrived in sequence.
    shutdown_progress: usize,
    power_off: bool,
    /// Panics reported (for tests and the run summary's logs).
    pub panics: u64,
}

impl BochsPorts {
    /// Nothing buffered, no shutdown requested.
    pub fn new() -> BochsPorts {
        BochsPorts::default()
    }

    /// Board reset: partial lines are flushed; a shutdown stays requested
    /// (it ends the run).
    pub fn reset(&mut self) {
        self.flush();
        self.shutdown_progress = 0;
    }

    /// The ports we take writes on (reads are not decoded).
    pub const PORTS: &[RangeInclusive<u16>] =
        &[PANIC_PORT..=DEBUG_PORT, SHUTDOWN_PORT..=SHUTDOWN_PORT];

    /// A write of `size` bytes. Message ports take the low byte.
    pub fn write(&mut self, port: u16, size: u8, value: u32) {
        match port {
            PANIC_PORT | PANIC_PORT2 => {
                self.panics += 1;
                self.flush();
                log::warn!(
                    "BIOS panic (port {port:#x}): source line {}",
                    if size >= 2 {
                        value & 0xFFFF
                    } else {
                        value & 0xFF
                    }
                );
            }
            INFO_PORT => Self::push(&mut self.info, value as u8, log::Level::Info),
            DEBUG_PORT => Self::push(&mut self.debug, value as u8, log::Level::Debug),
            SHUTDOWN_PORT => self.shutdown_byte(value as u8),
            _ => {}
        }
    }

    fn push(buf: &mut Vec<u8>, b: u8, level: log::Level) {
        if b == b'\n' || buf.len() >= MAX_LINE {
            Self::emit(buf, level);
            if b == b'\n' {
                return;
            }
        }
        if b != b'\r' {
            buf.push(b);
        }
    }

    fn emit(buf: &mut Vec<u8>, level: log::Level) {
        if !buf.is_empty() {
            log::log!(level, "[BIOS] {}", String::from_utf8_lossy(buf));
            buf.clear();
        }
    }

    fn flush(&mut self) {
        Self::emit(&mut self.info, log::Level::Info);
        Self::emit(&mut self.debug, log::Level::Debug);
    }

    fn shutdown_byte(&mut self, b: u8) {
        if b == SHUTDOWN[self.shutdown_progress] {
            self.shutdown_progress += 1;
            if self.shutdown_progress == SHUTDOWN.len() {
                log::info!("port 0x8900: Shutdown written: power off");
                self.power_off = true;
                self.shutdown_progress = 0;
            }
        } else {
            // A wrong byte starts over (it may be the first of a new try).
            self.shutdown_progress = usize::from(b == SHUTDOWN[0]);
        }
    }

    /// Whether the guest wrote `Shutdown` to port 0x8900.
    pub fn power_off_requested(&self) -> bool {
        self.power_off
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_needs_the_whole_word_in_order() {
        let mut p = BochsPorts::new();
        for b in b"ShutXShutdow" {
            p.write(SHUTDOWN_PORT, 1, *b as u32);
        }
        assert!(!p.power_off_requested());
        p.write(SHUTDOWN_PORT, 1, b'n' as u32);
        assert!(p.power_off_requested());
        p.reset();
        assert!(p.power_off_requested(), "a reset does not undo it");
    }

    #[test]
    fn message_lines_are_bounded_and_panics_counted() {
        let mut p = BochsPorts::new();
        for _ in 0..10 * MAX_LINE {
            p.write(INFO_PORT, 1, b'x' as u32);
        }
        assert!(p.info.len() <= MAX_LINE);
        p.write(INFO_PORT, 1, b'\n' as u32);
        assert!(p.info.is_empty());
        p.write(PANIC_PORT, 2, 1234);
        assert_eq!(p.panics, 1);
        let claims = |p| BochsPorts::PORTS.iter().any(|r| r.contains(&p));
        assert!(claims(0x402) && claims(0x8900));
        assert!(!claims(0x404));
    }
}
