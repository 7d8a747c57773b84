//! Running a machine for a person: in a window (the window on the main
//! thread, the machine on a worker thread) or headless, with screenshots
//! and a status line.
//!
//! The two threads talk over crossbeam channels: commands and keys go to
//! the machine, frames and status come back. The frame channel is bounded
//! and the machine only ever `try_send`s on it, so a slow window drops
//! frames instead of slowing the guest.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use ringside_machine::traplog::{Filter, Format, Overlay, TrapLog};
use ringside_machine::vga::Frame;
use ringside_machine::{Machine, RunLimits, RunOutcome, Status};

use crate::overlay::{self, Placement};
use crate::screenshot;

/// Display, screenshot and spec-file options (`run` and `demo`).
#[derive(Args, Debug, Clone, Default)]
pub struct FrontendArgs {
    /// Machine spec file (TOML; see examples/vm.toml): every option here
    /// has a key there, and options on the command line win over it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective machine (spec file and command line merged) as
    /// a spec file, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No window, even when a display is available (without one, runs are
    /// headless anyway). A status line goes to stderr every few seconds
    /// when it is a terminal.
    #[arg(long)]
    pub headless: bool,
    /// Window scale: 1 shows text modes at 720x400 and 320x200 modes
    /// doubled to 640x400.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=8))]
    pub scale: u32,
    /// Write the screen as a PNG when the run ends (at the VGA's own
    /// resolution).
    #[arg(long, value_name = "FILE.png")]
    pub screenshot: Option<PathBuf>,
    /// Write a screenshot every N virtual cycles, to the `--screenshot`
    /// name numbered (`shot-0001.png`, …; `screenshot.png` without it).
    #[arg(long, value_name = "CYCLES", value_parser = clap::value_parser!(u64).range(1..))]
    pub screenshot_every: Option<u64>,
    /// Start with the overlay panel shown (CPL, mode, paging, IOPL and the
    /// last trap-log events; Ctrl+Alt+O toggles it in the window). With
    /// `--screenshot`, the final screenshot has the panel below the screen.
    #[arg(long)]
    pub overlay: bool,
}

/// How the run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The guest's run ended.
    Guest(RunOutcome),
    /// The person quit (window closed, or the quit key).
    Quit,
}

impl Ended {
    /// The guest's outcome, `None` when the person quit.
    pub fn outcome(self) -> Option<RunOutcome> {
        match self {
            Ended::Guest(o) => Some(o),
            Ended::Quit => None,
        }
    }
}

/// From the window to the machine (without the `window` feature only
/// the tests send them).
#[derive(Debug)]
#[cfg_attr(not(feature = "window"), allow(dead_code))]
pub enum Command {
    /// A key went down or up (set-1 make code).
    Key(u16, bool),
    /// Pause (true) or resume.
    Pause(bool),
    /// The overlay panel was shown (true) or hidden: feed it, or stop.
    Overlay(bool),
    /// Go on from a lesson's pause.
    Continue,
    /// End the run.
    Quit,
}

/// From the machine to the window.
#[derive(Debug)]
#[cfg_attr(not(feature = "window"), allow(dead_code))]
pub enum Report {
    /// The screen.
    Frame(Frame),
    /// Mode and speed for the title bar.
    Status(Status, f64),
}

/// The VGA's refresh rate (70 Hz in the text modes and mode 13h); frames
/// are taken at this rate of virtual time, and at most this often in host
/// time.
pub const REFRESH_HZ: u64 = 70;

/// How often the headless status line appears.
const STATUS_EVERY: Duration = Duration::from_secs(3);

/// The overlay panel's data and who feeds it.
#[derive(Clone, Debug)]
pub struct OverlayFeed {
    /// What the panel shows.
    pub data: Arc<Mutex<Overlay>>,
    /// The trap log (`--trap-log`, `--stats`) feeds it already. Otherwise
    /// the machine attaches an observer of its own only while the panel is
    /// shown, since an observed CPU runs a slower execute path.
    pub by_trap_log: bool,
}

