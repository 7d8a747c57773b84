//! `ringside lesson`: the built-in lesson guests (roms/build/lessons.rs),
//! and the trap-log and statistics options every guest run shares
//! (`--trap-log`, `--trap-log-format`, `--trap-log-events`,
//! `--trap-log-cpl`, `--stats`).
//!
//! A lesson prints its explanations on the debug console and pauses with a
//! ring-0 HLT while IF = 0. In a window (the default when a display is
//! available) the explanations appear on the window's lesson screen with
//! the overlay panel below, and a pause waits for Space or Enter in the
//! window; headless, the text goes to stdout and a pause waits for Enter
//! in the terminal. `--no-pause` runs straight through either way. The
//! two differ only in their [`LessonHooks`].

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use ringside_machine::traplog::{Filter, Format, Overlay, Stats, TrapLog};
use ringside_machine::vga::Frame;
use ringside_machine::{Console, Machine, MachineConfig, RunLimits, RunOutcome};

use crate::overlay::{self, LessonScreen, Placement};
use crate::screenshot;

/// The trap log and statistics options.
#[derive(Args, Debug, Clone, Default)]
pub struct TrapLogArgs {
    /// Write one line per CPU event (exceptions, interrupts, ring and mode
    /// changes, traps, sensitive instructions that did not trap, TLB
    /// flushes) to PATH or `stderr`.
    #[arg(long, value_name = "PATH|stderr")]
    pub trap_log: Option<String>,
    /// `text` (aligned plain words, for a projector) or `jsonl`.
    #[arg(long, value_name = "text|jsonl", default_value = "text",
          value_parser = parse_format)]
    pub trap_log_format: LogFormat,
    /// Event kinds to log, comma-separated: exception, interrupt, int,
    /// ring, mode, task, trap, sensitive, cr, tlb-flush, tlb-fill, hypercall,
    /// smm, or `all`;
    /// `-KIND` drops one from the default (all but tlb-fill).
    #[arg(long, value_name = "KINDS", allow_hyphen_values = true)]
    pub trap_log_events: Option<String>,
    /// Only events at these CPLs (comma-separated, 0-3).
    #[arg(long, value_name = "CPLS")]
    pub trap_log_cpl: Option<String>,
    /// Print per-run statistics at exit: instructions per CPL, traps by
    /// vector, ring transitions, sensitive instructions that did not trap,
    /// TLB hits/misses/flushes, page faults.
    #[arg(long)]
    pub stats: bool,
}

/// `--trap-log-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogFormat(pub Format);

fn parse_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat(Format::Text)),
        "jsonl" | "json" => Ok(LogFormat(Format::Jsonl)),
        _ => Err(format!("`{s}` is not a trap-log format (text or jsonl)")),
    }
}

/// What [`TrapLogArgs::attach`] set up, to finish at the end of the run.
pub struct Attached {
    stats: Option<Arc<Mutex<Stats>>>,
    overlay: Option<Arc<Mutex<Overlay>>>,
}

impl TrapLogArgs {
    /// Whether any option asks for an observer.
    pub fn active(&self) -> bool {
        self.trap_log.is_some() || self.stats
    }

    /// Attach the trap log (and statistics) to the machine's CPU. With
    /// neither option the CPU gets no observer and runs at full speed.
    /// With them, the log also feeds an overlay ([`Attached::overlay`]),
    /// so the window's panel shows what the log writes.
    pub fn attach(&self, m: &mut Machine) -> Result<Attached> {
        self.attach_with(m, None)
    }

    /// [`TrapLogArgs::attach`], feeding `overlay` (always, even without
    /// any option: then the log writes nothing and only keeps the overlay).
    pub fn attach_with(
        &self,
        m: &mut Machine,
        overlay: Option<Arc<Mutex<Overlay>>>,
    ) -> Result<Attached> {
        if !self.active() && overlay.is_none() {
            return Ok(Attached {
                stats: None,
                overlay: None,
            });
        }
        let mut filter = Filter::default();
        if let Some(k) = &self.trap_log_events {
            filter
                .parse_kinds(k)
                .map_err(|e| anyhow!("--trap-log-events: {e}"))?;
        }
        if let Some(c) = &self.trap_log_cpl {
            filter
                .parse_cpls(c)
                .map_err(|e| anyhow!("--trap-log-cpl: {e}"))?;
        }
        let out: Option<Box<dyn Write + Send>> = match self.trap_log.as_deref() {
            None => None,
            Some("stderr") => Some(Box::new(std::io::stderr())),
            Some("stdout") => Some(Box::new(std::io::stdout())),
            Some(path) => {
                let f = std::fs::File::create(path)
                    .map_err(|e| anyhow!("{path}: cannot create the trap log: {e}"))?;
                Some(Box::new(std::io::BufWriter::new(f)))
            }
        };
        let mut log = TrapLog::new(out, self.trap_log_format.0, filter);
        let stats = self.stats.then(|| Arc::new(Mutex::new(Stats::new())));
        if let Some(s) = &stats {
            log = log.with_stats(s.clone());
        }
        let overlay =
            overlay.unwrap_or_else(|| Arc::new(Mutex::new(Overlay::new(overlay::KEEP_EVENTS))));
        if let Ok(mut o) = overlay.lock() {
            o.sync(&m.cpu);
        }
        log = log.with_overlay(overlay.clone());
        m.cpu.set_observer(Some(Box::new(log)));
        Ok(Attached {
            stats,
            overlay: Some(overlay),
        })
    }
}

