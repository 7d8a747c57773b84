//! The debugger's core, with no user interface: breakpoints (segmented
//! CS:IP, linear, physical; conditional; temporary), watchpoints (linear or
//! physical ranges, read/write/access), catchpoints (an exception or
//! interrupt vector, any ring change or entry to a given CPL, mode switches,
//! task switches, I/O ports), stepping (N instructions, over calls and
//! `INT n`, to an address, out of a function) and an instruction trace.
//!
//! How it stays free when nothing is armed: breakpoints and watchpoints live
//! in the CPU behind the two flags DR7 already uses ([`HostExec`],
//! [`HostWatch`]); catchpoints attach an event observer only while one is
//! armed; port catches wrap the bus only while one is armed. With none of
//! them, [`Debugger::resume`] runs the same slices as [`Machine::run`].
//!
//! The REPL (`ringside run --debug`) and the gdb stub drive it; the command
//! language both share is in [`commands`], the views (registers,
//! disassembly, descriptor tables) in [`view`].

pub mod commands;
pub mod expr;

pub mod view;

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ringside_cpu::{Bus, Event, HostHit, Observer};
use ringside_devices::Pc;

use crate::{Machine, RunOutcome, SLICE_INSTRUCTIONS};
pub use expr::{Expr, ExprError};
/// The CPU types a debugger frontend needs (frontends reach the CPU only
/// through `machine`).
pub use ringside_cpu::{gpr, HostExec, HostWatch, SegReg};

/// What a catchpoint waits for (events from the CPU, or port accesses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Catch {
    /// An exception, hardware interrupt or software interrupt with this
    /// vector.
    Vector(u8),
    /// Any change of CPL.
    AnyRing,
    /// A change of CPL to this level.
    Cpl(u8),
    /// Real ↔ protected, paging on/off, V86 entry/exit.
    Mode,
    /// A hardware task switch.
    Task,
    /// An access to a port in this inclusive range.
    Port(u16, u16),
}

/// What a numbered debugger point does.
#[derive(Clone, Debug)]
pub enum PointKind {
    /// Stop before an instruction.
    Break {
        /// Where.
        at: HostExec,
        /// Stop only when this is non-zero (source text, parsed).
        condition: Option<(String, Expr)>,
        /// Delete after the first stop.
        temporary: bool,
    },
    /// Stop after an instruction that accessed a range.
    Watch(HostWatch),
    /// Stop after an event.
    Catch(Catch),
}

/// A breakpoint, watchpoint or catchpoint, numbered from 1.
#[derive(Clone, Debug)]
pub struct Point {
    /// Its number (`bd`, `be`, `del` use it).
    pub id: u32,
    /// What it does.
    pub kind: PointKind,
    /// Disabled points stay listed but are not armed.
    pub enabled: bool,
    /// Times it stopped the machine.
    pub hits: u64,
}

/// How to resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Until something stops the machine.
    Continue,
    /// This many instructions (a delivered interrupt counts with the
    /// handler's first instruction).
    Step(u64),
    /// One instruction, but a CALL, INT n/INT3/INTO or REP-prefixed string
    /// instruction runs to the instruction after it.
    Next,
    /// Until the current function returns (a RET/RETF/IRET leaves the
    /// stack above where it was).
    Finish,
    /// Until this address (a temporary breakpoint).
    Until(HostExec),
}

/// Why the machine stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// A breakpoint; the instruction there has not run.
    Breakpoint {
        /// Its number.
        id: u32,
    },
    /// A watchpoint; the accessing instruction completed.
    Watchpoint {
        /// Its number.
        id: u32,
        /// Linear address accessed.
        linear: u32,
        /// Physical address.
        physical: u32,
        /// Access size.
        size: u8,
        /// Write (else read).
        write: bool,
    },
    /// A catchpoint on a CPU event (stopped after the event, e.g. at the
    /// first instruction of the exception handler).
    Event {
        /// Its number.
        id: u32,
        /// The event.
        event: Event,
    },
    /// A catchpoint on a port.
    Port {
        /// Its number.
        id: u32,
        /// The port.
        port: u16,
        /// Access size.
        size: u8,
        /// Whether it was a write.
        write: bool,
        /// Value written or read.
        value: u32,
    },
    /// A breakpoint's condition could not be evaluated.
    ConditionError {
        /// Its number.
        id: u32,
        /// Why.
        error: String,
    },
    /// The requested steps were done.
    Stepped,
    /// `finish`: the function returned.
    Returned,
    /// `until`/`next`: the address was reached.
    Reached,
    /// The guest's run ended (exit port, halted for good).
    Guest(RunOutcome),
    /// The instruction limit was reached.
    Limit,
    /// Interrupted by the host (Ctrl-C, gdb's interrupt).
    Interrupted,
    /// Reverse execution reached the oldest snapshot kept: the start of
    /// the recording.
    HistoryStart,
}

/// A port catch while armed: wraps the board as the CPU's bus and
/// remembers the first matching access.
#[derive(Debug, Default)]
pub struct PortCatch {
    ranges: Vec<(u32, u16, u16)>,
    hit: Option<(u32, u16, u8, bool, u32)>,
}

