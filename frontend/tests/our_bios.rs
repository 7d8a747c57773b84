//! `ringside run` without `--bios`: our own BIOS boots the disks given with
//! `--disk` in `--boot` order, or says why it cannot.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-our-bios-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .arg("run")
        .args(["--max-instructions", "50000000"])
        .args(args)
        .output()
        .unwrap()
}

/// An MBR that prints "MBR ok\n" on port 0xE9 and exits with 0x21.
fn mbr() -> Vec<u8> {
    let mut code = Vec::new();
    for &c in b"MBR ok\n" {
        code.extend_from_slice(&[0xB0, c, 0xE6, 0xE9]); // mov al, c; out 0xE9, al
    }
    code.extend_from_slice(&[0xB0, 0x21, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]); // exit 0x21; hlt loop
    let mut img = vec![0u8; 32 * 512];
    img[..code.len()].copy_from_slice(&code);
    img[510] = 0x55;
    img[511] = 0xAA;
    img
}

#[test]
fn run_without_bios_boots_the_disk() {
    let dir = scratch("boot");
    std::fs::write(dir.join("mbr.img"), mbr()).unwrap();
    let o = run(&dir, &["--disk", "mbr.img", "--snapshot"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0x43),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("Booting from hard disk (drive 80h)"), "{out}");
    assert!(out.ends_with("MBR ok\n"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_to_boot_is_reported_and_stops() {
    let dir = scratch("noboot");
    std::fs::write(dir.join("blank.img"), vec![0u8; 32 * 512]).unwrap();
    let o = run(&dir, &["--disk", "blank.img", "--boot", "cdrom,disk"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "halted for good");
    assert!(
        out.contains("Boot from CD-ROM failed: no CD-ROM drive"),
        "{out}"
    );
    assert!(out.contains("no boot signature"), "{out}");
    assert!(out.contains("No bootable device"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_cd_tray_is_reported_on_screen_and_on_the_console() {
    let dir = scratch("emptytray");
    std::fs::write(dir.join("blank.img"), vec![0u8; 32 * 512]).unwrap();
    let o = run(
        &dir,
        &[
            "--disk",
            "blank.img",
            "--cdrom",
            "empty",
            "--boot",
            "cdrom,disk",
            "--headless",
            "--screenshot",
            "shot.png",
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "halted for good: {err}");
    // The drive is found at POST (it answers IDENTIFY PACKET), then the
    // boot attempt says why it failed, and the next device is tried.
    assert!(
        out.contains(
            "Boot from CD-ROM failed: CD-ROM E0h: no disc in the drive (the tray is empty)"
        ),
        "{out}"
    );
    assert!(out.contains("no boot signature"), "{out}");
    assert!(out.contains("No bootable device"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
    // The same words are on the VGA screen (the BIOS's teletype).
    let (w, h, rgba) = common::read_rgba_png(&dir.join("shot.png"));
    let screen = common::screen_text(&rgba, w, h);
    assert!(
        screen
            .iter()
            .any(|l| l.contains("no disc in the drive (the tray is empty)")),
        "not on screen:\n{}",
        screen.join("\n")
    );
    // The machine spec says it the same way.
    std::fs::write(
        dir.join("vm.toml"),
        "[machine]\nboot = [\"cdrom\", \"disk\"]\n[disks]\ndisk = [\"blank.img\"]\ncdrom = \"empty\"\n",
    )
    .unwrap();
    let o = run(&dir, &["--config", "vm.toml", "--headless"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("no disc in the drive (the tray is empty)"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
