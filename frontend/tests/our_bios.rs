//! `ringside run` without `--bios`: our own BIOS boots the disks given with
//! `--disk` in `--boot` order, or says why it cannot.

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