impl PortCatch {
    /// The bus to give the CPU for one slice.
    pub(crate) fn bus<'a>(&'a mut self, pc: &'a mut Pc) -> PortWatchBus<'a> {
        PortWatchBus { pc, catch: self }
    }

    fn check(&mut self, port: u16, size: u8, write: bool, value: u32) {
        if self.hit.is_some() {
            return;
        }
        for &(id, lo, hi) in &self.ranges {
            let last = port.saturating_add(size as u16 - 1);
            if port <= hi && last >= lo {
                self.hit = Some((id, port, size, write, value));
                return;
            }
        }
    }
}

/// The board seen through a [`PortCatch`]. Port I/O makes the CPU yield
/// after the instruction, so a hit is seen right after the access.
pub(crate) struct PortWatchBus<'a> {
    pc: &'a mut Pc,
    catch: &'a mut PortCatch,
}

impl Bus for PortWatchBus<'_> {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        let v = self.pc.io_read(port, size);
        self.catch.check(port, size, false, v);
        v
    }
    fn sync_time(&mut self, cycles: u64) {
        self.pc.sync_time(cycles)
    }
    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        self.catch.check(port, size, true, value);
        self.pc.io_write(port, size, value)
    }
    fn mmio_read(&mut self, addr: u32, size: u8) -> u32 {
        self.pc.mmio_read(addr, size)
    }
    fn mmio_write(&mut self, addr: u32, size: u8, value: u32) {
        self.pc.mmio_write(addr, size, value)
    }
    fn take_smi(&mut self) -> bool {
        self.pc.take_smi()
    }
    fn interrupt_pending(&mut self) -> bool {
        self.pc.interrupt_pending()
    }
    fn acknowledge_interrupt(&mut self) -> u8 {
        self.pc.acknowledge_interrupt()
    }
}

/// Event log and catchpoints, shared with the observer attached to the CPU.
#[derive(Debug, Default)]
struct Shared {
    log: VecDeque<(u64, Event)>,
    logging: bool,
    catches: Vec<(u32, Catch)>,
    hit: Option<(u32, Event)>,
    /// Instruction count when the slice began (events are stamped with it;
    /// exact while stepping).
    stamp: u64,
}

/// How many events `log` keeps.
pub const LOG_CAPACITY: usize = 4096;

impl Shared {
    fn matches(c: Catch, e: &Event) -> bool {
        match (c, e) {
            (
                Catch::Vector(v),
                Event::Exception { vector, .. }
                | Event::Interrupt { vector, .. }
                | Event::SoftwareInterrupt { vector, .. },
            ) => v == *vector,
            (Catch::AnyRing, Event::RingChange { .. }) => true,
            (Catch::Cpl(n), Event::RingChange { to, .. }) => n == *to,
            (Catch::Mode, Event::ModeChange { .. }) => true,
            (Catch::Task, Event::TaskSwitch { .. }) => true,
            _ => false,
        }
    }
}

struct DebugObserver(Arc<Mutex<Shared>>);

impl Observer for DebugObserver {
    fn event(&mut self, e: &Event) {
        let Ok(mut s) = self.0.lock() else { return };
        if s.logging {
            if s.log.len() == LOG_CAPACITY {
                s.log.pop_front();
            }
            let stamp = s.stamp;
            s.log.push_back((stamp, e.clone()));
        }
        if s.hit.is_none() {
            if let Some(&(id, _)) = s.catches.iter().find(|(_, c)| Shared::matches(*c, e)) {
                s.hit = Some((id, e.clone()));
            }
        }
    }

    fn wants_stop(&self) -> bool {
        self.0.lock().map(|s| s.hit.is_some()).unwrap_or(false)
    }
}

/// An instruction trace being written.
struct Trace {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

/// The debugger: points, the event log, the trace, and how to resume.
pub struct Debugger {
    points: Vec<Point>,
    next_id: u32,
    shared: Arc<Mutex<Shared>>,
    observer_attached: bool,
    trace: Option<Trace>,
    interrupt: Arc<AtomicBool>,
    /// Stop once this many instructions have retired since power-on.
    pub max_instructions: Option<u64>,
    /// Watch indices as armed in the CPU → point ids.
    armed_watches: Vec<u32>,
    /// Called between slices (and steps) while the guest runs.
    slice_hook: Option<SliceHook>,
    /// Snapshots for reverse stepping, when recording.
    reverse: Option<Reverse>,
}

/// A new snapshot for reverse stepping is taken when a command resumes
/// the guest, or during a long `s N`, once this many instructions have run
/// since the last one.
pub const SNAPSHOT_EVERY: u64 = 100_000;

/// While the guest runs (`c`), a snapshot every this many instructions
/// bounds how far `rs` replays (about 70 ms per 128 MiB of RAM, a few
/// seconds of guest time apart: ~2% of the speed).
pub const SNAPSHOT_EVERY_RUNNING: u64 = 500_000_000;

/// How many snapshots reverse stepping keeps (each holds all of RAM)...
pub const SNAPSHOTS_KEPT: usize = 4;

/// ...and at most this many bytes of them (the newest is always kept).
pub const SNAPSHOT_BYTES_KEPT: usize = 1 << 30;

/// How many single-step boundaries reverse stepping remembers.
const STEPS_KEPT: usize = 1 << 20;

/// A point of the guest's execution: (cycles, instructions). Cycles grow
/// at every step, instructions not always (a step that waits out HLT and
/// enters an interrupt handler retires none).
type Position = (u64, u64);

fn position(m: &Machine) -> Position {
    (m.cpu.cycles, m.cpu.instructions)
}

/// Periodic in-memory snapshots (postcard bytes), oldest first, each with
/// its position; and the positions of the last single-step boundaries
/// (`s`), so that `rs` goes back to exactly the earlier stops.
#[derive(Default)]
struct Reverse {
    snapshots: VecDeque<(Position, Vec<u8>)>,
    steps: VecDeque<Position>,
}

impl Reverse {
    /// Take a snapshot if the last one is [`SNAPSHOT_EVERY`] instructions
    /// behind (or there is none).
    fn maybe_take(&mut self, m: &Machine) {
        self.take_every(m, SNAPSHOT_EVERY);
    }

