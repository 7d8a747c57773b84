//! The window (minifb): the guest's screen, its keyboard, and the host keys.
//!
//! The window lives on the main thread (minifb needs that); the machine runs
//! on a worker thread ([`crate::session::drive`]) and sends frames over a
//! bounded channel that it never waits on. Keys go the other way as PS/2
//! set-1 make and break codes ([`crate::keymap`]).
//!
//! Host keys (Ctrl+Alt held, either side):
//! - Ctrl+Alt+P: pause / resume the machine
//! - Ctrl+Alt+G: release / grab the keyboard (released: keys stay with the host)
//! - Ctrl+Alt+S: screenshot of the window's frame to `ringside-NNNN.png`
//! - Ctrl+Alt+Q: quit (disk images are flushed, as on any exit)
//!
//! The frame is shown at the VGA's resolution, with 320-pixel-wide modes
//! doubled horizontally and 200-line modes doubled vertically (as the VGA
//! double-scans them), so every mode keeps a 4:3 picture; `--scale`
//! multiplies the window's size.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use minifb::{Key, ScaleMode, WindowOptions};
use ringside_machine::vga::Frame;
use ringside_machine::{Machine, RunLimits};

use crate::keymap;
use crate::screenshot;
use crate::session::{describe_mode, drive, Command, Ended, FrontendArgs, Report};

/// The initial window size at scale 1 (the 80x25 text mode with 9-dot
/// characters).
const BASE_SIZE: (usize, usize) = (720, 400);

/// An open window.
pub struct Window {
    win: minifb::Window,
    /// Key downs and ups in the order the window system reported them.
    events: Rc<RefCell<VecDeque<(Key, bool)>>>,
}

/// Collects minifb's key events in order. `get_keys_pressed` would list a
/// frame's keys in key-code order (the 4 before Shift in a quickly typed
/// `$`) and lose a press and release that fall in the same frame.
struct KeyEvents(Rc<RefCell<VecDeque<(Key, bool)>>>);

impl minifb::InputCallback for KeyEvents {
    fn add_char(&mut self, _uni_char: u32) {}

    fn set_key_state(&mut self, key: Key, state: bool) {
        self.0.borrow_mut().push_back((key, state));
    }
}

impl Window {
    /// Open the window; fails without a display.
    pub fn open(scale: u32) -> Result<Window, minifb::Error> {
        let s = scale.max(1) as usize;
        let mut win = minifb::Window::new(
            "Ringside",
            BASE_SIZE.0 * s,
            BASE_SIZE.1 * s,
            WindowOptions {
                resize: true,
                scale_mode: ScaleMode::AspectRatioStretch,
                ..WindowOptions::default()
            },
        )?;
        // We pace ourselves on the frames that arrive.
        win.set_target_fps(0);
        let events = Rc::new(RefCell::new(VecDeque::new()));
        win.set_input_callback(Box::new(KeyEvents(events.clone())));
        log::info!("window opened, {}x{}", BASE_SIZE.0 * s, BASE_SIZE.1 * s);
        Ok(Window { win, events })
    }
}

/// Run the machine on a worker thread and the window here until the run
/// ends or the person quits.
pub fn run(
    window: Window,
    m: &mut Machine,
    opts: &FrontendArgs,
    limits: RunLimits,
) -> Result<Ended> {
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(4);
    let machine = &mut *m;
    let (ended, last) = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("machine".into())
            .spawn_scoped(s, move || {
                // The sender goes with the worker: the window sees the
                // channel close when the run is over.
                let tx: Sender<Report> = rep_tx;
                drive(machine, opts, limits, &cmd_rx, Some(&tx), false)
            })
            .map_err(|e| anyhow!("cannot start the machine thread: {e}"))?;
        let mut ui = Ui::new(window, cmd_tx);
        ui.run(&rep_rx);
        // The window closed first: stop the machine.
        let _ = ui.commands.send(Command::Quit);
        let ended = worker
            .join()
            .map_err(|_| anyhow!("the machine thread panicked"))??;
        Ok::<_, anyhow::Error>((ended, ui.last))
    })?;
    if let Some(path) = &opts.screenshot {
        // What the window showed last: the final frame of the run.
        let frame = last.unwrap_or_else(|| m.pc.vga.render());
        screenshot::write_png(path, &frame)?;
        log::info!("screenshot written to {}", path.display());
    }
    Ok(ended)
}

