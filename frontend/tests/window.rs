//! The window under Xvfb: a guest boots in a real X11 window, its screen
//! goes through the frame channel to the window, the window's last frame is
//! saved with `--screenshot`, and that PNG must equal the VGA render of the
//! same guest run in-process. A key typed into the window (xdotool) must
//! reach the guest through the keymap, the 8042 and our BIOS's INT 16h.
//!
//! Skipped (saying so) without Xvfb, unless `RINGSIDE_REQUIRE_XVFB` is set
//! (`.ci/run` sets it when it installed Xvfb): then a missing Xvfb fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Xvfb;
use ringside_machine::disk::{Disk, DiskMode};
use ringside_machine::ide::DeviceKind;
use ringside_machine::vga::Frame;
use ringside_machine::{Machine, MachineConfig, RunLimits, RunOutcome};

const MESSAGE: &[u8] = b"Ringside in a window: crisp text, right colours";

/// A boot sector: text mode 3 through INT 10h, the cursor hidden, MESSAGE
/// at the top left with a different attribute per character, then (when
/// `wait_key`) INT 16h for a key whose ASCII it writes below, and an exit
/// through port 0xF4 with 0x21 (or the key's scan code).
fn boot_sector(wait_key: bool) -> Vec<u8> {
    let mut c: Vec<u8> = vec![
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0xB8, 0x03, 0x00, // mov ax, 3
        0xCD, 0x10, // int 10h: set mode 3
        0xB4, 0x01, // mov ah, 1
        0xB9, 0x00, 0x20, // mov cx, 2000h
        0xCD, 0x10, // int 10h: cursor off
        0xB8, 0x00, 0xB8, // mov ax, B800h
        0x8E, 0xC0, // mov es, ax
        0x31, 0xFF, // xor di, di
        0xBE, 0x00, 0x00, // mov si, MESSAGE (patched)
        0xFC, // cld
        0xB4, 0x1E, // mov ah, 1Eh
        0xAC, // next: lodsb
        0x84, 0xC0, // test al, al
        0x74, 0x05, // jz done
        0xAB, // stosw
        0xFE, 0xC4, // inc ah
        0xEB, 0xF6, // jmp next
    ];
    if wait_key {
        c.extend_from_slice(&[
            0x31, 0xC0, // xor ax, ax
            0xCD, 0x16, // int 16h: wait for a key (AH scan, AL ASCII)
            0xBF, 0xA0, 0x00, // mov di, 160 (row 1)
            0x50, // push ax
            0xB4, 0x4F, // mov ah, 4Fh (white on red)
            0xAB, // stosw
            0x58, // pop ax
            0x88, 0xE0, // mov al, ah
        ]);
    } else {
        c.extend_from_slice(&[0xB0, 0x21]); // mov al, 21h
    }
    c.extend_from_slice(&[0xE6, 0xF4, 0xF4, 0xEB, 0xFD]); // out F4h, al; hlt; jmp $-1
    let msg_at = 0x7C00 + c.len() as u16;
    c[24..26].copy_from_slice(&msg_at.to_le_bytes());
    c.extend_from_slice(MESSAGE);
    c.push(0);
    let mut img = vec![0u8; 64 * 512];
    img[..c.len()].copy_from_slice(&c);
    img[510] = 0x55;
    img[511] = 0xAA;
    img
}

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-window-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An Xvfb server of this test binary's own (display 200 + 2·pid + n).
fn xvfb(n: u32) -> Option<Xvfb> {
    common::xvfb(200, n, "window test")
}

fn read_png(path: &Path) -> Frame {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let dec = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(
        (info.color_type, info.bit_depth),
        (png::ColorType::Rgba, png::BitDepth::Eight)
    );
    buf.truncate(info.buffer_size());
    Frame {
        width: info.width,
        height: info.height,
        rgba: buf,
    }
}

/// The same guest in-process: its screen at the end and how it ended.
fn expected(img: &Path) -> (Frame, RunOutcome) {
    let mut m = Machine::with_our_bios(MachineConfig::default()).unwrap();
    m.pc.ide.attach(
        0,
        0,
        DeviceKind::Disk,
        Disk::open(img, DiskMode::Snapshot).unwrap(),
    );
    let out = m.run(RunLimits {
        max_instructions: Some(200_000_000),
    });
    (m.frame(), out)
}

