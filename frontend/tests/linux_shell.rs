//! Linux as a person uses it: the interactive variant of the linux-i686
//! guest (scripts/make-shell-guest.sh: the same disk, with an /init that
//! leaves a busybox shell on the VGA console and one on COM1) boots on our
//! BIOS, and
//! - headless (on SeaBIOS when it is installed), a command typed on
//!   `--serial stdio` runs in the guest's shell and `reboot -f` ends the
//!   run under `--no-reboot` with exit status 5;
//! - in the window (under Xvfb), a command typed into the window with
//!   xdotool runs in the shell on the kernel's VGA console, the screenshot
//!   host key (Ctrl+Alt+S) saves the screen, which reads back as the
//!   command and its output, and Ctrl+Alt+Q quits with status 0.
//!
//! `.ci/run` builds the image and points `RINGSIDE_LINUX_SHELL_IMAGE` at it;
//! without the variable these tests say so and do nothing.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Generous: the boot takes about a minute alone, longer beside other tests.
const BOOT_LIMIT: Duration = Duration::from_secs(900);

fn image() -> Option<PathBuf> {
    let img = std::env::var_os("RINGSIDE_LINUX_SHELL_IMAGE");
    if img.is_none() {
        common::not_run("interactive Linux test: RINGSIDE_LINUX_SHELL_IMAGE not set; build it with `scripts/build-linux-guest.sh DIR` then `scripts/make-shell-guest.sh DIR DIR/linux-i686-shell.img` (.ci/run does both) and set RINGSIDE_LINUX_SHELL_IMAGE to it");
    }
    img.map(PathBuf::from)
}

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-shell-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Kill the child if a test fails half-way.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        assert!(
            start.elapsed() < limit,
            "ringside did not end within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SeaBIOS and its VGA BIOS (Debian `seabios`), when installed: the serial
/// test boots through them, so the interactive guest is covered on both
/// firmwares (the window test uses ours). Required when `.ci/run` set
/// `RINGSIDE_REQUIRE_SEABIOS`.
fn seabios() -> Vec<&'static str> {
    let (bios, vga) = (
        "/usr/share/seabios/bios.bin",
        "/usr/share/seabios/vgabios-stdvga.bin",
    );
    if Path::new(bios).exists() && Path::new(vga).exists() {
        return vec!["--bios", bios, "--vga-bios", vga];
    }
    assert!(
        std::env::var_os("RINGSIDE_REQUIRE_SEABIOS").is_none(),
        "RINGSIDE_REQUIRE_SEABIOS is set but {bios} or {vga} is missing"
    );
    eprintln!("SeaBIOS not installed: the serial shell test boots on our BIOS instead");
    Vec::new()
}

#[test]
fn a_command_typed_on_the_serial_console_runs_in_the_guests_shell() {
    let Some(img) = image() else { return };
    let child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--snapshot",
            "--headless",
            "--serial",
            "stdio",
            "--debugcon",
            "null",
            "--no-reboot",
            "--max-instructions",
            "40000000000",
        ])
        .args(seabios())
        .arg("--disk")
        .arg(&img)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = Guard(child);
    let mut stdout = g.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    let wait_for = |what: &str, seen: &mut Vec<u8>| {
        while !String::from_utf8_lossy(seen).contains(what) {
            let left = BOOT_LIMIT.saturating_sub(start.elapsed());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.extend_from_slice(&chunk),
                Err(_) => panic!(
                    "no {what:?} on the serial console; it ends with:\n{}",
                    tail(&String::from_utf8_lossy(seen))
                ),
            }
        }
    };
    wait_for("GUEST-SHELL-READY on /dev/ttyS0", &mut seen);
    wait_for("guest# ", &mut seen);
    let mut stdin = g.0.stdin.take().unwrap();
    // The shell computes the number: its output is not an echo of ours.
    stdin
        .write_all(b"echo hello-$((6*7)) $(uname -m)\n")
        .unwrap();
    stdin.flush().unwrap();
    wait_for("hello-42 i686", &mut seen);
    stdin.write_all(b"reboot -f\n").unwrap();
    stdin.flush().unwrap();
    let code = wait_exit(&mut g.0, Duration::from_secs(120));
    let mut err = String::new();
    g.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert_eq!(code, Some(5), "reboot under --no-reboot: {err}");
    assert!(err.contains("guest asked for a reset"), "{err}");
}