impl OverlayFeed {
    /// The feed for a run: the trap log's overlay when it has one, else a
    /// new one the machine feeds itself while the panel is shown.
    pub fn new(from_trap_log: Option<Arc<Mutex<Overlay>>>) -> OverlayFeed {
        match from_trap_log {
            Some(data) => OverlayFeed {
                data,
                by_trap_log: true,
            },
            None => OverlayFeed {
                data: Arc::new(Mutex::new(Overlay::new(overlay::KEEP_EVENTS))),
                by_trap_log: false,
            },
        }
    }
}

/// Run `m` as the options say, in a window when one can be opened.
/// `trap_overlay` is the trap log's overlay, when a trap log is attached.
pub fn run(
    m: &mut Machine,
    opts: &FrontendArgs,
    max_instructions: Option<u64>,
    trap_overlay: Option<Arc<Mutex<Overlay>>>,
) -> Result<Ended> {
    let limits = RunLimits { max_instructions };
    let feed = OverlayFeed::new(trap_overlay);
    #[cfg(feature = "window")]
    if let Some(window) = crate::window::Window::open_unless_headless(
        opts.headless,
        opts.scale,
        None,
        opts.overlay,
        "running headless",
    ) {
        return crate::window::run(window, m, opts, limits, feed);
    }
    #[cfg(not(feature = "window"))]
    if !opts.headless {
        log::info!("built without the `window` feature: running headless");
    }
    let (_tx, rx) = crossbeam_channel::bounded(1);
    let ended = drive(
        m,
        opts,
        limits,
        &rx,
        None,
        std::io::stderr().is_terminal(),
        Some(&feed),
    )?;
    if let Some(path) = &opts.screenshot {
        let vga = m.frame();
        let frame = if opts.overlay {
            with_panel(&overlay::for_window(&vga), &feed.data)
        } else {
            vga
        };
        screenshot::write_png(path, &frame)?;
        log::info!("screenshot written to {}", path.display());
    }
    Ok(ended)
}

/// `picture` with the overlay's panel below it (screenshots).
pub fn with_panel(picture: &Frame, data: &Mutex<Overlay>) -> Frame {
    let o = data.lock().map(|o| o.clone()).unwrap_or_default();
    let panel = overlay::panel(&o, picture.width);
    overlay::compose(picture, Some(&panel), Placement::Below, false)
}

/// The machine's side of the overlay in [`drive`]: attach an observer of
/// our own while the panel is shown (unless the trap log feeds it), and
/// take CPL, mode and IOPL from the CPU once per frame (IOPL changes by
/// POPF or IRET are not events).
struct OverlayState<'a> {
    feed: &'a OverlayFeed,
    /// Our observer is attached.
    attached: bool,
}

impl OverlayState<'_> {
    fn show(&mut self, m: &mut Machine, shown: bool) {
        if self.feed.by_trap_log || shown == self.attached {
            return;
        }
        if shown {
            let log = TrapLog::new(None, Format::Text, Filter::default())
                .with_overlay(self.feed.data.clone());
            m.cpu.set_observer(Some(Box::new(log)));
        } else {
            m.cpu.set_observer(None);
        }
        self.attached = shown;
        self.sync(m);
    }

    fn sync(&self, m: &Machine) {
        if self.feed.by_trap_log || self.attached {
            // Never wait for the window: it holds the lock only to copy.
            if let Ok(mut o) = self.feed.data.try_lock() {
                o.sync(&m.cpu);
            }
        }
    }
}

