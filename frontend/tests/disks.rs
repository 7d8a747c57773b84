//! `ringside run --hda/--hdb/--cdrom/--snapshot`: the disk guest through the
//! binary, and one-line errors (exit 2) for bad images.

use std::path::PathBuf;
use std::process::{Command, Output};

fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-disks-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Run the disk guest ROM with `args`; the scratch directory holds it.
fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    let rom = dir.join("idetest.rom");
    std::fs::write(&rom, ringside_roms::IDETEST).unwrap();
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .env_remove("RUST_LOG")
        .current_dir(dir)
        .arg("run")
        .arg("--bios")
        .arg(&rom)
        .args(["--max-instructions", "2000000"])
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn disk_guest_runs_and_snapshot_keeps_the_image() {
    let dir = scratch("guest");
    let img: Vec<u8> = (0..64 * 512).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("disk.img"), &img).unwrap();
    let o = run(&dir, &["--hda", "disk.img", "--snapshot"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit 0 → status 1; {}",
        stderr(&o)
    );
    assert!(out.contains("LBA28 sectors: 64\n"), "{out}");
    assert!(out.ends_with("disk guest done\n"), "{out}");
    assert_eq!(std::fs::read(dir.join("disk.img")).unwrap(), img);
    // Without --snapshot the guest's sector lands in the file.
    let o = run(&dir, &["--hda", "disk.img"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let after = std::fs::read(dir.join("disk.img")).unwrap();
    assert_eq!(after[5 * 512], 0x5A);
    assert_eq!(after.len(), img.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_images_are_one_line_errors_naming_the_file() {
    let dir = scratch("bad");
    std::fs::write(dir.join("odd.img"), [0u8; 1000]).unwrap();
    std::fs::write(dir.join("cd.iso"), [0u8; 512]).unwrap();
    std::fs::write(dir.join("ok.img"), [0u8; 4096]).unwrap();
    for (args, file, what) in [
        (&["--hda", "odd.img"][..], "odd.img", "multiple of 512"),
        (&["--hdb", "missing.img"][..], "missing.img", "cannot open"),
        (&["--cdrom", "cd.iso"][..], "cd.iso", "multiple of 2048"),
        (
            &["--hda", "ok.img", "--hdb", "ok.img"][..],
            "ok.img",
            "locked",
        ),
    ] {
        let o = run(&dir, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with("ringside: error: ") && err.contains(file),
            "{err}"
        );
        assert!(err.contains(what), "{err}");
    }
    assert_eq!(std::fs::read(dir.join("odd.img")).unwrap(), [0u8; 1000]);
    let _ = std::fs::remove_dir_all(&dir);
}