    /// Take a snapshot if the last one is `every` instructions behind (or
    /// there is none).
    fn take_every(&mut self, m: &Machine, every: u64) {
        let now = position(m);
        let due = match self.snapshots.back() {
            Some(&(at, _)) => now.0 < at.0 || now.1 - at.1 >= every,
            None => true,
        };
        if !due {
            return;
        }
        match m.save_snapshot() {
            Ok(bytes) => {
                // A snapshot ahead of here belongs to a future we left.
                self.snapshots.retain(|(at, _)| at.0 < now.0);
                if self.snapshots.len() == SNAPSHOTS_KEPT {
                    self.snapshots.pop_front();
                }
                self.snapshots.push_back((now, bytes));
                let mut total: usize = self.snapshots.iter().map(|(_, b)| b.len()).sum();
                while total > SNAPSHOT_BYTES_KEPT && self.snapshots.len() > 1 {
                    if let Some((_, b)) = self.snapshots.pop_front() {
                        total -= b.len();
                    }
                }
            }
            Err(e) => log::warn!("reverse stepping: {e}"),
        }
    }

    /// Remember a single-step boundary.
    fn step_from(&mut self, m: &Machine) {
        if self.steps.len() == STEPS_KEPT {
            self.steps.pop_front();
        }
        self.steps.push_back(position(m));
    }
}

/// What a frontend runs between slices while the guest runs under the
/// debugger: a window takes frames and hands over keys here.
pub type SliceHook = Box<dyn FnMut(&mut Machine) + Send>;

impl Default for Debugger {
    fn default() -> Self {
        Debugger::new()
    }
}

impl std::fmt::Debug for Debugger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Debugger")
            .field("points", &self.points)
            .finish_non_exhaustive()
    }
}

/// Internal target of `next`/`until`: where, and the lowest stack pointer
/// that counts (so a recursive call's return does not stop `next`).
#[derive(Clone, Copy)]
struct Target {
    at: HostExec,
    min_sp: Option<u32>,
}

impl Debugger {
    /// A debugger with nothing armed.
    pub fn new() -> Debugger {
        Debugger {
            points: Vec::new(),
            next_id: 1,
            shared: Arc::default(),
            observer_attached: false,
            trace: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            max_instructions: None,
            armed_watches: Vec::new(),
            slice_hook: None,
            reverse: None,
        }
    }

    /// Record snapshots for reverse stepping (`rs`) from now on, or stop
    /// and drop them. Off by default: each snapshot copies all of RAM.
    pub fn set_reverse(&mut self, on: bool) {
        match (on, self.reverse.is_some()) {
            (true, false) => self.reverse = Some(Reverse::default()),
            (false, _) => self.reverse = None,
            _ => {}
        }
    }

    /// Whether snapshots for reverse stepping are being recorded.
    pub fn reverse_enabled(&self) -> bool {
        self.reverse.is_some()
    }

    /// Go back `n` steps: to where the `n`-th last single step (`s`)
    /// started, or, beyond the steps remembered (after `c`, `n`, `finish`),
    /// to just after the instruction `n` instructions back retired. The
    /// nearest snapshot at or before that point is restored and the guest
    /// re-executed from it (in slices to the instruction count, then single
    /// steps to the exact stop), with every point, the trace
    /// and the slice hook set aside. The machine is deterministic, so this
    /// is the state it had then.
    pub fn reverse_step(&mut self, m: &mut Machine, n: u64) -> Result<StopCause, String> {
        let Some(rev) = self.reverse.as_mut() else {
            return Err("reverse stepping is off (`rec on` starts recording)".into());
        };
        let now = position(m);
        let by_steps = n as usize <= rev.steps.len() && n > 0;
        let target: Position = if by_steps {
            rev.steps[rev.steps.len() - n as usize]
        } else {
            match now.1.checked_sub(n) {
                Some(i) => (0, i),
                None => return Err(format!("only {} instructions have run", now.1)),
            }
        };
        let fits = |at: &Position| {
            if by_steps {
                at.0 <= target.0
            } else {
                at.1 <= target.1
            }
        };
        let Some(i) = rev.snapshots.iter().rposition(|(at, _)| fits(at)) else {
            return Err(match rev.snapshots.front() {
                Some((at, _)) => format!(
                    "no snapshot that far back: the oldest is at instruction {}, {} back",
                    at.1,
                    now.1 - at.1
                ),
                None => "no snapshot yet: reverse stepping starts from the next command".into(),
            });
        };
        if by_steps {
            let keep = rev.steps.len() - n as usize;
            rev.steps.truncate(keep);
        } else {
            rev.steps.clear();
        }
        self.replay(m, i, target, by_steps)?;
        Ok(StopCause::Stepped)
    }

