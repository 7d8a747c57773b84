//! What several CLI test files need: whether QEMU is there to compare with,
//! and running a ROM on it the way our ROMs expect (`-bios`, the debug
//! console on stdio, isa-debug-exit at 0xF4).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

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
        eprintln!("qemu-system-i386 not installed: {what} skipped");
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
