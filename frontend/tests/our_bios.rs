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
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0x43), "{log}");
    // Our BIOS's log on stderr; the debug console is the guest's alone.
    assert!(log.contains("Booting from hard disk (drive 80h)"), "{log}");
    assert_eq!(out, "MBR ok\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nothing_to_boot_is_reported_and_stops() {
    let dir = scratch("noboot");
    std::fs::write(dir.join("blank.img"), vec![0u8; 32 * 512]).unwrap();
    let o = run(&dir, &["--disk", "blank.img", "--boot", "cdrom,disk"]);
    let out = String::from_utf8_lossy(&o.stderr);
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
    let out = String::from_utf8_lossy(&o.stderr);
    let err = &out;
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
    let out = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{out}");
    assert!(
        out.contains("no disc in the drive (the tray is empty)"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Port 0xE9 is the guest's: under our BIOS, `--debugcon FILE` holds
/// exactly the bytes the guest wrote there and nothing of ours; our BIOS's
/// lines go to `--bios-log` (a file here, or nowhere with `null`, and
/// stderr by default).
#[test]
fn the_debug_console_holds_only_the_guests_bytes() {
    let dir = scratch("debugcon");
    std::fs::write(dir.join("mbr.img"), mbr()).unwrap();
    let o = run(
        &dir,
        &[
            "--disk",
            "mbr.img",
            "--snapshot",
            "--debugcon",
            "guest.txt",
            "--bios-log",
            "bios.txt",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0x43), "{err}");
    assert_eq!(std::fs::read(dir.join("guest.txt")).unwrap(), b"MBR ok\n");
    let log = std::fs::read_to_string(dir.join("bios.txt")).unwrap();
    assert!(log.starts_with("ringside-bios: POST: "), "{log}");
    assert!(
        log.ends_with("Booting from hard disk (drive 80h)...\n"),
        "{log}"
    );
    assert!(!err.contains("ringside-bios"), "{err}");
    // A 16 KiB disk is not "0 MiB".
    assert!(
        log.contains(": disk \"") && log.contains(" 32 sectors (16 KiB), "),
        "{log}"
    );
    // `null`: our lines go nowhere, the guest's still to the console.
    let o = run(
        &dir,
        &["--disk", "mbr.img", "--snapshot", "--bios-log", "null"],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "MBR ok\n");
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains("ringside-bios"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The spec file's key, relative to the file.
    std::fs::write(
        dir.join("vm.toml"),
        "[disks]\ndisk = [\"mbr.img\"]\nsnapshot = true\n[console]\ndebugcon = \"null\"\nbios_log = \"spec-bios.txt\"\n",
    )
    .unwrap();
    let o = run(&dir, &["--config", "vm.toml"]);
    assert_eq!(o.status.code(), Some(0x43));
    assert!(o.stdout.is_empty());
    let log = std::fs::read_to_string(dir.join("spec-bios.txt")).unwrap();
    assert!(log.contains("Booting from hard disk (drive 80h)"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