    /// Restore snapshot `i` (dropping the later ones: they belong to a
    /// future we leave) and re-execute to `target`: its cycle count with
    /// `by_cycles` (an exact earlier stop), else its instruction count
    /// (just after that instruction retired). Every point, the trace and
    /// the slice hook are set aside meanwhile.
    fn replay(
        &mut self,
        m: &mut Machine,
        i: usize,
        target: Position,
        by_cycles: bool,
    ) -> Result<(), String> {
        let Some(rev) = self.reverse.as_mut() else {
            return Err("reverse stepping is off (`rec on` starts recording)".into());
        };
        let Some((at, bytes)) = rev.snapshots.get(i) else {
            return Err("no such snapshot".into());
        };
        let at = *at;
        m.restore_snapshot(bytes).map_err(|e| e.to_string())?;
        rev.snapshots.truncate(i + 1);
        let reverse = self.reverse.take();
        let points = std::mem::take(&mut self.points);
        let trace = self.trace.take();
        let hook = self.slice_hook.take();
        let limit = self.max_instructions.take();
        let mut cause = StopCause::Stepped;
        // Slices and single steps give the same machine: run in slices to
        // the target's instruction count, then step to the exact stop.
        if m.cpu.instructions < target.1 {
            self.disarm(m);
            let out = m.run(crate::RunLimits {
                max_instructions: Some(target.1),
            });
            if out != RunOutcome::MaxInstructions {
                cause = StopCause::Guest(out);
            }
        }
        let short = |m: &Machine| {
            if by_cycles {
                m.cpu.cycles < target.0
            } else {
                m.cpu.instructions < target.1
            }
        };
        while cause == StopCause::Stepped && short(m) {
            cause = self.resume(m, Resume::Step(1));
            if cause != StopCause::Stepped {
                break;
            }
        }
        self.reverse = reverse;
        self.points = points;
        self.trace = trace;
        self.slice_hook = hook;
        self.max_instructions = limit;
        let reached = position(m);
        let exact = if by_cycles {
            reached == target
        } else {
            reached.1 == target.1
        };
        if !exact {
            let why = view::describe_stop(m, &cause);
            return Err(format!(
                "the replay from instruction {} stopped at instruction {} ({why}), not {}",
                at.1, reached.1, target.1
            ));
        }
        Ok(())
    }

    /// Run backwards to the previous stop a breakpoint, watchpoint or
    /// catchpoint would have made (`rc`, gdb's `reverse-continue`), or to
    /// the start of the recording ([`StopCause::HistoryStart`]) when there
    /// is none. From the newest snapshot before here, the guest is
    /// re-executed with the points armed up to here, noting every stop; if
    /// none, the snapshot before that one, and so on. A breakpoint (or an
    /// event catchpoint) stops where a forward run stopped; a watchpoint
    /// or a port catch stops *before* the instruction that made the
    /// access, so the old value is there to see, as gdb expects going
    /// backwards (after a watchpoint stop, the first one back is that same
    /// access).
    pub fn reverse_continue(&mut self, m: &mut Machine) -> Result<StopCause, String> {
        let Some(rev) = self.reverse.as_ref() else {
            return Err("reverse stepping is off (`rec on` starts recording)".into());
        };
        let now = position(m);
        let Some(newest) = rev.snapshots.iter().rposition(|(at, _)| at.0 < now.0) else {
            return match rev.snapshots.front() {
                // Already at the start of the recording.
                Some((at, _)) if at.0 == now.0 => Ok(StopCause::HistoryStart),
                _ => Err("no snapshot yet: reverse execution starts from the next command".into()),
            };
        };
        let mut end = now;
        for i in (0..=newest).rev() {
            let from = self.reverse.as_ref().map(|r| r.snapshots[i].0);
            if let Some((hit, cause)) = self.last_stop_between(m, i, end)? {
                let before_access =
                    matches!(cause, StopCause::Watchpoint { .. } | StopCause::Port { .. });
                let target = if before_access {
                    self.position_before(m, i, hit)?
                } else {
                    hit
                };
                self.replay(m, i, target, true)?;
                if let Some(r) = self.reverse.as_mut() {
                    r.steps.clear();
                }
                let id = match &cause {
                    StopCause::Breakpoint { id }
                    | StopCause::ConditionError { id, .. }
                    | StopCause::Watchpoint { id, .. }
                    | StopCause::Event { id, .. }
                    | StopCause::Port { id, .. } => Some(*id),
                    _ => None,
                };
                if let Some(id) = id {
                    self.count_hit(id);
                }
                return Ok(cause);
            }
            end = from.unwrap_or(end);
        }
        self.replay(m, 0, end, true)?;
        if let Some(r) = self.reverse.as_mut() {
            r.steps.clear();
        }
        Ok(StopCause::HistoryStart)
    }