/// `xdotool ARGS` on `display`.
fn xdotool(display: &str, args: &[&str]) -> String {
    let o = Command::new("xdotool")
        .env("DISPLAY", display)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A key chord held long enough for the window's next frame to see it
/// (the window polls its keys once per frame).
fn chord(display: &str, keys: &str) {
    xdotool(display, &["keydown", keys]);
    std::thread::sleep(Duration::from_millis(150));
    xdotool(display, &["keyup", keys]);
}

fn screenshots(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map_while(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ringside-") && n.ends_with(".png"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_command_typed_into_the_window_runs_in_the_shell_on_the_vga_console() {
    let Some(img) = image() else { return };
    let what = "interactive Linux window test";
    let Some(x) = common::xvfb(1400, 0, what) else {
        return;
    };
    if !common::have_x_tool("xdotool", what) {
        return;
    }
    let dir = scratch("window");
    let serial = dir.join("serial.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env("DISPLAY", &x.display)
        .env("RUST_LOG", "ringside=info")
        .current_dir(&dir)
        .args([
            "run",
            "--snapshot",
            "--debugcon",
            "null",
            "--no-reboot",
            "--max-instructions",
            "40000000000",
            "--serial",
        ])
        .arg(format!("file:{}", serial.display()))
        .arg("--disk")
        .arg(&img)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = Guard(child);
    let mut stderr = g.0.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // Both shells start together; the serial one says when.
    let start = Instant::now();
    while !std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .contains("GUEST-SHELL-READY on /dev/ttyS0")
    {
        assert!(
            start.elapsed() < BOOT_LIMIT,
            "the guest's shell never started; serial console:\n{}",
            tail(&std::fs::read_to_string(&serial).unwrap_or_default())
        );
        assert!(g.0.try_wait().unwrap().is_none(), "ringside ended early");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let id = xdotool(&x.display, &["search", "--name", "^Ringside"]);
    let id = id.split_whitespace().next().expect("the window is open");
    // With no window manager, the keyboard goes to the window under the
    // pointer.
    xdotool(&x.display, &["mousemove", "--window", id, "100", "100"]);
    xdotool(
        &x.display,
        &[
            "type",
            "--delay",
            "120",
            "echo hello-$((6*7)) from the window",
        ],
    );
    xdotool(&x.display, &["key", "--delay", "120", "Return"]);
    // Screenshots by the host key until the shell's answer is on screen.
    let mut screen = Vec::new();
    let mut found = false;
    for _ in 0..60 {
        let before = screenshots(&dir).len();
        chord(&x.display, "ctrl+alt+s");
        let t = Instant::now();
        while screenshots(&dir).len() == before && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let Some(shot) = screenshots(&dir).pop() else {
            continue;
        };
        std::thread::sleep(Duration::from_millis(200)); // let the PNG be written whole
        let (w, h, rgba) = common::read_rgba_png(&shot);
        assert_eq!((w, h), (720, 400), "80x25 text on the kernel's console");
        screen = common::screen_text(&rgba, w, h);
        if screen.iter().any(|l| l == "hello-42 from the window") {
            found = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        found,
        "the shell's answer never appeared; last screen:\n{}",
        screen.join("\n")
    );
    assert!(
        screen
            .iter()
            .any(|l| l.ends_with("echo hello-$((6*7)) from the window")),
        "the typed command is not on screen:\n{}",
        screen.join("\n")
    );
    chord(&x.display, "ctrl+alt+q");
    let code = wait_exit(&mut g.0, Duration::from_secs(60));
    let log = log.join().unwrap();
    assert_eq!(code, Some(0), "quit from the window:\n{}", tail(&log));
    assert!(log.contains("quit key (Ctrl+Alt+Q)"), "{}", tail(&log));
    let _ = std::fs::remove_dir_all(&dir);
}

fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(3000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
