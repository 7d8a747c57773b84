//! What several CLI test files need: whether QEMU is there to compare with,
//! and running a ROM on it the way our ROMs expect (`-bios`, the debug
//! console on stdio, isa-debug-exit at 0xF4).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Say that `what` was not run, why and how to get what it needs, as one
/// `NOT RUN: ...` line on the test run's own stderr: written straight to
/// the stream, since cargo's test harness captures `eprintln!` and shows it
/// only for a test that fails, and a skip must not pass silently.
pub fn not_run(why_and_how: &str) {
    use std::io::Write as _;
    // One write, so the harness's own lines do not cut through it.
    let line = format!("NOT RUN: {why_and_how}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Whether `qemu-system-i386` runs. Without it a comparison is skipped with
/// a message naming `what`, unless `RINGSIDE_REQUIRE_QEMU` is set (`.ci/run`
/// sets it after installing QEMU), when a missing QEMU fails the test.
pub fn have_qemu(what: &str) -> bool {
    let have = Command::new("qemu-system-i386")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_QEMU").is_none(),
            "RINGSIDE_REQUIRE_QEMU is set but qemu-system-i386 is not runnable"
        );
        not_run(&format!(
            "{what}: qemu-system-i386 is not installed (apt-get install qemu-system-x86)"
        ));
    }
    have
}

/// Whether Debian's (or any) `gdb` runs. Without it a gdb test is skipped
/// with a message naming `what` and how to get gdb, unless
/// `RINGSIDE_REQUIRE_GDB` is set (`.ci/run` sets it after installing gdb),
/// when a missing gdb fails the test.
pub fn have_gdb(what: &str) -> bool {
    let have = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_GDB").is_none(),
            "RINGSIDE_REQUIRE_GDB is set but gdb is not runnable"
        );
        not_run(&format!(
            "{what}: gdb is not installed (install gdb, e.g. `apt-get install gdb`; .ci/run does)"
        ));
    }
    have
}

/// Run `rom` as the system ROM on QEMU (bounded to 60 s), with `extra`
/// options before the ROM's own.
pub fn qemu_bios(rom: &Path, extra: &[&str]) -> Output {
    Command::new("timeout")
        .args(["60", "qemu-system-i386"])
        .args(extra)
        .args(["-display", "none", "-nodefaults", "-bios"])
        .arg(rom)
        .args([
            "-debugcon",
            "stdio",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ])
        .output()
        .expect("run qemu-system-i386")
}

/// An Xvfb server on a display of its own, killed on drop.
pub struct Xvfb {
    child: std::process::Child,
    /// `:N`, for `DISPLAY`.
    pub display: String,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `tool` runs. Without it a window test is skipped with a message
/// naming `what`, unless `RINGSIDE_REQUIRE_XVFB` is set (`.ci/run` sets it
/// after installing Xvfb and xdotool), when a missing tool fails the test.
pub fn have_x_tool(tool: &str, what: &str) -> bool {
    let arg = if tool == "xdotool" {
        "version"
    } else {
        "-help"
    };
    let have = Command::new(tool)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_XVFB").is_none(),
            "RINGSIDE_REQUIRE_XVFB is set but {tool} is not runnable"
        );
        not_run(&format!(
            "{what}: {tool} is not installed (apt-get install xvfb xdotool)"
        ));
    }
    have
}

/// Start Xvfb on display `base + n` (spread by the test's pid, so parallel
/// test binaries do not collide) and wait until it accepts connections.
pub fn xvfb(base: u32, n: u32, what: &str) -> Option<Xvfb> {
    if !have_x_tool("Xvfb", what) {
        return None;
    }
    let num = base + (std::process::id() % 500) * 2 + n;
    let display = format!(":{num}");
    let child = Command::new("Xvfb")
        .args([&display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start Xvfb");
    let socket = std::path::PathBuf::from(format!("/tmp/.X11-unix/X{num}"));
    let start = std::time::Instant::now();
    // The socket file appears at bind(), before the server listens: wait
    // until a connection is accepted, or a busy machine races the window.
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "Xvfb did not start on {display}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Some(Xvfb { child, display })
}

/// Read a text-mode screenshot back as text: each 9×16 cell of an RGBA
/// image (`width` × `height`) compared with the 8×16 font our BIOS loads.
/// A cell's background is its top-right pixel (the ninth column is always
/// background for the ASCII range); the cursor's rows (14–15) are ignored.
/// Cells that match no printable ASCII glyph read as `?`.
pub fn screen_text(rgba: &[u8], width: usize, height: usize) -> Vec<String> {
    use ringside_machine::vga::{font_8x16, GLYPH_BYTES};
    let font = font_8x16();
    let px = |x: usize, y: usize| &rgba[(y * width + x) * 4..(y * width + x) * 4 + 4];
    let mut lines = Vec::new();
    for row in 0..height / 16 {
        let mut line = String::new();
        for col in 0..width / 9 {
            let (x0, y0) = (col * 9, row * 16);
            let bg = px(x0 + 8, y0);
            let mut bits = [0u8; 14];
            for (y, b) in bits.iter_mut().enumerate() {
                for x in 0..8 {
                    if px(x0 + x, y0 + y) != bg {
                        *b |= 0x80 >> x;
                    }
                }
            }
            let c = (0x20u8..0x7F)
                .find(|&c| {
                    let g = &font[c as usize * GLYPH_BYTES..][..14];
                    g == bits
                })
                .map_or('?', char::from);
            line.push(c);
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

/// Decode an RGBA PNG: (width, height, pixels).
pub fn read_rgba_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgba);
    buf.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buf)
}