    /// From snapshot `i`, run forward with the points armed to `end`, and
    /// return the last stop before `end` (its position and cause; a
    /// watchpoint's or port catch's just after the access, which may be
    /// `end` itself). The
    /// points come back as they were (hit counts, temporary ones).
    fn last_stop_between(
        &mut self,
        m: &mut Machine,
        i: usize,
        end: Position,
    ) -> Result<Option<(Position, StopCause)>, String> {
        let Some(rev) = self.reverse.as_mut() else {
            return Err("reverse stepping is off (`rec on` starts recording)".into());
        };
        let Some((_, bytes)) = rev.snapshots.get(i) else {
            return Err("no such snapshot".into());
        };
        m.restore_snapshot(bytes).map_err(|e| e.to_string())?;
        let reverse = self.reverse.take();
        let points = self.points.clone();
        let trace = self.trace.take();
        let hook = self.slice_hook.take();
        let limit = self.max_instructions.replace(end.1);
        // A forward run skips a breakpoint where it starts, but a stop
        // there (where the user continued from) is a stop all the same.
        let mut last = self
            .breakpoint_here(m)
            .map(|id| (position(m), StopCause::Breakpoint { id }));
        loop {
            let cause = self.resume(m, Resume::Continue);
            let at = position(m);
            let stop = matches!(
                cause,
                StopCause::Breakpoint { .. }
                    | StopCause::ConditionError { .. }
                    | StopCause::Watchpoint { .. }
                    | StopCause::Event { .. }
                    | StopCause::Port { .. }
            );
            // An access is undone going back from just after it: a stop
            // at `end` itself counts for a watchpoint or a port catch
            // (where gdb's reverse-continue after a watchpoint stop finds
            // the same write), not for a breakpoint.
            let access = matches!(cause, StopCause::Watchpoint { .. } | StopCause::Port { .. });
            if !stop || at.0 > end.0 || (at.0 == end.0 && !access) {
                break;
            }
            last = Some((at, cause));
        }
        self.reverse = reverse;
        self.points = points;
        self.trace = trace;
        self.slice_hook = hook;
        self.max_instructions = limit;
        Ok(last)
    }

    /// The first enabled breakpoint at CS:EIP whose condition (if any) is
    /// true.
    fn breakpoint_here(&mut self, m: &mut Machine) -> Option<u32> {
        let cs = m.cpu.segs[SegReg::Cs as usize].selector;
        let eip = m.cpu.eip;
        let linear = view::current_linear(m);
        let phys = m.cpu.debug_translate(linear);
        let found: Vec<(u32, Option<Expr>)> = self
            .points
            .iter()
            .filter(|p| p.enabled)
            .filter_map(|p| match &p.kind {
                PointKind::Break { at, condition, .. } => {
                    let here = match *at {
                        HostExec::Segmented(s, o) => s == cs && o == eip,
                        HostExec::Linear(l) => l == linear,
                        HostExec::Physical(p) => phys == Some(p),
                    };
                    here.then(|| (p.id, condition.as_ref().map(|(_, e)| e.clone())))
                }
                _ => None,
            })
            .collect();
        found.into_iter().find_map(|(id, cond)| match cond {
            None => Some(id),
            Some(e) => {
                matches!(e.eval(&mut view::MachineContext(m)), Ok(v) if v != 0).then_some(id)
            }
        })
    }

    /// The position from which one step reached `after` (the step whose
    /// access stopped a watchpoint there), replaying from snapshot `i`.
    fn position_before(
        &mut self,
        m: &mut Machine,
        i: usize,
        after: Position,
    ) -> Result<Position, String> {
        self.replay(m, i, (0, after.1.saturating_sub(1)), false)?;
        let reverse = self.reverse.take();
        let points = std::mem::take(&mut self.points);
        let limit = self.max_instructions.take();
        let mut found = Err(format!(
            "no step reaches instruction {} on the replay",
            after.1
        ));
        while m.cpu.cycles < after.0 {
            let before = position(m);
            if self.resume(m, Resume::Step(1)) != StopCause::Stepped {
                break;
            }
            if m.cpu.cycles >= after.0 {
                found = Ok(before);
            }
        }
        self.reverse = reverse;
        self.points = points;
        self.max_instructions = limit;
        found
    }

    /// Set (or clear) the hook run between slices while the guest runs
    /// (every slice of `c`, every step of `s N`). Nothing runs when unset.
    pub fn set_slice_hook(&mut self, hook: Option<SliceHook>) {
        self.slice_hook = hook;
    }

