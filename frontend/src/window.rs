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
//!   (with the overlay panel when it is shown)
//! - Ctrl+Alt+O: show / hide the overlay panel (CPL, mode, paging, IOPL
//!   and the last trap-log events)
//! - Ctrl+Alt+Q: quit (disk images are flushed, as on any exit)
//!
//! In a lesson, Space or Enter goes on from a pause (the lesson guests
//! have no keyboard, so no key goes to them).
//!
//! The frame is shown at the VGA's resolution, with 320-pixel-wide modes
//! doubled horizontally and 200-line modes doubled vertically (as the VGA
//! double-scans them), so every mode keeps a 4:3 picture; `--scale`
//! multiplies the window's size. A window opened with the overlay shown
//! (`--overlay`, and every lesson) has room for the panel below the
//! picture; otherwise the panel, when toggled on, covers the picture's
//! bottom rows, so the window's picture never changes size (minifb cannot
//! resize a window, and a stretched picture would lose its sharpness).

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use minifb::{Key, ScaleMode, WindowOptions};
use ringside_machine::traplog::Overlay;
use ringside_machine::vga::Frame;
use ringside_machine::{Machine, RunLimits, RunOutcome};

use crate::keymap;
use crate::lesson::{self, Shown, WindowHooks};
use crate::overlay::{self, Placement, PANEL_HEIGHT};
use crate::screenshot;
use crate::session::{describe_mode, drive, Command, Ended, FrontendArgs, OverlayFeed, Report};

/// The initial window size at scale 1 (the 80x25 text mode with 9-dot
/// characters).
const BASE_SIZE: (usize, usize) = (720, 400);

/// An open window.
pub struct Window {
    win: minifb::Window,
    /// Key downs and ups in the order the window system reported them.
    events: Rc<RefCell<VecDeque<(Key, bool)>>>,
    /// Opened with room for the overlay panel below the picture.
    panel_room: bool,
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
    /// The one place a run chooses between a window and the terminal: a
    /// window of `size` (`None` for the VGA's 720x400) unless `headless`
    /// was asked for or none can be opened (no display), in which case the
    /// reason is logged with what happens `instead`.
    pub fn open_unless_headless(
        headless: bool,
        scale: u32,
        size: Option<(usize, usize)>,
        panel_room: bool,
        instead: &str,
    ) -> Option<Window> {
        if headless {
            return None;
        }
        match Window::open_sized(scale, size.unwrap_or(BASE_SIZE), panel_room) {
            Ok(w) => Some(w),
            Err(e) => {
                log::info!("no window ({e}): {instead}");
                None
            }
        }
    }

    /// Open the window for a picture of `size` at scale 1, with room for
    /// the overlay panel below it when `panel_room`; fails without a
    /// display.
    pub fn open_sized(
        scale: u32,
        size: (usize, usize),
        panel_room: bool,
    ) -> Result<Window, minifb::Error> {
        let s = scale.max(1) as usize;
        let height = size.1 + if panel_room { PANEL_HEIGHT as usize } else { 0 };
        let mut win = minifb::Window::new(
            "Ringside",
            size.0 * s,
            height * s,
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
        log::info!("window opened, {}x{}", size.0 * s, height * s);
        Ok(Window {
            win,
            events,
            panel_room,
        })
    }
}

/// Run the machine on a worker thread and the window here until the run
/// ends or the person quits.
pub fn run(
    window: Window,
    m: &mut Machine,
    opts: &FrontendArgs,
    limits: RunLimits,
    feed: OverlayFeed,
) -> Result<Ended> {
    let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
    let (rep_tx, rep_rx) = crossbeam_channel::bounded(4);
    let machine = &mut *m;
    let data = feed.data.clone();
    let (ended, shot) = std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("machine".into())
            .spawn_scoped(s, move || {
                // The sender goes with the worker: the window sees the
                // channel close when the run is over.
                let tx: Sender<Report> = rep_tx;
                drive(
                    machine,
                    opts,
                    limits,
                    &cmd_rx,
                    Some(&tx),
                    false,
                    Some(&feed),
                )
            })
            .map_err(|e| anyhow!("cannot start the machine thread: {e}"))?;
        let mut ui = Ui::new(window, cmd_tx, View::Guest);
        ui.overlay = Some(data);
        ui.overlay_shown = opts.overlay;
        ui.run(&rep_rx);
        // The window closed first: stop the machine.
        let _ = ui.commands.send(Command::Quit);
        let ended = worker
            .join()
            .map_err(|_| anyhow!("the machine thread panicked"))??;
        Ok::<_, anyhow::Error>((ended, ui.shot_frame()))
    })?;
    if let Some(path) = &opts.screenshot {
        // What the window showed last: the final frame of the run.
        let frame = shot.unwrap_or_else(|| m.frame());
        screenshot::write_png(path, &frame)?;
        log::info!("screenshot written to {}", path.display());
    }
    Ok(ended)
}