/// The machine side: run in pieces of one refresh period of virtual time,
/// taking commands from `commands` and sending frames and status to
/// `reports` (when a window listens), screenshots and the status line;
/// `feed` is the overlay panel's data, kept current while it is shown
/// (initially when `--overlay` says so).
pub fn drive(
    m: &mut Machine,
    opts: &FrontendArgs,
    limits: RunLimits,
    commands: &Receiver<Command>,
    reports: Option<&Sender<Report>>,
    status_line: bool,
    feed: Option<&OverlayFeed>,
) -> Result<Ended> {
    let mut overlay = feed.map(|feed| OverlayState {
        feed,
        attached: false,
    });
    if let Some(o) = &mut overlay {
        o.show(m, opts.overlay);
        o.sync(m);
    }
    let period = (m.pc.clock().cpu_hz() / REFRESH_HZ).max(1);
    let min_frame_gap = Duration::from_nanos(1_000_000_000 / REFRESH_HZ);
    let shot_base = opts
        .screenshot
        .clone()
        .unwrap_or_else(|| PathBuf::from("screenshot.png"));
    let mut next_shot = opts
        .screenshot_every
        .map(|n| m.cpu.cycles.saturating_add(n));
    let mut shots = 0u64;
    let mut next_frame = m.cpu.cycles + period;
    let mut last_frame = Instant::now() - min_frame_gap;
    let mut last_status = Instant::now();
    let mut last_count = m.cpu.instructions;
    let mut paused = false;
    let started = Instant::now();
    loop {
        // Commands: never wait for them unless paused.
        loop {
            let cmd = if paused {
                match commands.recv_timeout(Duration::from_millis(100)) {
                    Ok(c) => c,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                    Err(_) => return Ok(Ended::Quit),
                }
            } else {
                match commands.try_recv() {
                    Ok(c) => c,
                    Err(_) => break,
                }
            };
            match cmd {
                Command::Key(code, pressed) => {
                    m.pc.key_event(code, pressed);
                }
                Command::Pause(p) => {
                    if paused && !p {
                        m.restart_pacing();
                        last_status = Instant::now();
                        last_count = m.cpu.instructions;
                    }
                    paused = p;
                    log::info!("machine {}", if p { "paused" } else { "resumed" });
                }
                Command::Overlay(shown) => {
                    if let Some(o) = &mut overlay {
                        o.show(m, shown);
                    }
                }
                // Only a lesson's pause waits for it.
                Command::Continue => {}
                Command::Quit => return Ok(Ended::Quit),
            }
        }
        let until = next_shot.map_or(next_frame, |s| s.min(next_frame));
        if let Some(outcome) = m.run_until_cycle(limits, until) {
            if let Some(tx) = reports {
                // The run is over: waiting a moment for the window is fine
                // now, so the final screen is shown.
                let _ = tx.send_timeout(Report::Frame(m.frame()), Duration::from_secs(1));
            }
            return Ok(Ended::Guest(outcome));
        }
        let now = m.cpu.cycles;
        if now >= next_frame {
            next_frame = now + period;
            if let Some(o) = &overlay {
                o.sync(m);
            }
            if let Some(tx) = reports {
                if last_frame.elapsed() >= min_frame_gap {
                    last_frame = Instant::now();
                    match tx.try_send(Report::Frame(m.frame())) {
                        Ok(()) | Err(TrySendError::Full(_)) => {}
                        Err(TrySendError::Disconnected(_)) => return Ok(Ended::Quit),
                    }
                }
            }
        }
        if let Some(at) = next_shot {
            if now >= at {
                shots += 1;
                let path = screenshot::numbered(&shot_base, shots);
                screenshot::write_png(&path, &m.frame())?;
                log::debug!("screenshot {} at cycle {now}", path.display());
                next_shot = Some(
                    at.saturating_add(opts.screenshot_every.unwrap_or(1))
                        .max(now + 1),
                );
            }
        }
        let since = last_status.elapsed();
        let every = if reports.is_some() {
            Duration::from_millis(500)
        } else {
            STATUS_EVERY
        };
        if since >= every {
            let s = m.status();
            let mips = (s.instructions - last_count) as f64 / since.as_secs_f64() / 1e6;
            last_status = Instant::now();
            last_count = s.instructions;
            if let Some(tx) = reports {
                let _ = tx.try_send(Report::Status(s, mips));
            } else if status_line {
                let guest_s = m.pc.clock().cycles_to_ns(s.cycles) as f64 / 1e9;
                eprintln!(
                    "ringside: {:.0} s: guest time {guest_s:.1} s, {mips:.1} MIPS, {}, last POST code {}",
                    started.elapsed().as_secs_f64(),
                    describe_mode(&s),
                    s.last_post_code.map_or("none".to_string(), |c| format!("{c:02X}")),
                );
            }
        }
    }
}