/// `--debug` with a window: the REPL and the machine run on a worker
/// thread (the REPL reads the terminal there), and the window stays here
/// showing the guest's screen: a fresh frame after every command, and one
/// per refresh period of virtual time while the guest runs (`c`, `s N`).
/// While the REPL waits for a command the window keeps redrawing that
/// frame. Keys typed into the window reach the guest when it next runs.
/// Closing the window leaves the debugger running in the terminal. With
/// `--screenshot`, the window's last frame is written when the REPL ends.
pub fn run_debugger(
    window: Window,
    m: &mut Machine,
    opts: &FrontendArgs,
    dbg: &mut ringside_machine::debugger::Debugger,
) -> Result<u8> {
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(4);
    let machine = &mut *m;
    let (status, last) = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("machine".into())
            .spawn_scoped(s, move || {
                let period = (machine.pc.clock().cpu_hz() / crate::session::REFRESH_HZ).max(1);
                let mut feed = Feed {
                    reports: rep_tx.clone(),
                    keys: cmd_rx,
                    period,
                    next: machine.cpu.cycles + period,
                };
                dbg.set_slice_hook(Some(Box::new(move |m| feed.tick(m))));
                let status = crate::repl::run_interactive_with(machine, dbg, &mut |m| {
                    // The screen as the debugger left it: wait for room
                    // (briefly), the window drains the channel every 10 ms.
                    let _ = rep_tx
                        .send_timeout(Report::Frame(m.pc.vga.render()), Duration::from_millis(200));
                });
                // Dropping the hook and `rep_tx` closes the channel: the
                // window's loop ends.
                dbg.set_slice_hook(None);
                status
            })
            .map_err(|e| anyhow!("cannot start the machine thread: {e}"))?;
        let mut ui = Ui::new(window, cmd_tx);
        ui.run(&rep_rx);
        if ui.window.win.is_open() {
            log::debug!("the debugger ended: window closing");
        } else {
            log::warn!("window closed: the debugger goes on in the terminal (`q` quits)");
        }
        drop(ui.commands);
        let status = worker
            .join()
            .map_err(|_| anyhow!("the machine thread panicked"))??;
        Ok::<_, anyhow::Error>((status, ui.last))
    })?;
    if let Some(path) = &opts.screenshot {
        // What the window showed last (nothing is written if it never got
        // a frame).
        match last {
            Some(frame) => {
                screenshot::write_png(path, &frame)?;
                log::info!("screenshot written to {}", path.display());
            }
            None => log::warn!("no screenshot: the window never got a frame"),
        }
    }
    Ok(status)
}

/// The machine side of [`run_debugger`] between slices: a frame per
/// refresh period of virtual time, and the window's keys.
struct Feed {
    reports: Sender<Report>,
    keys: Receiver<Command>,
    period: u64,
    next: u64,
}

impl Feed {
    fn tick(&mut self, m: &mut Machine) {
        if m.cpu.cycles < self.next {
            return;
        }
        self.next = m.cpu.cycles + self.period;
        while let Ok(c) = self.keys.try_recv() {
            if let Command::Key(code, pressed) = c {
                m.pc.key_event(code, pressed);
            }
        }
        // A slow window drops frames rather than slowing the guest.
        let _ = self.reports.try_send(Report::Frame(m.pc.vga.render()));
    }
}

struct Ui {
    window: Window,
    commands: Sender<Command>,
    /// The frame on screen, as the machine sent it.
    last: Option<Frame>,
    /// It as window pixels (0RGB), scaled for the aspect ratio.
    pixels: Vec<u32>,
    size: (usize, usize),
    paused: bool,
    grabbed: bool,
    /// Guest keys down (make sent, break not yet).
    down: HashSet<u16>,
    /// Keys that made a host combination (their release is ours too).
    host_keys: HashSet<Key>,
    /// Keys the window reported down and not yet up.
    held: HashSet<Key>,
    status: String,
    title: String,
    shots: u64,
}

impl Ui {
    fn new(window: Window, commands: Sender<Command>) -> Ui {
        Ui {
            window,
            commands,
            last: None,
            pixels: Vec::new(),
            size: (0, 0),
            paused: false,
            grabbed: true,
            down: HashSet::new(),
            host_keys: HashSet::new(),
            held: HashSet::new(),
            status: String::new(),
            title: String::new(),
            shots: 0,
        }
    }

    fn run(&mut self, reports: &Receiver<Report>) {
        loop {
            if !self.window.win.is_open() {
                log::info!("window closed: quitting");
                return;
            }
            let mut ended = false;
            let mut fresh = None;
            match reports.recv_timeout(Duration::from_millis(10)) {
                Ok(r) => self.take(r, &mut fresh),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => ended = true,
            }
            // Only the newest frame is worth drawing.
            while let Ok(r) = reports.try_recv() {
                self.take(r, &mut fresh);
            }
            if let Some(f) = fresh {
                self.show(f);
            }
            if self.keys() {
                return;
            }
            self.update_title();
            let result = if self.pixels.is_empty() {
                self.window.win.update();
                Ok(())
            } else {
                self.window
                    .win
                    .update_with_buffer(&self.pixels, self.size.0, self.size.1)
            };
            if let Err(e) = result {
                log::warn!("window: {e}");
            }
            if ended {
                return;
            }
        }
    }