/// A lesson in the window: the guest on a worker thread with `hooks`
/// (its text onto the lesson screen, its pauses waiting for the window's
/// Space or Enter, which come over `commands`), the lesson screen and the
/// overlay panel here. `None` when the person quit.
pub fn run_lesson(
    window: Window,
    m: &mut Machine,
    name: &str,
    mut hooks: WindowHooks,
    commands: Sender<Command>,
    max_instructions: Option<u64>,
) -> Result<Option<RunOutcome>> {
    let shown = hooks.shown.clone();
    // Nothing is ever sent: the channel closing tells the window the
    // lesson is over.
    let (rep_tx, rep_rx) = crossbeam_channel::bounded::<Report>(1);
    let machine = &mut *m;
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("machine".into())
            .spawn_scoped(s, move || {
                let _closes = rep_tx;
                let outcome = lesson::run_lesson(machine, &mut hooks, max_instructions);
                hooks.shots.end(&hooks.shown);
                // Keep the last screen up until the class has read it.
                if outcome.is_some() && !hooks.no_pause {
                    hooks.wait(lesson::END_PROMPT);
                }
                outcome
            })
            .map_err(|e| anyhow!("cannot start the machine thread: {e}"))?;
        let mut ui = Ui::new(
            window,
            commands,
            View::Lesson {
                name: name.to_string(),
                shown: shown.clone(),
            },
        );
        ui.overlay = Some(shown.overlay.clone());
        ui.overlay_shown = true;
        ui.run(&rep_rx);
        let _ = ui.commands.send(Command::Quit);
        worker
            .join()
            .map_err(|_| anyhow!("the machine thread panicked"))
    })
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
                    let _ =
                        rep_tx.send_timeout(Report::Frame(m.frame()), Duration::from_millis(200));
                });
                // Dropping the hook and `rep_tx` closes the channel: the
                // window's loop ends.
                dbg.set_slice_hook(None);
                status
            })
            .map_err(|e| anyhow!("cannot start the machine thread: {e}"))?;
        let mut ui = Ui::new(window, cmd_tx, View::Guest);
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
        let _ = self.reports.try_send(Report::Frame(m.frame()));
    }
}

/// What the window's picture is.
enum View {
    /// The guest's VGA screen, from the frames the machine sends.
    Guest,
    /// A lesson's screen (its explanations; the lesson guests print on the
    /// debug console, not the VGA).
    Lesson {
        /// The lesson's name, for the title.
        name: String,
        /// The lesson screen and overlay the machine side updates.
        shown: Shown,
    },
}