/// Start `ringside run` in the window; returns the child once the window
/// is open, with its stderr collected by a thread.
fn start(x: &Xvfb, dir: &Path) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("DISPLAY", &x.display)
        .env("RUST_LOG", "ringside=info")
        .current_dir(dir)
        .args([
            "run",
            "--disk",
            "boot.img",
            "--snapshot",
            "--debugcon",
            "null",
            "--screenshot",
            "shot.png",
            "--max-instructions",
            "2000000000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("window opened") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let _ = rx.recv_timeout(Duration::from_secs(30));
    (child, reader)
}

fn wait(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringside did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn guest_screen_in_a_window_matches_the_vga_render() {
    let Some(x) = xvfb(0) else { return };
    let dir = scratch("screen");
    let img = dir.join("boot.img");
    std::fs::write(&img, boot_sector(false)).unwrap();
    let (mut child, reader) = start(&x, &dir);
    let code = wait(&mut child, Duration::from_secs(60));
    let log = reader.join().unwrap();
    assert!(log.contains("window opened"), "no window:\n{log}");
    assert_eq!(code, Some(0x43), "{log}");
    let (want, out) = expected(&img);
    assert_eq!(out, RunOutcome::Exit(0x21));
    let got = read_png(&dir.join("shot.png"));
    assert_eq!((got.width, got.height), (720, 400));
    assert!(
        got == want,
        "the window's frame differs from the VGA render"
    );
    // The message is there in its colours: the first cell is yellow on
    // blue (attribute 1Eh), so its background is blue.
    assert_eq!(got.pixel(0, 0), [0x00, 0x00, 0xAA, 0xFF]);
    let yellow = (0..16)
        .flat_map(|y| (0..9).map(move |x| (x, y)))
        .filter(|&(x, y)| got.pixel(x, y) == [0xFF, 0xFF, 0x55, 0xFF])
        .count();
    assert!(yellow > 10, "{yellow} yellow pixels in the R");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_key_typed_into_the_window_reaches_the_guest() {
    let Some(x) = xvfb(1) else { return };
    if !common::have_x_tool("xdotool", "window key test") {
        return;
    }
    let dir = scratch("key");
    let img = dir.join("boot.img");
    std::fs::write(&img, boot_sector(true)).unwrap();
    let (mut child, reader) = start(&x, &dir);
    // With no window manager, the keyboard goes to the window under the
    // pointer: put the pointer on our window, then press B.
    let start = Instant::now();
    let code = loop {
        let found = Command::new("xdotool")
            .env("DISPLAY", &x.display)
            .args(["search", "--name", "^Ringside"])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&found.stdout);
        if let Some(id) = id.split_whitespace().next() {
            let _ = Command::new("xdotool")
                .env("DISPLAY", &x.display)
                .args(["mousemove", "--window", id, "50", "50", "key", "b"])
                .status();
        }
        std::thread::sleep(Duration::from_millis(300));
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the guest never got the key:\n{}", reader.join().unwrap());
        }
    };
    let log = reader.join().unwrap();
    // Scan code 30h ('b'): exit status (30h << 1) | 1.
    assert_eq!(code, Some(0x61), "{log}");
    // The guest wrote the key's character in white on red at row 1.
    let got = read_png(&dir.join("shot.png"));
    assert_eq!(got.pixel(0, 16), [0xAA, 0x00, 0x00, 0xFF]);
    let white = (16..32)
        .flat_map(|y| (0..9).map(move |x| (x, y)))
        .filter(|&(x, y)| got.pixel(x, y) == [0xFF, 0xFF, 0xFF, 0xFF])
        .count();
    assert!(white > 10, "{white} white pixels in the b");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_runs_in_a_window() {
    let Some(x) = xvfb(2) else { return };
    let dir = scratch("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("DISPLAY", &x.display)
        .env("RUST_LOG", "ringside=info")
        .current_dir(&dir)
        .args(["demo", "--debugcon", "null", "--screenshot", "demo.png"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("window opened"), "no window:\n{log}");
    assert_eq!(o.status.code(), Some(0), "{log}");
    // The same boot demo in-process: our BIOS and the demo's disk.
    let img = dir.join("demo.img");
    std::fs::write(&img, ringside_roms::DEMO_DISK).unwrap();
    let mut m = Machine::with_our_bios(MachineConfig::default()).unwrap();
    m.pc.ide.attach(
        0,
        0,
        DeviceKind::Disk,
        Disk::open(&img, DiskMode::Snapshot).unwrap(),
    );
    assert_eq!(m.run(RunLimits::default()), RunOutcome::Exit(0));
    let got = read_png(&dir.join("demo.png"));
    assert!(
        got == m.frame(),
        "the window's frame differs from the VGA render"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_window_shows_the_guest_screen_while_the_debugger_is_paused() {
    let Some(x) = xvfb(3) else { return };
    let dir = scratch("debug");
    let img = dir.join("boot.img");
    let sector = boot_sector(false);
    std::fs::write(&img, &sector).unwrap();
    // Stop at the guest's `out 0F4h, al` (message drawn, exit not yet
    // taken), wait there with the REPL paused, then quit the debugger.
    let out_at = 0x7C00 + sector.windows(2).position(|w| w == [0xE6, 0xF4]).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("DISPLAY", &x.display)
        .env("RUST_LOG", "ringside=info")
        .current_dir(&dir)
        .args([
            "run",
            "--disk",
            "boot.img",
            "--snapshot",
            "--debugcon",
            "null",
            "--screenshot",
            "shot.png",
            "--debug",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    use std::io::Write as _;
    writeln!(stdin, "until 0:{out_at:X}").unwrap();
    // The REPL sits paused at the breakpoint while the window runs on.
    std::thread::sleep(Duration::from_millis(1500));
    writeln!(stdin, "q").unwrap();
    drop(stdin);
    let code = wait(&mut child, Duration::from_secs(60));
    let o = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("window opened"), "no window:\n{log}");
    assert_eq!(code, Some(0), "{log}\n{text}");
    assert!(
        text.contains(&format!("reached 0000:{out_at:08X}")),
        "{text}"
    );
    // The window's last frame is the screen at the breakpoint.
    let mut m = Machine::with_our_bios(MachineConfig::default()).unwrap();
    m.pc.ide.attach(
        0,
        0,
        DeviceKind::Disk,
        Disk::open(&img, DiskMode::Snapshot).unwrap(),
    );
    let mut d = ringside_machine::debugger::Debugger::new();
    let r = d.execute(&mut m, &format!("until 0:{out_at:X}"));
    assert!(!r.error, "{}", r.text);
    let got = read_png(&dir.join("shot.png"));
    assert!(
        got == m.frame(),
        "the window's frame differs from the VGA render at the breakpoint"
    );
    assert_eq!(got.pixel(0, 0), [0x00, 0x00, 0xAA, 0xFF]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether `text` is drawn at pixel (x0, y0) in 8x16 cells of our font,
/// `fg` on `bg` (the overlay panel and the lesson screen are drawn this
/// way, without the text mode's ninth column).
fn drawn(f: &Frame, x0: u32, y0: u32, text: &str, fg: [u8; 3], bg: [u8; 3]) -> Result<(), String> {
    use ringside_machine::vga::{font_8x16, GLYPH_BYTES};
    let font = font_8x16();
    for (i, c) in text.bytes().enumerate() {
        for line in 0..16u32 {
            for bit in 0..8u32 {
                let on = font[c as usize * GLYPH_BYTES + line as usize] & (0x80 >> bit) != 0;
                let want = if on { fg } else { bg };
                let (x, y) = (x0 + i as u32 * 8 + bit, y0 + line);
                let got = f.pixel(x, y);
                if got[..3] != want {
                    return Err(format!(
                        "{text:?}: character {i} ({:?}) pixel ({x}, {y}) is {got:?}, not {want:?}",
                        c as char
                    ));
                }
            }
        }
    }
    Ok(())
}

/// xdotool on the display, for our window (found by its title); false
/// while there is no such window yet.
fn xdotool_on_window(x: &Xvfb, title: &str, args: &[&str]) -> bool {
    let found = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["search", "--name", title])
        .output()
        .unwrap();
    let ids = String::from_utf8_lossy(&found.stdout);
    let Some(id) = ids.split_whitespace().next() else {
        return false;
    };
    // With no window manager, the keyboard goes to the window under the
    // pointer.
    let _ = Command::new("xdotool")
        .env("DISPLAY", &x.display)
        .args(["mousemove", "--window", id, "50", "50"])
        .args(args)
        .status();
    true
}

/// Start `ringside lesson NAME ARGS` in the window (text to a reader
/// thread, which also signals the window's opening and counts pauses).
struct LessonRun {
    child: Child,
    stdout: std::sync::Arc<std::sync::Mutex<String>>,
    stderr: std::thread::JoinHandle<String>,
}

const PROMPT: &str = "[press Space or Enter in the window to go on]";

fn start_lesson(x: &Xvfb, dir: &Path, name: &str, args: &[&str]) -> LessonRun {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("DISPLAY", &x.display)
        .env("RUST_LOG", "ringside=info")
        .current_dir(dir)
        .args(["lesson", name])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("window opened") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let out = child.stdout.take().unwrap();
    let stdout = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let text = stdout.clone();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut out = out;
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let _ = rx.recv_timeout(Duration::from_secs(30));
    LessonRun {
        child,
        stdout,
        stderr,
    }
}

impl LessonRun {
    fn prompts(&self) -> usize {
        self.stdout.lock().unwrap().matches(PROMPT).count()
    }

    /// Wait until the lesson shows its `n`th prompt.
    fn wait_prompts(&mut self, n: usize) {
        let start = Instant::now();
        while self.prompts() < n {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("the lesson ended ({s}) before pause {n}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no pause {n}: {}",
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Press `key` in the window until the lesson ends; its exit status,
    /// its stdout without the prompts, and its stderr.
    fn finish_with(mut self, x: &Xvfb, key: &str) -> (Option<i32>, String, String) {
        let start = Instant::now();
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the lesson never ended: {}",
                self.stdout.lock().unwrap()
            );
            xdotool_on_window(x, "^Ringside", &["key", key]);
            std::thread::sleep(Duration::from_millis(150));
        };
        let err = self.stderr.join().unwrap();
        // The reader thread sees EOF once the process is gone.
        std::thread::sleep(Duration::from_millis(200));
        let out = self.stdout.lock().unwrap().clone();
        let text = out.replace(&format!("        {PROMPT}\n"), "").replace(
            "        [end of the lesson: press Space or Enter to close the window]\n",
            "",
        );
        (code, text, err)
    }
}

fn wait_for_file(path: &Path) -> Frame {
    let start = Instant::now();
    loop {
        if path.exists() {
            // Written whole before the key's next event is taken, but give
            // the encoder a moment to close the file.
            std::thread::sleep(Duration::from_millis(200));
            return read_png(path);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WHITE: [u8; 3] = [0xFF, 0xFF, 0xFF];
const BLUE: [u8; 3] = [0x00, 0x00, 0xAA];
const YELLOW: [u8; 3] = [0xFF, 0xFF, 0x55];
const BLACK: [u8; 3] = [0x00, 0x00, 0x00];

/// A lesson in the window: its text on the lesson screen and the overlay
/// panel below it (in our font, pixel for pixel), Ctrl+Alt+O hides and
/// shows the panel, and the lesson's trap log and text are the same as
/// headless (tests/lessons/rings.*).
#[test]
fn a_lesson_in_the_window_shows_the_overlay_and_ctrl_alt_o_toggles_it() {
    let Some(x) = xvfb(4) else { return };
    if !common_xdotool("window lesson test") {
        return;
    }
    let dir = scratch("lesson-overlay");
    let mut run = start_lesson(
        &x,
        &dir,
        "rings",
        &["--trap-log", "rings.log", "--screenshot", "end.png"],
    );
    run.wait_prompts(1);
    // At the first pause the guest is still in real mode.
    let shot = |n: u64| dir.join(format!("ringside-{n:04}.png"));
    while !shot(1).exists() {
        xdotool_on_window(&x, "^Ringside", &["key", "ctrl+alt+s"]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let f = wait_for_file(&shot(1));
    assert_eq!((f.width, f.height), (768, 400 + 192));
    drawn(&f, 0, 0, "Lesson: rings", YELLOW, BLACK).unwrap();
    let status = format!(
        "{:<80}Ctrl+Alt+O hides",
        "CPL 0  real mode  paging off  IOPL 0"
    );
    drawn(&f, 0, 400, &status, WHITE, BLUE).unwrap();
    drawn(&f, 0, 416, "no events yet", [0x55; 3], BLACK).unwrap();
    // The prompt, black on yellow, is the lesson screen's last text row.
    let rows = run.stdout.lock().unwrap().lines().count() as u32;
    drawn(&f, 0, (rows - 1) * 16, PROMPT, BLACK, YELLOW).unwrap();

    // Hidden: the screenshot is the lesson screen alone.
    xdotool_on_window(&x, "^Ringside", &["key", "ctrl+alt+o", "key", "ctrl+alt+s"]);
    let f = wait_for_file(&shot(2));
    assert_eq!((f.width, f.height), (768, 400));
    drawn(&f, 0, 0, "Lesson: rings", YELLOW, BLACK).unwrap();
    // Shown again.
    xdotool_on_window(&x, "^Ringside", &["key", "ctrl+alt+o", "key", "ctrl+alt+s"]);
    let f = wait_for_file(&shot(3));
    assert_eq!(f.height, 400 + 192);
    drawn(&f, 0, 400, &status, WHITE, BLUE).unwrap();

    let (code, text, log) = run.finish_with(&x, "space");
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("overlay hidden") && log.contains("overlay shown"),
        "{log}"
    );
    let expected = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lessons");
    assert_eq!(
        std::fs::read_to_string(dir.join("rings.log")).unwrap(),
        std::fs::read_to_string(expected.join("rings.log")).unwrap(),
        "the trap log in the window differs from the headless one"
    );
    assert_eq!(
        text,
        std::fs::read_to_string(expected.join("rings.out")).unwrap()
    );
    // The end: protected mode, ring 0, the last event HLT's #GP onto the
    // TSS's stack.
    let f = read_png(&dir.join("end.png"));
    let status = format!(
        "{:<80}Ctrl+Alt+O hides",
        "CPL 0  protected mode  paging off  IOPL 0"
    );
    drawn(&f, 0, 400, &status, WHITE, BLUE).unwrap();
    let cyan = [0x55, 0xFF, 0xFF];
    drawn(
        &f,
        0,
        400 + 10 * 16,
        "  58402 ring 3 hlt: ring 3 -> ring 0 via interrupt gate 0x0D (DPL 0); stack from the TSS:",
        cyan,
        BLACK,
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A pause in the window holds the lesson until a key there: nothing goes
/// on by itself, one Space releases exactly one pause, Enter does too.
#[test]
fn a_lesson_pause_in_the_window_waits_for_a_key() {
    let Some(x) = xvfb(5) else { return };
    if !common_xdotool("window pause test") {
        return;
    }
    let dir = scratch("lesson-pause");
    let mut run = start_lesson(&x, &dir, "v86", &[]);
    run.wait_prompts(1);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(run.child.try_wait().unwrap().is_none(), "did not wait");
    assert_eq!(run.prompts(), 1);
    // The title says so too.
    assert!(xdotool_on_window(&x, "press Space or Enter", &[]));
    xdotool_on_window(&x, "^Ringside", &["key", "space"]);
    run.wait_prompts(2);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(run.prompts(), 2, "one key, one pause");
    let (code, text, log) = run.finish_with(&x, "Return");
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("going on from the pause (Enter)"), "{log}");
    let expected = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lessons/v86.out");
    assert_eq!(text, std::fs::read_to_string(expected).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// xdotool is there (or required).
fn common_xdotool(what: &str) -> bool {
    let have = Command::new("xdotool")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_XVFB").is_none(),
            "RINGSIDE_REQUIRE_XVFB is set but xdotool is not runnable"
        );
        common::not_run(&format!(
            "{what}: xdotool is not installed (apt-get install xdotool)"
        ));
    }
    have
}
