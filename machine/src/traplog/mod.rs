//! The trap log: an [`Observer`] that writes one line per CPU event, in
//! plain words for a projector (text) or as JSON Lines for tools, and keeps
//! the per-run statistics `--stats` prints.
//!
//! Each line carries the cycle count, CS:EIP, the CPL, and the instruction
//! in NASM syntax; page faults carry the faulting linear address and the
//! page walk, and the JSON form has the instruction's linear and physical
//! addresses on every line. [`describe`] is the formatter: the debugger's
//! `log` command uses it too.
//!
//! By concern:
//! - [`filter`]: the event kinds and the `--trap-log-events`/`-cpl` filter;
//! - [`text`]: an event in plain words ([`describe`] with the CPU's state,
//!   [`summary`] without), and the side-effect-free reads it needs (page
//!   walks go through `ringside_mmu::peek`);
//! - [`rules`]: why a trapped instruction trapped and what an untrapped
//!   sensitive one did (the teaching text for the classification);
//! - [`format`]: a described line as projector text, a narrow panel's
//!   line, or JSON Lines (through `serde_json`);
//! - [`stats`]: the `--stats` counters and report;
//! - [`overlay`]: the live overlay panel's model;
//! - this file: the [`TrapLog`] observer that ties them together.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// The instruction classification, for frontends (`ringside explain`).
pub use ringside_cpu::classify;
use ringside_cpu::{Cpu, Event, Observer};

pub mod filter;
pub mod format;
pub mod overlay;
pub mod rules;
pub mod stats;
pub mod text;

pub use filter::{kind, Filter, KINDS};
pub use format::{format_jsonl, format_short, format_text, Format};
pub use overlay::{Overlay, OverlayEvent};
pub use stats::Stats;
pub use text::{describe, nasm, peek_phys, summary, vector_name, Context, Line};

/// The observer: writes filtered lines and keeps statistics.
pub struct TrapLog {
    out: Option<Box<dyn Write + Send>>,
    format: Format,
    filter: Filter,
    ctx: Context,
    stats: Option<Arc<Mutex<Stats>>>,
    overlay: Option<Arc<Mutex<Overlay>>>,
}

impl TrapLog {
    /// A log writing to `out` (or only counting, with `None`).
    pub fn new(out: Option<Box<dyn Write + Send>>, format: Format, filter: Filter) -> TrapLog {
        TrapLog {
            out,
            format,
            filter,
            ctx: Context::default(),
            stats: None,
            overlay: None,
        }
    }

    /// Also keep the last `overlay.keep` events (filtered as the log is)
    /// and the CPU's state for a live overlay.
    pub fn with_overlay(mut self, overlay: Arc<Mutex<Overlay>>) -> TrapLog {
        self.overlay = Some(overlay);
        self
    }

    /// Also keep statistics in `stats`.
    pub fn with_stats(mut self, stats: Arc<Mutex<Stats>>) -> TrapLog {
        self.stats = Some(stats);
        self
    }
}

impl Observer for TrapLog {
    fn event(&mut self, _e: &Event) {}

    fn event_on(&mut self, e: &Event, cpu: &Cpu) {
        if let Some(s) = &self.stats {
            if let Ok(mut s) = s.lock() {
                s.record(e, cpu);
            }
        }
        if self.out.is_none() && self.overlay.is_none() {
            return;
        }
        // TLB fills come by the million in a paging guest and only
        // `tlb-fill` asks for them: when the filter drops them, skip
        // describing them, keeping only what `describe` would have done
        // to the context (a later instruction forgets the last vector).
        if matches!(e, Event::TlbFill { .. }) && !self.filter.kinds.contains(&"tlb-fill") {
            self.ctx.new_instruction(cpu.instructions);
            return;
        }
        let line = describe(e, cpu, &mut self.ctx);
        if !self.filter.keeps(e, line.cpl) {
            return;
        }
        if let Some(o) = &self.overlay {
            if let Ok(mut o) = o.lock() {
                o.record(&line, cpu);
            }
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let text = match self.format {
            Format::Text => format_text(&line),
            Format::Jsonl => format_jsonl(&line),
        };
        // A full disk or closed pipe must not stop the guest.
        let _ = writeln!(out, "{text}");
    }
}

/// A writer into a shared buffer (tests, lessons that compare logs).
#[derive(Clone, Debug, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// The text written so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
