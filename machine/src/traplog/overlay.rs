//! The live overlay panel's model: what the window shows of the CPU and
//! the last events.

use ringside_cpu::Cpu;

use super::format::format_short;
use super::text::{iopl, mode_name, Line};

/// What a live overlay panel shows (the window reads it between frames):
/// the CPU's CPL, mode, paging and IOPL, and the last few events in the
/// trap log's words.
///
/// The machine side writes it only at events (the trap log already formats
/// a line for each) and at frame boundaries ([`Overlay::sync`]), never per
/// instruction; the window copies it when [`Overlay::changes`] moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// CPL at the last event or sync.
    pub cpl: u8,
    /// Mode at the last event or sync ("real", "protected", "v86"; empty
    /// before the first).
    pub mode: &'static str,
    /// CR0.PG at the last event or sync.
    pub paging: bool,
    /// IOPL at the last event or sync.
    pub iopl: u8,
    /// The most recent events, oldest first.
    pub recent: std::collections::VecDeque<OverlayEvent>,
    /// How many events `recent` keeps.
    pub keep: usize,
    /// Bumped on every change, so a reader redraws only when it moved.
    pub changes: u64,
}

/// One event as the overlay shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayEvent {
    /// Its kind (see [`KINDS`]), for colouring.
    pub kind: &'static str,
    /// [`format_short`]'s line.
    pub text: String,
}

impl Overlay {
    /// An empty overlay keeping the last `keep` events.
    pub fn new(keep: usize) -> Overlay {
        Overlay {
            keep,
            ..Overlay::default()
        }
    }

    /// Take CPL, mode, paging and IOPL from the CPU as it is now (between
    /// events: IOPL changes by POPF or IRET are not events).
    pub fn sync(&mut self, cpu: &Cpu) {
        let state = (
            cpu.cpl(),
            mode_name(cpu.mode()),
            cpu.cr[0] & 0x8000_0000 != 0,
            iopl(cpu),
        );
        if state != (self.cpl, self.mode, self.paging, self.iopl) {
            (self.cpl, self.mode, self.paging, self.iopl) = state;
            self.changes += 1;
        }
    }

    /// Record one described event (the trap log calls this for each line
    /// it keeps).
    pub fn record(&mut self, line: &Line, cpu: &Cpu) {
        self.sync(cpu);
        if self.keep > 0 {
            while self.recent.len() >= self.keep {
                self.recent.pop_front();
            }
            self.recent.push_back(OverlayEvent {
                kind: line.kind,
                text: format_short(line),
            });
        }
        self.changes += 1;
    }

    /// The state line: `CPL 3  protected mode  paging on  IOPL 0`.
    pub fn status_line(&self) -> String {
        let mode = match self.mode {
            "" => "mode unknown",
            "real" => "real mode",
            "v86" => "virtual-8086 mode",
            _ => "protected mode",
        };
        format!(
            "CPL {}  {mode}  paging {}  IOPL {}",
            self.cpl,
            if self.paging { "on" } else { "off" },
            self.iopl
        )
    }
}
