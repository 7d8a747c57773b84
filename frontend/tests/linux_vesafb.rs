//! VBE end to end: the Linux guest image (`RINGSIDE_LINUX_IMAGE`, as
//! `linux_boot.rs`) with `vga=788` (VESA mode 0x114, 800x600 at 16 bpp) on
//! its kernel command line. The kernel's real-mode setup asks the BIOS for
//! the mode through INT 10h AX=4F01h/4F02h, vesafb takes the linear frame
//! buffer it reported, and the console runs on it: the serial log names
//! the frame buffer and mode, and the last screen is 800x600 and far from
//! blank. On our BIOS the frame buffer is at BAR0's default (0xE0000000);
//! on SeaBIOS with `vgabios-stdvga.bin` where SeaBIOS moved BAR0.
//!
//! The command line is edited in a copy of the image: SYSLINUX's config is
//! one small file on the FAT partition, so its `panic=-1` (8 bytes) is
//! overwritten in place with `vga=788 ` (the same length).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const SEABIOS: &str = "/usr/share/seabios/bios.bin";
const SEABIOS_STDVGA: &str = "/usr/share/seabios/vgabios-stdvga.bin";

/// A copy of `image` whose kernel command line asks for VESA mode 0x114.
fn vesa_image(image: &Path, tag: &str) -> PathBuf {
    let mut bytes = std::fs::read(image).expect("read the Linux image");
    let from = b"console=tty0 panic=-1";
    let to = b"console=tty0 vga=788 ";
    let hits: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| w == from)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "syslinux.cfg's APPEND line, once");
    bytes[hits[0]..hits[0] + to.len()].copy_from_slice(to);
    let out =
        std::env::temp_dir().join(format!("ringside-vesafb-{}-{tag}.img", std::process::id()));
    std::fs::write(&out, bytes).unwrap();
    out
}

/// Boot `image` (with `extra` arguments), return the serial log, the last
/// screen's size and its bright pixel count, and stderr.
fn boot(image: &Path, extra: &[&str], tag: &str) -> (String, (u32, u32), usize, String) {
    let serial =
        std::env::temp_dir().join(format!("ringside-vesafb-{}-{tag}.txt", std::process::id()));
    let shot = serial.with_extension("png");
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(["run", "--headless", "--debugcon", "null", "--no-reboot"])
        .args(["--max-instructions", "20000000000"])
        .arg("--serial")
        .arg(format!("file:{}", serial.display()))
        .arg("--disk")
        .arg(image)
        .args(extra)
        .arg("--screenshot")
        .arg(&shot)
        .output()
        .unwrap();
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let (width, height, buf) = common::read_rgba_png(&shot);
    let lit = buf.chunks(4).filter(|p| p[0] > 0x80).count();
    let _ = std::fs::remove_file(&serial);
    let _ = std::fs::remove_file(&shot);
    assert_eq!(out.status.code(), Some(0), "{stderr}\n{console}");
    (console, (width as u32, height as u32), lit, stderr)
}

fn check(console: &str, size: (u32, u32), lit: usize, lfb: &str, stderr: &str) {
    for marker in [
        &format!("vesafb: framebuffer at {lfb}"),
        "vesafb: mode is 800x600x16",
        "fb0: VESA VGA frame buffer device",
        "GUEST-LOOP-DONE",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker:?}\n{stderr}\n{console}"
        );
    }
    assert_eq!(size, (800, 600), "the last screen is the VBE mode");
    assert!(
        lit > 5_000,
        "only {lit} bright pixels: the console looks empty"
    );
}

#[test]
fn linux_runs_its_console_on_vesafb_on_our_bios() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("vesafb test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    let img = vesa_image(Path::new(&image), "ours");
    let (console, size, lit, stderr) = boot(&img, &[], "ours");
    let _ = std::fs::remove_file(&img);
    check(&console, size, lit, "0xe0000000", &stderr);
}

#[test]
fn linux_runs_its_console_on_vesafb_on_seabios_with_stdvga() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("vesafb test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    if !Path::new(SEABIOS).is_file() || !Path::new(SEABIOS_STDVGA).is_file() {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_THIRD_PARTY_ROMS").is_none(),
            "{SEABIOS} or {SEABIOS_STDVGA} missing"
        );
        common::not_run(&format!(
            "vesafb on SeaBIOS: {SEABIOS} or {SEABIOS_STDVGA} not found (apt-get install seabios)"
        ));
        return;
    }
    let img = vesa_image(Path::new(&image), "seabios");
    let (console, size, lit, stderr) = boot(
        &img,
        &["--bios", SEABIOS, "--vga-bios", SEABIOS_STDVGA],
        "seabios",
    );
    let _ = std::fs::remove_file(&img);
    // SeaBIOS allocates the 16 MiB BAR top-down below the I/O APIC.
    check(&console, size, lit, "0xfd000000", &stderr);
}