impl Attached {
    /// The overlay the trap log feeds, when one is attached.
    pub fn overlay(&self) -> Option<Arc<Mutex<Overlay>>> {
        self.overlay.clone()
    }

    /// Detach (flushing the log file) and print the statistics to stderr.
    pub fn finish(self, m: &mut Machine) {
        // Dropping the observer flushes a buffered log file.
        drop(m.cpu.set_observer(None));
        if let Some(s) = self.stats {
            if let Ok(mut s) = s.lock() {
                s.finish(&m.cpu);
                eprint!("{}", s.report(&m.cpu));
            }
        }
    }
}

/// `ringside lesson LIST|NAME`.
#[derive(Args, Debug)]
pub struct LessonArgs {
    /// `list`, or a lesson's name (`ringside lesson list` names them).
    #[arg(value_name = "list|NAME")]
    pub name: String,
    /// Do not wait at the lesson's pauses (for tests, scripts and
    /// screenshots).
    #[arg(long)]
    pub no_pause: bool,
    /// Stop after this many instructions (exit status 124).
    #[arg(long, value_name = "N")]
    pub max_instructions: Option<u64>,
    /// No window, even when a display is available: the text goes to
    /// stdout and each pause waits for Enter in the terminal.
    #[arg(long)]
    pub headless: bool,
    /// Window scale (1: the 768x400 lesson screen with the overlay panel
    /// below it).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=8))]
    pub scale: u32,
    /// Write the lesson screen with the overlay panel as a PNG when the
    /// lesson ends (or at `--screenshot-pause`).
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
    /// Take the `--screenshot` at the lesson's Nth pause (1 is the first)
    /// instead of at its end.
    #[arg(long, value_name = "N", requires = "screenshot",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub screenshot_pause: Option<u32>,
    #[command(flatten)]
    pub trap: TrapLogArgs,
}

/// Where a frontend follows a lesson: the text the guest printed since the
/// last call, and each pause.
pub trait LessonHooks {
    /// New console text from the guest.
    fn text(&mut self, text: &str);
    /// The guest stopped (at a pause or its end), before [`LessonHooks::text`]
    /// and [`LessonHooks::pause`]: a look at the machine.
    fn stopped(&mut self, _m: &Machine) {}
    /// The guest paused; return to let it go on: true to go on, false to
    /// end the lesson here (the person quit).
    fn pause(&mut self) -> bool;
}

/// What a lesson shows besides the terminal: the lesson screen and the
/// overlay, for the window and for screenshots.
#[derive(Clone)]
pub struct Shown {
    /// The lesson's text as it arrives.
    pub screen: Arc<Mutex<LessonScreen>>,
    /// CPL, mode, paging, IOPL and the last events.
    pub overlay: Arc<Mutex<Overlay>>,
}

impl Shown {
    /// CPL, mode, paging and IOPL as the machine is now (the last event
    /// kept may be older: a filtered log, or a POPF that changed IOPL).
    fn sync(&self, m: &Machine) {
        if let Ok(mut o) = self.overlay.lock() {
            o.sync(&m.cpu);
        }
    }

    fn new() -> Shown {
        Shown {
            screen: Arc::new(Mutex::new(LessonScreen::default())),
            overlay: Arc::new(Mutex::new(Overlay::new(overlay::KEEP_EVENTS))),
        }
    }

    /// The lesson screen with the panel below it (`panel`: shown), as the
    /// window draws it; `reserve` keeps the panel's room when hidden.
    pub fn frame(&self, panel: bool, reserve: bool) -> Frame {
        let picture = self
            .screen
            .lock()
            .map(|s| s.render())
            .unwrap_or_else(|_| overlay::blank(overlay::LESSON_SIZE.0, overlay::LESSON_SIZE.1));
        let p = panel.then(|| {
            let o = self.overlay.lock().map(|o| o.clone()).unwrap_or_default();
            overlay::panel(&o, picture.width)
        });
        overlay::compose(&picture, p.as_ref(), Placement::Below, reserve)
    }
}