struct Ui {
    window: Window,
    commands: Sender<Command>,
    view: View,
    /// The frame on screen, as the machine sent it.
    last: Option<Frame>,
    /// The overlay panel's data, when this window has one.
    overlay: Option<Arc<Mutex<Overlay>>>,
    /// The panel is shown.
    overlay_shown: bool,
    /// The overlay's and the lesson screen's change counters when last
    /// drawn.
    seen: (u64, u64),
    /// Something changed that the picture does not show yet.
    dirty: bool,
    /// The window's picture as window pixels (0RGB): the frame scaled for
    /// the aspect ratio, with the panel.
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
    fn new(window: Window, commands: Sender<Command>, view: View) -> Ui {
        Ui {
            window,
            commands,
            view,
            last: None,
            overlay: None,
            overlay_shown: false,
            seen: (u64::MAX, u64::MAX),
            dirty: true,
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
                self.last = Some(f);
                self.dirty = true;
            }
            if self.keys() {
                return;
            }
            self.redraw();
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

    /// The overlay's and the lesson screen's change counters.
    fn changes(&self) -> (u64, u64) {
        let o = match (&self.overlay, self.overlay_shown) {
            (Some(o), true) => o.lock().map(|o| o.changes).unwrap_or(0),
            _ => 0,
        };
        let l = match &self.view {
            View::Lesson { shown, .. } => shown.screen.lock().map(|s| s.changes).unwrap_or(0),
            View::Guest => 0,
        };
        (o, l)
    }

    /// The panel for a picture `width` wide, when it is shown.
    fn panel(&self, width: u32) -> Option<Frame> {
        let data = self.overlay.as_ref().filter(|_| self.overlay_shown)?;
        // Copy, then draw without the lock: the machine may be waiting to
        // record an event.
        let o = data.lock().map(|o| o.clone()).unwrap_or_default();
        Some(overlay::panel(&o, width))
    }

    /// The picture without the panel, at window scale.
    fn picture(&self) -> Option<Frame> {
        match &self.view {
            View::Guest => self.last.as_ref().map(overlay::for_window),
            View::Lesson { shown, .. } => shown.screen.lock().ok().map(|s| s.render()),
        }
    }

    /// Rebuild the window's pixels when the frame, the panel or the
    /// lesson screen changed.
    fn redraw(&mut self) {
        let changes = self.changes();
        if !self.dirty && changes == self.seen {
            return;
        }
        let Some(picture) = self.picture() else {
            return;
        };
        self.seen = changes;
        self.dirty = false;
        let panel = self.panel(picture.width);
        let placement = if self.window.panel_room {
            Placement::Below
        } else {
            Placement::Over
        };
        let f = overlay::compose(&picture, panel.as_ref(), placement, self.window.panel_room);
        self.size = (f.width as usize, f.height as usize);
        self.pixels.clear();
        self.pixels.extend(
            f.rgba
                .chunks_exact(4)
                .map(|px| (px[0] as u32) << 16 | (px[1] as u32) << 8 | px[2] as u32),
        );
    }

    /// What a screenshot of the window holds: the guest's frame at its own
    /// resolution, or, with the panel shown (and in a lesson), the picture
    /// at window scale with the panel below it.
    fn shot_frame(&self) -> Option<Frame> {
        if let View::Lesson { shown, .. } = &self.view {
            return Some(shown.frame(self.overlay_shown, false));
        }
        let last = self.last.as_ref()?;
        if !self.overlay_shown {
            return Some(last.clone());
        }
        let picture = overlay::for_window(last);
        let panel = self.panel(picture.width);
        Some(overlay::compose(
            &picture,
            panel.as_ref(),
            Placement::Below,
            false,
        ))
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
        if ctrl && alt && matches!(k, Key::P | Key::G | Key::S | Key::Q | Key::O) {
            if !self.host_keys.insert(k) {
                return false; // a held host key does not repeat its action
            }
            let lesson = matches!(self.view, View::Lesson { .. });
            match k {
                // A lesson pauses itself.
                Key::P if lesson => {}
                Key::O => {
                    self.overlay_shown = !self.overlay_shown;
                    self.dirty = true;
                    let _ = self.commands.send(Command::Overlay(self.overlay_shown));
                    log::info!(
                        "overlay {}",
                        if self.overlay_shown {
                            "shown"
                        } else {
                            "hidden"
                        }
                    );
                }
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
        if let View::Lesson { shown, .. } = &self.view {
            // The lesson guests read no keyboard: Space and Enter are ours,
            // to go on from a pause (a fresh press: a held key's repeats
            // must not skip the next pauses too).
            let waiting = shown.screen.lock().is_ok_and(|s| s.waiting());
            if waiting && !repeat && matches!(k, Key::Space | Key::Enter | Key::NumPadEnter) {
                log::info!("going on from the pause ({k:?})");
                let _ = self.commands.send(Command::Continue);
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
        let Some(f) = self.shot_frame() else {
            log::warn!("screenshot: nothing on screen yet");
            return;
        };
        self.shots += 1;
        let path = screenshot::numbered(&PathBuf::from("ringside.png"), self.shots);
        match screenshot::write_png(&path, &f) {
            Ok(()) => log::warn!("screenshot written to {}", path.display()),
            Err(e) => log::error!("{e}"),
        }
    }

    fn update_title(&mut self) {
        let mut t = String::from("Ringside");
        if let View::Lesson { name, shown } = &self.view {
            t.push_str(" — lesson ");
            t.push_str(name);
            if shown.screen.lock().is_ok_and(|s| s.waiting()) {
                t.push_str(" — press Space or Enter to go on");
            }
        }
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
