//! `ringside lesson`: the built-in lesson guests (roms/build/lessons.rs),
//! and the trap-log and statistics options every guest run shares
//! (`--trap-log`, `--trap-log-format`, `--trap-log-events`,
//! `--trap-log-cpl`, `--stats`).
//!
//! A lesson prints its explanations on the debug console and pauses with a
//! ring-0 HLT while IF = 0; in the terminal we wait for Enter there (unless
//! `--no-pause`), then wake the CPU. The window's overlay is the window's
//! business: [`LessonHooks`] is where it plugs in.

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use clap::Args;
use ringside_machine::traplog::{Filter, Format, Stats, TrapLog};
use ringside_machine::{Console, Machine, MachineConfig, RunLimits, RunOutcome};

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
    /// ring, mode, task, trap, sensitive, cr, tlb-flush, tlb-fill, or `all`;
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
}

impl TrapLogArgs {
    /// Whether any option asks for an observer.
    pub fn active(&self) -> bool {
        self.trap_log.is_some() || self.stats
    }

    /// Attach the trap log (and statistics) to the machine's CPU. With
    /// neither option the CPU gets no observer and runs at full speed.
    pub fn attach(&self, m: &mut Machine) -> Result<Attached> {
        if !self.active() {
            return Ok(Attached { stats: None });
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
        m.cpu.set_observer(Some(Box::new(log)));
        Ok(Attached { stats })
    }
}

impl Attached {
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
    /// `list`, or a lesson's name (rings, privileged, holes).
    #[arg(value_name = "list|NAME")]
    pub name: String,
    /// Do not wait for Enter at the lesson's pauses (for tests and scripts).
    #[arg(long)]
    pub no_pause: bool,
    /// Stop after this many instructions (exit status 124).
    #[arg(long, value_name = "N")]
    pub max_instructions: Option<u64>,
    #[command(flatten)]
    pub trap: TrapLogArgs,
}

/// Where a frontend (the window's overlay) follows a lesson: the text the
/// guest printed since the last call, and each pause.
pub trait LessonHooks {
    /// New console text from the guest.
    fn text(&mut self, text: &str);
    /// The guest paused; return to let it go on.
    fn pause(&mut self);
}

/// The terminal: text to stdout, Enter to go on.
struct Terminal {
    no_pause: bool,
}

impl LessonHooks for Terminal {
    fn text(&mut self, text: &str) {
        let mut out = std::io::stdout();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn pause(&mut self) {
        if self.no_pause {
            return;
        }
        let mut out = std::io::stdout();
        let _ = write!(out, "        [press Enter to go on]");
        let _ = out.flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

/// Run a lesson's guest to its end, calling `hooks` for its text and its
/// pauses.
pub fn run_lesson(
    m: &mut Machine,
    hooks: &mut dyn LessonHooks,
    max_instructions: Option<u64>,
) -> RunOutcome {
    let mut shown = 0;
    loop {
        let outcome = m.run(RunLimits { max_instructions });
        if let Some(all) = m.pc.debug.captured() {
            if all.len() > shown {
                hooks.text(&String::from_utf8_lossy(&all[shown..]));
                shown = all.len();
            }
        }
        match outcome {
            // The lesson's pause: a ring-0 HLT with IF = 0.
            RunOutcome::HaltedForever { .. } => {
                hooks.pause();
                m.cpu.wake();
            }
            other => return other,
        }
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
    let mut m = lesson_machine(lesson.rom, false)?;
    let attached = args.trap.attach(&mut m)?;
    let mut term = Terminal {
        no_pause: args.no_pause,
    };
    let outcome = run_lesson(&mut m, &mut term, args.max_instructions);
    attached.finish(&mut m);
    Ok(match outcome {
        RunOutcome::Exit(0) => 0,
        o => {
            eprintln!("ringside: lesson {}: {}", lesson.name, o.describe());
            o.exit_status() as u8
        }
    })
}