/// Screenshots of a lesson: at the end, or at one pause.
pub struct Shots {
    path: Option<PathBuf>,
    at_pause: Option<u32>,
    pauses: u32,
}

impl Shots {
    fn new(args: &LessonArgs) -> Shots {
        Shots {
            path: args.screenshot.clone(),
            at_pause: args.screenshot_pause,
            pauses: 0,
        }
    }

    /// A pause came (before waiting at it): the screenshot, if it is the
    /// one asked for, with the window's prompt as the class sees it.
    pub fn pause(&mut self, shown: &Shown) {
        self.pauses += 1;
        if self.at_pause == Some(self.pauses) {
            let set = |p| {
                if let Ok(mut s) = shown.screen.lock() {
                    s.set_prompt(p);
                }
            };
            set(Some(WINDOW_PROMPT));
            self.write(shown);
            set(None);
        }
    }

    /// The lesson ended: the screenshot, unless one was asked at a pause.
    pub fn end(&mut self, shown: &Shown) {
        if self.at_pause.is_none() {
            self.write(shown);
        } else if let (Some(n), Some(path)) = (self.at_pause, &self.path) {
            if n > self.pauses {
                log::warn!(
                    "no screenshot {}: the lesson has {} pauses, not {n}",
                    path.display(),
                    self.pauses
                );
            }
        }
    }

    fn write(&self, shown: &Shown) {
        let Some(path) = &self.path else { return };
        match screenshot::write_png(path, &shown.frame(true, false)) {
            Ok(()) => log::info!("screenshot written to {}", path.display()),
            Err(e) => log::error!("{e}"),
        }
    }
}

/// The prompt of a pause in the terminal.
const TERMINAL_PROMPT: &str = "        [press Enter to go on]";

/// The terminal: text to stdout, Enter to go on (and the lesson screen and
/// overlay kept for `--screenshot`).
struct Terminal {
    no_pause: bool,
    shown: Option<Shown>,
    shots: Shots,
}

impl LessonHooks for Terminal {
    fn stopped(&mut self, m: &Machine) {
        if let Some(s) = &self.shown {
            s.sync(m);
        }
    }

    fn text(&mut self, text: &str) {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        if let Some(s) = &self.shown {
            if let Ok(mut screen) = s.screen.lock() {
                screen.push(text);
            }
        }
    }

    fn pause(&mut self) -> bool {
        if let Some(s) = &self.shown {
            self.shots.pause(s);
        }
        if self.no_pause {
            return true;
        }
        let mut out = std::io::stdout();
        let _ = write!(out, "{TERMINAL_PROMPT}");
        let _ = out.flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        true
    }
}

/// Run a lesson's guest to its end, calling `hooks` for its text and its
/// pauses; `None` when the hooks ended it at a pause.
pub fn run_lesson(
    m: &mut Machine,
    hooks: &mut dyn LessonHooks,
    max_instructions: Option<u64>,
) -> Option<RunOutcome> {
    let mut shown = 0;
    loop {
        let outcome = m.run(RunLimits { max_instructions });
        hooks.stopped(m);
        if let Some(all) = m.pc.debug.captured() {
            if all.len() > shown {
                hooks.text(&String::from_utf8_lossy(&all[shown..]));
                shown = all.len();
            }
        }
        match outcome {
            // The lesson's pause: a ring-0 HLT with IF = 0.
            RunOutcome::HaltedForever { .. } => {
                if !hooks.pause() {
                    return None;
                }
                m.cpu.wake();
            }
            other => return Some(other),
        }
    }
}

/// The window: text to stdout and the lesson screen, each pause waiting
/// for the window's Space or Enter (sent as [`crate::session::Command`]s).
#[cfg(feature = "window")]
pub struct WindowHooks {
    /// Whether to skip the pauses.
    pub no_pause: bool,
    /// The lesson screen and overlay.
    pub shown: Shown,
    /// Screenshots.
    pub shots: Shots,
    /// From the window.
    pub commands: crossbeam_channel::Receiver<crate::session::Command>,
}

/// The prompt of a pause in the window.
pub const WINDOW_PROMPT: &str = "[press Space or Enter in the window to go on]";

/// The prompt at the end of a lesson in the window.
#[cfg(feature = "window")]
pub const END_PROMPT: &str = "[end of the lesson: press Space or Enter to close the window]";