/// `protected mode, paging, CPL 3`.
pub fn describe_mode(s: &Status) -> String {
    format!(
        "{} mode{}, CPL {}",
        s.mode,
        if s.paging { ", paging" } else { "" },
        s.cpl
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringside_machine::MachineConfig;

    fn demo() -> Machine {
        Machine::new(ringside_roms::DEMO.to_vec(), MachineConfig::default()).unwrap()
    }

    #[test]
    fn headless_drive_runs_the_demo_to_its_end_and_takes_numbered_shots() {
        let dir = std::env::temp_dir().join(format!("ringside-drive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let opts = FrontendArgs {
            screenshot: Some(dir.join("s.png")),
            screenshot_every: Some(20_000),
            ..FrontendArgs::default()
        };
        let mut m = demo();
        let (_tx, rx) = crossbeam_channel::bounded(1);
        let ended = drive(&mut m, &opts, RunLimits::default(), &rx, None, false, None).unwrap();
        assert_eq!(ended, Ended::Guest(RunOutcome::Exit(0)));
        let expected = m.cpu.cycles / 20_000;
        assert!(expected >= 1);
        assert!(dir.join("s-0001.png").exists());
        let last = dir.join(format!("s-{:04}.png", expected));
        assert!(last.exists(), "{}", last.display());
        assert!(!dir.join(format!("s-{:04}.png", expected + 2)).exists());
    }

    /// The overlay gets the run's events while it is shown (from the
    /// start with `--overlay`, or from a Ctrl+Alt+O), and without it the
    /// CPU runs with no observer.
    #[test]
    fn the_overlay_is_fed_only_while_shown() {
        let run = |overlay: bool, cmds: &[bool]| {
            let mut m = demo();
            let feed = OverlayFeed::new(None);
            let opts = FrontendArgs {
                overlay,
                ..FrontendArgs::default()
            };
            let (tx, rx) = crossbeam_channel::unbounded();
            for &c in cmds {
                tx.send(Command::Overlay(c)).unwrap();
            }
            let ended = drive(
                &mut m,
                &opts,
                RunLimits::default(),
                &rx,
                None,
                false,
                Some(&feed),
            )
            .unwrap();
            assert_eq!(ended, Ended::Guest(RunOutcome::Exit(0)));
            let observed = m.cpu.set_observer(None).is_some();
            let o = feed.data.lock().unwrap().clone();
            (observed, o)
        };
        let (observed, o) = run(true, &[]);
        assert!(observed);
        assert_eq!(o.status_line(), "CPL 0  real mode  paging off  IOPL 0");
        // The demo's own #DE, caught by its handler.
        assert!(
            o.recent
                .iter()
                .any(|e| e.kind == "exception" && e.text.contains("#DE")),
            "{o:?}"
        );
        let (observed, o) = run(false, &[]);
        assert!(!observed);
        assert!(o.recent.is_empty() && o.changes == 0, "{o:?}");
        let (observed, o) = run(false, &[true]);
        assert!(observed && !o.recent.is_empty(), "{o:?}");
        let (observed, _) = run(true, &[false]);
        assert!(!observed);
    }

    #[test]
    fn keys_and_quit_reach_the_machine_and_frames_never_block_it() {
        let mut m = demo();
        let (ctx, crx) = crossbeam_channel::unbounded();
        // A window that never reads: the machine must still run to its end.
        let (rtx, rrx) = crossbeam_channel::bounded(1);
        let ended = drive(
            &mut m,
            &FrontendArgs::default(),
            RunLimits::default(),
            &crx,
            Some(&rtx),
            false,
            None,
        )
        .unwrap();
        assert_eq!(ended, Ended::Guest(RunOutcome::Exit(0)));
        assert!(matches!(rrx.try_recv(), Ok(Report::Frame(_))));
        // Quit is taken before the next piece of the run.
        let mut m = demo();
        ctx.send(Command::Key(0x1E, true)).unwrap();
        ctx.send(Command::Quit).unwrap();
        let ended = drive(
            &mut m,
            &FrontendArgs::default(),
            RunLimits::default(),
            &crx,
            None,
            false,
            None,
        )
        .unwrap();
        assert_eq!(ended, Ended::Quit);
        assert_eq!(m.cpu.instructions, 0);
        // The demo ROM never enables the keyboard's clock line... but the
        // keyboard scans after reset, so the key is in the 8042's buffer.
        assert_eq!(m.pc.ps2.read(0x60), 0x1E);
    }
}