    fn take(&mut self, r: Report, fresh: &mut Option<Frame>) {
        match r {
            Report::Frame(f) => *fresh = Some(f),
            Report::Status(s, mips) => {
                self.status = format!("{}, {mips:.1} MIPS", describe_mode(&s));
            }
        }
    }

    fn show(&mut self, f: Frame) {
        let (w, h) = (f.width as usize, f.height as usize);
        let dx = if w <= 400 { 2 } else { 1 };
        let dy = if h <= 300 { 2 } else { 1 };
        self.size = (w * dx, h * dy);
        self.pixels.clear();
        self.pixels.reserve(self.size.0 * self.size.1);
        for row in f.rgba.chunks_exact(w * 4).take(h) {
            let start = self.pixels.len();
            for px in row.chunks_exact(4) {
                let c = (px[0] as u32) << 16 | (px[1] as u32) << 8 | px[2] as u32;
                for _ in 0..dx {
                    self.pixels.push(c);
                }
            }
            for _ in 1..dy {
                self.pixels.extend_from_within(start..start + w * dx);
            }
        }
        self.last = Some(f);
    }

    /// Keys since the last update, in order: host combinations, else the
    /// guest's. True when the person asked to quit.
    fn keys(&mut self) -> bool {
        loop {
            let Some((k, down)) = self.window.events.borrow_mut().pop_front() else {
                return false;
            };
            if down {
                if self.key_down(k) {
                    return true;
                }
            } else {
                self.key_up(k);
            }
        }
    }

    /// A key went down (or repeats, held: a make code again, as a PS/2
    /// keyboard's typematic repeat sends). True for the quit key.
    fn key_down(&mut self, k: Key) -> bool {
        let repeat = !self.held.insert(k);
        let ctrl = self.held.contains(&Key::LeftCtrl) || self.held.contains(&Key::RightCtrl);
        let alt = self.held.contains(&Key::LeftAlt) || self.held.contains(&Key::RightAlt);
        log::debug!("key {k:?} down (Ctrl {ctrl}, Alt {alt}, repeat {repeat})");
        if ctrl && alt && matches!(k, Key::P | Key::G | Key::S | Key::Q) {
            if !self.host_keys.insert(k) {
                return false; // a held host key does not repeat its action
            }
            match k {
                Key::P => {
                    self.paused = !self.paused;
                    let _ = self.commands.send(Command::Pause(self.paused));
                }
                Key::G => {
                    self.grabbed = !self.grabbed;
                    if !self.grabbed {
                        self.release_all();
                    }
                    log::info!(
                        "keyboard {}",
                        if self.grabbed { "grabbed" } else { "released" }
                    );
                }
                Key::S => self.screenshot(),
                _ => {
                    log::info!("quit key (Ctrl+Alt+Q)");
                    return true;
                }
            }
            return false;
        }
        if !self.grabbed || self.host_keys.contains(&k) {
            return false;
        }
        if let Some(code) = keymap::set1(k) {
            self.down.insert(code);
            let _ = self.commands.send(Command::Key(code, true));
        }
        false
    }

    fn key_up(&mut self, k: Key) {
        self.held.remove(&k);
        if self.host_keys.remove(&k) {
            return;
        }
        if let Some(code) = keymap::set1(k) {
            if self.down.remove(&code) {
                let _ = self.commands.send(Command::Key(code, false));
            }
        }
    }

    /// Break codes for every key the guest thinks is down.
    fn release_all(&mut self) {
        for code in self.down.drain() {
            let _ = self.commands.send(Command::Key(code, false));
        }
    }

    fn screenshot(&mut self) {
        let Some(f) = &self.last else {
            log::warn!("screenshot: nothing on screen yet");
            return;
        };
        self.shots += 1;
        let path = screenshot::numbered(&PathBuf::from("ringside.png"), self.shots);
        match screenshot::write_png(&path, f) {
            Ok(()) => log::warn!("screenshot written to {}", path.display()),
            Err(e) => log::error!("{e}"),
        }
    }

    fn update_title(&mut self) {
        let mut t = String::from("Ringside");
        if !self.status.is_empty() {
            t.push_str(" — ");
            t.push_str(&self.status);
        }
        if self.paused {
            t.push_str(" — paused (Ctrl+Alt+P)");
        }
        if !self.grabbed {
            t.push_str(" — keyboard released (Ctrl+Alt+G)");
        }
        if t != self.title {
            self.window.win.set_title(&t);
            self.title = t;
        }
    }
}
