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
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use ringside_machine::vga::Frame;
use ringside_machine::{Machine, RunLimits, RunOutcome, Status};

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

/// From the window to the machine.
#[derive(Debug)]
pub enum Command {
    /// A key went down or up (set-1 make code).
    Key(u16, bool),
    /// Pause (true) or resume.
    Pause(bool),
    /// End the run.
    Quit,
}

/// From the machine to the window.
#[derive(Debug)]
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

/// Run `m` as the options say, in a window when one can be opened.
pub fn run(m: &mut Machine, opts: &FrontendArgs, max_instructions: Option<u64>) -> Result<Ended> {
    let limits = RunLimits { max_instructions };
    if !opts.headless {
        #[cfg(feature = "window")]
        match crate::window::Window::open(opts.scale) {
            Ok(window) => return crate::window::run(window, m, opts, limits),
            Err(e) => log::info!("no window ({e}): running headless"),
        }
        #[cfg(not(feature = "window"))]
        log::info!("built without the `window` feature: running headless");
    }
    let (_tx, rx) = crossbeam_channel::bounded(1);
    let ended = drive(m, opts, limits, &rx, None, std::io::stderr().is_terminal())?;
    if let Some(path) = &opts.screenshot {
        screenshot::write_png(path, &m.pc.vga.render())?;
        log::info!("screenshot written to {}", path.display());
    }
    Ok(ended)
}

/// The machine side: run in pieces of one refresh period of virtual time,
/// taking commands from `commands` and sending frames and status to
/// `reports` (when a window listens), screenshots and the status line.
pub fn drive(
    m: &mut Machine,
    opts: &FrontendArgs,
    limits: RunLimits,
    commands: &Receiver<Command>,
    reports: Option<&Sender<Report>>,
    status_line: bool,
) -> Result<Ended> {
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
                Command::Quit => return Ok(Ended::Quit),
            }
        }
        let until = next_shot.map_or(next_frame, |s| s.min(next_frame));
        if let Some(outcome) = m.run_until_cycle(limits, until) {
            if let Some(tx) = reports {
                // The run is over: waiting a moment for the window is fine
                // now, so the final screen is shown.
                let _ = tx.send_timeout(Report::Frame(m.pc.vga.render()), Duration::from_secs(1));
            }
            return Ok(Ended::Guest(outcome));
        }
        let now = m.cpu.cycles;
        if now >= next_frame {
            next_frame = now + period;
            if let Some(tx) = reports {
                if last_frame.elapsed() >= min_frame_gap {
                    last_frame = Instant::now();
                    match tx.try_send(Report::Frame(m.pc.vga.render())) {
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
                screenshot::write_png(&path, &m.pc.vga.render())?;
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
        let ended = drive(&mut m, &opts, RunLimits::default(), &rx, None, false).unwrap();
        assert_eq!(ended, Ended::Guest(RunOutcome::Exit(0)));
        let expected = m.cpu.cycles / 20_000;
        assert!(expected >= 1);
        assert!(dir.join("s-0001.png").exists());
        let last = dir.join(format!("s-{:04}.png", expected));
        assert!(last.exists(), "{}", last.display());
        assert!(!dir.join(format!("s-{:04}.png", expected + 2)).exists());
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
        )
        .unwrap();
        assert_eq!(ended, Ended::Quit);
        assert_eq!(m.cpu.instructions, 0);
        // The demo ROM never enables the keyboard's clock line... but the
        // keyboard scans after reset, so the key is in the 8042's buffer.
        assert_eq!(m.pc.ps2.read(0x60), 0x1E);
    }
}