    /// A flag that stops a running [`Debugger::resume`] between slices when
    /// set (Ctrl-C handlers, the gdb stub's interrupt packet).
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// All points, in creation order.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Add a point; returns its number.
    pub fn add(&mut self, kind: PointKind) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.points.push(Point {
            id,
            kind,
            enabled: true,
            hits: 0,
        });
        id
    }

    /// Add a breakpoint with an optional condition (expression source).
    pub fn add_breakpoint(
        &mut self,
        at: HostExec,
        condition: Option<&str>,
        temporary: bool,
    ) -> Result<u32, ExprError> {
        let condition = match condition {
            Some(src) => Some((src.trim().to_string(), expr::parse(src)?)),
            None => None,
        };
        Ok(self.add(PointKind::Break {
            at,
            condition,
            temporary,
        }))
    }

    /// Delete a point; false when there is no such number.
    pub fn delete(&mut self, id: u32) -> bool {
        let n = self.points.len();
        self.points.retain(|p| p.id != id);
        self.points.len() != n
    }

    /// Delete the breakpoints at exactly `at` (gdb's `z0`); how many.
    pub fn delete_breakpoints_at(&mut self, at: HostExec) -> usize {
        let n = self.points.len();
        self.points
            .retain(|p| !matches!(p.kind, PointKind::Break { at: a, .. } if a == at));
        n - self.points.len()
    }

    /// Delete the watchpoints equal to `w` (gdb's `z2`–`z4`); how many.
    pub fn delete_watch(&mut self, w: HostWatch) -> usize {
        let n = self.points.len();
        self.points
            .retain(|p| !matches!(p.kind, PointKind::Watch(x) if x == w));
        n - self.points.len()
    }

    /// Enable or disable a point; false when there is no such number.
    pub fn set_enabled(&mut self, id: u32, enabled: bool) -> bool {
        match self.points.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.enabled = enabled;
                true
            }
            None => false,
        }
    }

    /// Start or stop recording CPU events for [`Debugger::log`]. Recording
    /// attaches an observer, which costs speed while it is on.
    pub fn set_logging(&mut self, on: bool) {
        if let Ok(mut s) = self.shared.lock() {
            s.logging = on;
            if !on {
                s.log.clear();
            }
        }
    }

    /// Whether events are being recorded.
    pub fn logging(&self) -> bool {
        self.shared.lock().map(|s| s.logging).unwrap_or(false)
    }

    /// The last `n` recorded events, oldest first, each with the
    /// instruction count at which its slice began (exact while stepping).
    pub fn log(&self, n: usize) -> Vec<(u64, Event)> {
        self.shared
            .lock()
            .map(|s| s.log.iter().rev().take(n).rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Start writing every executed instruction to `path` (execution then
    /// goes one instruction at a time), or stop with `None`.
    pub fn set_trace(&mut self, path: Option<&Path>) -> std::io::Result<()> {
        if let Some(mut t) = self.trace.take() {
            t.out.flush()?;
        }
        if let Some(p) = path {
            let f = std::fs::File::create(p)?;
            self.trace = Some(Trace {
                path: p.to_path_buf(),
                out: std::io::BufWriter::new(f),
            });
        }
        Ok(())
    }

    /// The trace file, when tracing.
    pub fn trace_path(&self) -> Option<&Path> {
        self.trace.as_ref().map(|t| t.path.as_path())
    }

    /// Push the armed points into the CPU (and the observer onto it); with
    /// `exec` false only watchpoints and catchpoints are armed.
    fn arm(&mut self, m: &mut Machine, exec: bool, target: Option<Target>) -> PortCatch {
        let mut execs = Vec::new();
        let mut watches = Vec::new();
        let mut ports = PortCatch::default();
        let mut catches = Vec::new();
        self.armed_watches.clear();
        for p in self.points.iter().filter(|p| p.enabled) {
            match p.kind {
                PointKind::Break { at, .. } if exec => execs.push(at),
                PointKind::Break { .. } => {}
                PointKind::Watch(w) => {
                    watches.push(w);
                    self.armed_watches.push(p.id);
                }
                PointKind::Catch(Catch::Port(lo, hi)) => ports.ranges.push((p.id, lo, hi)),
                PointKind::Catch(c) => catches.push((p.id, c)),
            }
        }
        if let Some(t) = target {
            execs.push(t.at);
        }
        m.cpu.set_host_debug(&execs, &watches);
        let want_observer = {
            let mut s = match self.shared.lock() {
                Ok(s) => s,
                Err(p) => p.into_inner(),
            };
            s.catches = catches;
            s.hit = None;
            s.stamp = m.cpu.instructions;
            s.logging || !s.catches.is_empty()
        };
        if want_observer != self.observer_attached {
            let o: Option<Box<dyn Observer + Send>> = if want_observer {
                Some(Box::new(DebugObserver(self.shared.clone())))
            } else {
                None
            };
            m.cpu.set_observer(o);
            self.observer_attached = want_observer;
        }
        ports
    }

    /// Take everything off the CPU (for a plain [`Machine::run`] after
    /// debugging, e.g. when gdb detaches).
    pub fn disarm(&mut self, m: &mut Machine) {
        m.cpu.set_host_debug(&[], &[]);
        if self.observer_attached {
            m.cpu.set_observer(None);
            self.observer_attached = false;
        }
    }

    /// Resume the machine and run until something stops it.
    pub fn resume(&mut self, m: &mut Machine, how: Resume) -> StopCause {
        self.resume_polled(m, how, &mut || false)
    }

    /// [`Debugger::resume`], also stopping with [`StopCause::Interrupted`]
    /// when `poll` says so (asked between slices and steps: the gdb stub
    /// looks for an interrupt packet there).
    pub fn resume_polled(
        &mut self,
        m: &mut Machine,
        how: Resume,
        poll: &mut dyn FnMut() -> bool,
    ) -> StopCause {
        self.interrupt.store(false, Ordering::Relaxed);
        if let Some(r) = self.reverse.as_mut() {
            r.maybe_take(m);
            if !matches!(how, Resume::Step(_)) {
                // Its boundaries are not recorded: `rs` counts
                // instructions back past it.
                r.steps.clear();
            }
        }
        // A stale hit (e.g. from an interrupted run) must not stop us now.
        m.cpu.take_host_hit();
        let cause = match how {
            Resume::Continue => self.go(m, None, poll),
            Resume::Until(at) => self.go(m, Some(Target { at, min_sp: None }), poll),
            Resume::Step(n) => {
                let mut ports = self.arm(m, false, None);
                let mut cause = StopCause::Stepped;
                for _ in 0..n {
                    if let Some(r) = self.reverse.as_mut() {
                        r.step_from(m);
                    }
                    if let Some(c) = self.step_one(m, &mut ports, true, None, poll) {
                        cause = c;
                        break;
                    }
                    if let Some(h) = self.slice_hook.as_mut() {
                        h(m);
                    }
                    if let Some(r) = self.reverse.as_mut() {
                        r.maybe_take(m);
                    }
                }
                cause
            }
            Resume::Next => match view::step_over_target(m) {
                Some(at) => {
                    let min_sp = Some(stack_pointer(m));
                    self.go(m, Some(Target { at, min_sp }), poll)
                }
                None => self.resume_polled(m, Resume::Step(1), poll),
            },
            Resume::Finish => self.finish(m, poll),
        };
        if let Some(t) = self.trace.as_mut() {
            let _ = t.out.flush();
        }
        cause
    }

    /// Continue (in slices, or instruction by instruction while tracing).
    fn go(
        &mut self,
        m: &mut Machine,
        target: Option<Target>,
        poll: &mut dyn FnMut() -> bool,
    ) -> StopCause {
        let mut ports = self.arm(m, true, target);
        let here = view::current_linear(m);
        m.cpu.skip_host_breakpoint_at(here);
        let port_armed = !ports.ranges.is_empty();
        loop {
            if self.interrupt.swap(false, Ordering::Relaxed) || poll() {
                return StopCause::Interrupted;
            }
            if let Some(v) = m.pc.exit_request() {
                return StopCause::Guest(RunOutcome::Exit(v));
            }
            if self.trace.is_some() {
                if let Some(c) = self.step_one(m, &mut ports, false, target, poll) {
                    if c != StopCause::Stepped {
                        return c;
                    }
                }
                continue;
            }
            let budget = match self.max_instructions {
                Some(max) if m.cpu.instructions >= max => return StopCause::Limit,
                Some(max) => (max - m.cpu.instructions).min(SLICE_INSTRUCTIONS),
                None => SLICE_INSTRUCTIONS,
            };
            if let Ok(mut s) = self.shared.lock() {
                s.stamp = m.cpu.instructions;
            }
            m.cpu.rearm_host_debug();
            let out = m.slice(budget, port_armed.then_some(&mut ports), false);
            if let Some(h) = self.slice_hook.as_mut() {
                h(m);
            }
            if let Some(r) = self.reverse.as_mut() {
                r.take_every(m, SNAPSHOT_EVERY_RUNNING);
            }
            if let Some(c) = self.check_hits(m, &mut ports, target) {
                return c;
            }
            if let Some(o) = out {
                return StopCause::Guest(o);
            }
        }
    }

    /// Execute one instruction (waiting out HLT for the next interrupt),
    /// tracing it; `Some` when something stopped the machine (else the
    /// caller's step is done).
    /// With `step` the instruction here runs even if a breakpoint is on it
    /// (`s`); without, breakpoints and `target` stop it as in `c`.
    fn step_one(
        &mut self,
        m: &mut Machine,
        ports: &mut PortCatch,
        step: bool,
        target: Option<Target>,
        poll: &mut dyn FnMut() -> bool,
    ) -> Option<StopCause> {
        // A step of a REP string instruction is one iteration: EIP and the
        // instruction count stay while iterations remain, (E)CX moves.
        let before = (
            m.cpu.instructions,
            m.cpu.eip,
            m.cpu.segs[SegReg::Cs as usize].selector,
            m.cpu.regs,
        );
        if let Some(max) = self.max_instructions {
            if m.cpu.instructions >= max {
                return Some(StopCause::Limit);
            }
        }
        // Written once the instruction has run (a breakpoint may stop it).
        let mut line = self.trace.is_some().then(|| view::trace_line(m));
        let here = view::current_linear(m);
        let port_armed = !ports.ranges.is_empty();
        // A HLT waits for a device: each round skips to the next event.
        for _ in 0..100_000 {
            if let Some(v) = m.pc.exit_request() {
                return Some(StopCause::Guest(RunOutcome::Exit(v)));
            }
            if let Ok(mut s) = self.shared.lock() {
                s.stamp = m.cpu.instructions;
            }
            if step {
                m.cpu.skip_host_breakpoint_at(here);
            }
            m.cpu.rearm_host_debug();
            let out = m.slice(1, port_armed.then_some(&mut *ports), true);
            if m.cpu.instructions != before.0 {
                if let (Some(l), Some(t)) = (line.take(), self.trace.as_mut()) {
                    let _ = writeln!(t.out, "{l}");
                }
            }
            if let Some(c) = self.check_hits(m, ports, target) {
                return Some(c);
            }
            if let Some(o) = out {
                return Some(StopCause::Guest(o));
            }
            let now = (
                m.cpu.instructions,
                m.cpu.eip,
                m.cpu.segs[SegReg::Cs as usize].selector,
                m.cpu.regs,
            );
            if now != before || m.cpu.is_shutdown() {
                return None;
            }
            if self.interrupt.swap(false, Ordering::Relaxed) || poll() {
                return Some(StopCause::Interrupted);
            }
        }
        None
    }

    /// `finish`: step until a return leaves the stack above where it was.
    fn finish(&mut self, m: &mut Machine, poll: &mut dyn FnMut() -> bool) -> StopCause {
        use iced_x86::Mnemonic::*;
        let mut ports = self.arm(m, true, None);
        let start_sp = stack_pointer(m);
        let start_ss = m.cpu.segs[SegReg::Ss as usize].selector;
        let here = view::current_linear(m);
        m.cpu.skip_host_breakpoint_at(here);
        loop {
            if self.interrupt.swap(false, Ordering::Relaxed) || poll() {
                return StopCause::Interrupted;
            }
            let is_ret = matches!(
                view::current_instruction(m).map(|i| i.mnemonic()),
                Some(Ret | Retf | Iret | Iretd)
            );
            if let Some(c) = self.step_one(m, &mut ports, false, None, poll) {
                return c;
            }
            let ss = m.cpu.segs[SegReg::Ss as usize].selector;
            if is_ret && (ss != start_ss || stack_pointer(m) > start_sp) {
                return StopCause::Returned;
            }
        }
    }

    /// After a slice: turn the CPU's host hit, a port hit or a catchpoint
    /// into a stop, or `None` to go on (a false condition).
    fn check_hits(
        &mut self,
        m: &mut Machine,
        ports: &mut PortCatch,
        target: Option<Target>,
    ) -> Option<StopCause> {
        let hit = m.cpu.take_host_hit();
        if let Some((id, port, size, write, value)) = ports.hit.take() {
            self.count_hit(id);
            return Some(StopCause::Port {
                id,
                port,
                size,
                write,
                value,
            });
        }
        match hit? {
            HostHit::Exec { linear } => {
                let cs = m.cpu.segs[SegReg::Cs as usize].selector;
                let eip = m.cpu.eip;
                let phys = m.cpu.debug_translate(linear);
                let matches = |at: HostExec| match at {
                    HostExec::Segmented(s, o) => s == cs && o == eip,
                    HostExec::Linear(l) => l == linear,
                    HostExec::Physical(p) => phys == Some(p),
                };
                let mut stop = None;
                let mut temp_done = Vec::new();
                let ids: Vec<u32> = self
                    .points
                    .iter()
                    .filter(|p| p.enabled)
                    .filter(|p| matches!(p.kind, PointKind::Break { at, .. } if matches(at)))
                    .map(|p| p.id)
                    .collect();
                for id in ids {
                    let Some(p) = self.points.iter().find(|p| p.id == id) else {
                        continue;
                    };
                    let PointKind::Break {
                        condition,
                        temporary,
                        ..
                    } = &p.kind
                    else {
                        continue;
                    };
                    let temporary = *temporary;
                    let verdict = match condition {
                        None => Ok(true),
                        Some((_, e)) => {
                            let e = e.clone();
                            e.eval(&mut view::MachineContext(m)).map(|v| v != 0)
                        }
                    };
                    match verdict {
                        Ok(true) => {
                            self.count_hit(id);
                            if temporary {
                                temp_done.push(id);
                            }
                            stop.get_or_insert(StopCause::Breakpoint { id });
                        }
                        Ok(false) => {}
                        Err(e) => {
                            stop.get_or_insert(StopCause::ConditionError { id, error: e.0 });
                        }
                    }
                }
                for id in temp_done {
                    self.delete(id);
                }
                if stop.is_none() {
                    if let Some(t) = target {
                        let sp_ok = t.min_sp.is_none_or(|min| stack_pointer(m) >= min);
                        if matches(t.at) && sp_ok {
                            stop = Some(StopCause::Reached);
                        }
                    }
                }
                if stop.is_none() {
                    // Nothing (or only a false condition) here: go on.
                    m.cpu.skip_host_breakpoint_at(linear);
                }
                stop
            }
            HostHit::Watch {
                index,
                linear,
                physical,
                size,
                write,
            } => {
                let id = *self.armed_watches.get(index)?;
                self.count_hit(id);
                Some(StopCause::Watchpoint {
                    id,
                    linear,
                    physical,
                    size,
                    write,
                })
            }
            HostHit::Event => {
                let (id, event) = self.shared.lock().ok()?.hit.take()?;
                self.count_hit(id);
                Some(StopCause::Event { id, event })
            }
        }
    }

    fn count_hit(&mut self, id: u32) {
        if let Some(p) = self.points.iter_mut().find(|p| p.id == id) {
            p.hits += 1;
        }
    }
}

/// SP or ESP, as SS.B says the stack is addressed.
fn stack_pointer(m: &Machine) -> u32 {
    let esp = m.cpu.regs[ringside_cpu::gpr::ESP];
    if m.cpu.segs[SegReg::Ss as usize].big() {
        esp
    } else {
        esp & 0xFFFF
    }
}

#[cfg(test)]
mod tests;