#[cfg(feature = "window")]
impl WindowHooks {
    /// Show `prompt` and wait for the window's Continue; false when the
    /// person quit (or closed the window).
    pub fn wait(&mut self, prompt: &str) -> bool {
        use crate::session::Command;
        if let Ok(mut s) = self.shown.screen.lock() {
            s.set_prompt(Some(prompt));
        }
        let mut out = std::io::stdout();
        let _ = write!(out, "        {prompt}");
        let _ = out.flush();
        let go_on = loop {
            match self.commands.recv() {
                Ok(Command::Continue) => break true,
                Ok(Command::Quit) | Err(_) => break false,
                // No keyboard in the lesson guests, nothing to pause.
                Ok(_) => {}
            }
        };
        let _ = writeln!(out);
        if let Ok(mut s) = self.shown.screen.lock() {
            s.set_prompt(None);
        }
        go_on
    }
}

#[cfg(feature = "window")]
impl LessonHooks for WindowHooks {
    fn stopped(&mut self, m: &Machine) {
        self.shown.sync(m);
    }

    fn text(&mut self, text: &str) {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        if let Ok(mut s) = self.shown.screen.lock() {
            s.push(text);
        }
    }

    fn pause(&mut self) -> bool {
        self.shots.pause(&self.shown);
        self.no_pause || self.wait(WINDOW_PROMPT)
    }
}

/// A machine with a lesson's ROM; the console is captured (for hooks that
/// show the text themselves) or written through to stdout as it comes, so
/// it interleaves with a trap log on the terminal.
pub fn lesson_machine(rom: &[u8], capture: bool) -> Result<Machine> {
    let config = MachineConfig {
        console: if capture {
            Console::Capture(Vec::new())
        } else {
            Console::Stdout
        },
        ..MachineConfig::default()
    };
    Ok(Machine::new(rom.to_vec(), config)?)
}

/// `ringside lesson`.
pub fn cmd_lesson(args: LessonArgs) -> Result<u8> {
    use ringside_roms::lessons::{find, LESSONS};
    if args.name == "list" {
        let mut out = std::io::stdout();
        for l in LESSONS {
            let _ = writeln!(out, "{:<12} {}", l.name, l.title);
        }
        return Ok(0);
    }
    let Some(lesson) = find(&args.name) else {
        let names: Vec<_> = LESSONS.iter().map(|l| l.name).collect();
        bail!("{}: no such lesson (have: {})", args.name, names.join(", "));
    };
    #[cfg(feature = "window")]
    if let Some(window) = crate::window::Window::open_unless_headless(
        args.headless,
        args.scale,
        Some((
            overlay::LESSON_SIZE.0 as usize,
            overlay::LESSON_SIZE.1 as usize,
        )),
        true,
        "the lesson runs in the terminal",
    ) {
        let shown = Shown::new();
        let mut m = lesson_machine(lesson.rom, true)?;
        let attached = args.trap.attach_with(&mut m, Some(shown.overlay.clone()))?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let hooks = WindowHooks {
            no_pause: args.no_pause,
            shown,
            shots: Shots::new(&args),
            commands: rx,
        };
        let outcome = crate::window::run_lesson(
            window,
            &mut m,
            lesson.name,
            hooks,
            tx,
            args.max_instructions,
        )?;
        attached.finish(&mut m);
        return Ok(lesson_status(lesson.name, outcome));
    }
    // Capture the console only when a screenshot needs the text: otherwise
    // it goes straight to stdout as it comes, between the trap log's lines.
    let shown = args.screenshot.is_some().then(Shown::new);
    let mut m = lesson_machine(lesson.rom, shown.is_some())?;
    let attached = args
        .trap
        .attach_with(&mut m, shown.as_ref().map(|s| s.overlay.clone()))?;
    let mut term = Terminal {
        no_pause: args.no_pause,
        shown,
        shots: Shots::new(&args),
    };
    let outcome = run_lesson(&mut m, &mut term, args.max_instructions);
    if let Some(s) = &term.shown {
        term.shots.end(s);
    }
    attached.finish(&mut m);
    Ok(lesson_status(lesson.name, outcome))
}

/// The exit status of a lesson (0 when it ran to its end, or the person
/// quit in the window).
fn lesson_status(name: &str, outcome: Option<RunOutcome>) -> u8 {
    match outcome {
        Some(RunOutcome::Exit(0)) => 0,
        None => {
            eprintln!("ringside: lesson {name}: quit from the window");
            0
        }
        Some(o) => {
            eprintln!("ringside: lesson {name}: {}", o.describe());
            o.exit_status() as u8
        }
    }
}
