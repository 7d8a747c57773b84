//! GRUB 2 as a smoke test: Debian's GRUB (i386-pc) boots from a CD (El
//! Torito no-emulation, `grub-mkrescue`) and from a hard disk (boot.img in
//! the MBR, core.img after it, /boot/grub on a FAT partition), runs the
//! commands of its grub.cfg on the serial console (its platform and CPU, the
//! root device it derived from DL, `ls` of the devices it found through
//! INT 13h, its own directory and a file read through its iso9660 or FAT
//! driver, its SHA-256, `cpuid -l`, `sleep 1`), and powers off with `halt`
//! through our ACPI tables (\_S5, PM1a_CNT): exit status 0.
//!
//! The images come from `scripts/make-grub-images.sh`, run here into
//! `target/grub-images` unless `RINGSIDE_GRUB_IMAGES` names a directory
//! that already holds them (`.ci/run` builds them there and sets
//! `RINGSIDE_REQUIRE_GRUB=1`). Without GRUB's packages the tests say so and
//! pass, unless `RINGSIDE_REQUIRE_GRUB` is set.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const SEABIOS: &str = "/usr/share/seabios/bios.bin";

/// The directory holding grub-cd.iso and grub-disk.img, built once per test
/// binary; `None` (after saying why) when GRUB's tools are missing.
fn images() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let required = std::env::var_os("RINGSIDE_REQUIRE_GRUB").is_some();
        if let Some(dir) = std::env::var_os("RINGSIDE_GRUB_IMAGES") {
            let dir = PathBuf::from(dir);
            if dir.join("grub-cd.iso").is_file() && dir.join("grub-disk.img").is_file() {
                return Some(dir);
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::var_os("RINGSIDE_GRUB_IMAGES")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/grub-images"));
        let out = Command::new("bash")
            .arg(root.join("scripts/make-grub-images.sh"))
            .arg(&dir)
            .output()
            .expect("bash runs");
        if out.status.success() {
            return Some(dir);
        }
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            !required,
            "RINGSIDE_REQUIRE_GRUB is set but make-grub-images.sh failed:\n{why}"
        );
        common::not_run(&format!(
            "GRUB images could not be built (apt-get install grub-pc-bin grub-common \
             xorriso mtools): GRUB tests skipped\n{why}"
        ));
        None
    })
    .as_deref()
}

/// Whether SeaBIOS is installed (required with `RINGSIDE_REQUIRE_SEABIOS`).
fn have_seabios() -> bool {
    let have = Path::new(SEABIOS).is_file();
    if !have {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_SEABIOS").is_none(),
            "RINGSIDE_REQUIRE_SEABIOS is set but {SEABIOS} is missing"
        );
        common::not_run(&format!(
            "GRUB on SeaBIOS: {SEABIOS} not found (apt-get install seabios)"
        ));
    }
    have
}

/// What a run left: the serial text (without CRs), the exit status, stderr
/// and the text on the VGA screen at the end.
struct Run {
    console: String,
    status: Option<i32>,
    stderr: String,
    screen: Vec<String>,
}

/// Boot with `args` headless, serial to a file, a screenshot at the end.
fn boot(name: &str, args: &[&str]) -> Run {
    let serial =
        std::env::temp_dir().join(format!("ringside-grub-{name}-{}.txt", std::process::id()));
    let shot = serial.with_extension("png");
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(["run", "--snapshot", "--headless", "--no-reboot"])
        .args(["--debugcon", "null", "--max-instructions", "2000000000"])
        .arg("--serial")
        .arg(format!("file:{}", serial.display()))
        .arg("--screenshot")
        .arg(&shot)
        .args(args)
        .output()
        .unwrap();
    let console = std::fs::read_to_string(&serial)
        .unwrap_or_default()
        .replace('\r', "");
    let screen = if shot.is_file() {
        let (w, h, rgba) = common::read_rgba_png(&shot);
        common::screen_text(&rgba, w, h)
    } else {
        Vec::new()
    };
    let _ = std::fs::remove_file(&serial);
    let _ = std::fs::remove_file(&shot);
    Run {
        console,
        status: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        screen,
    }
}

/// The SHA-256 of the ringside.txt the script writes on each image (as
/// `printf 'read from the ...\n' | sha256sum` gives it), which GRUB's
/// `sha256sum` computes from what it read (printed wrapped at 80 columns).
fn file_sha256(marker: &str) -> &'static str {
    match marker {
        "GRUB-CD" => "9caa4f1457cbe9c8c1d04a670ee2b595acdd1f9c1889066802ff21fe6454d1ac",
        _ => "451609d392b08dbf93e77567a09d9780dd8ec993bfe2b327a0efb6aec1d96333",
    }
}

/// On our BIOS GRUB's console terminal is INT 10h: the same lines are on
/// the VGA screen, after our POST's (a small CD's size in KiB).
fn check_screen(run: &Run, marker: &str, post: &str) {
    let screen = run.screen.join("\n");
    for want in [post, "Welcome to GRUB!", &format!("{marker}-HALT")] {
        assert!(screen.contains(want), "{want:?} not on screen:\n{screen}");
    }
}

/// GRUB ran its whole grub.cfg with `marker` (GRUB-CD / GRUB-DISK), printed
/// `first` (platform, CPU, root), listed exactly `devices`, read its file
/// and hashed it, found no long mode with `cpuid -l` (a P6), slept a second
/// on the BIOS's timer tick, and `halt` powered the machine off.
fn check(run: &Run, marker: &str, first: &str, devices: &str) {
    let Run {
        console,
        status,
        stderr,
        ..
    } = run;
    let ctx = || format!("stderr:\n{stderr}\nserial:\n{console}");
    let ls = console
        .split_once(&format!("{marker}-LS-BEGIN\n"))
        .and_then(|(_, rest)| rest.split_once(&format!("{marker}-LS-END")))
        .map(|(ls, _)| ls.trim_end())
        .unwrap_or_else(|| panic!("no ls output\n{}", ctx()));
    for want in [
        format!("{marker}-OK {first}\n"),
        // `ls /boot/grub/`, in the file system's order.
        " grub.cfg ".to_string(),
        "i386-pc/ ".to_string(),
        "ringside.txt ".to_string(),
        format!("{marker}-FILE-BEGIN\nread from the "),
        format!("{} \n/boot/grub/ringside.txt\n", file_sha256(marker)),
        format!("{marker}-CPUID no-long-mode\n"),
        format!("{marker}-SLEPT\n"),
        format!("{marker}-HALT"),
    ] {
        assert!(console.contains(&want), "missing {want:?}\n{}", ctx());
    }
    assert_eq!(ls, devices, "GRUB's devices\n{}", ctx());
    for bad in ["GRUB-HALT-FAILED", "error:"] {
        assert!(!console.contains(bad), "{bad:?} on the console\n{}", ctx());
    }
    assert_eq!(*status, Some(0), "{}", ctx());
    assert!(stderr.contains("powered the machine off"), "{}", ctx());
}

fn cd(dir: &Path) -> String {
    dir.join("grub-cd.iso").display().to_string()
}

fn disk(dir: &Path) -> String {
    dir.join("grub-disk.img").display().to_string()
}

// GRUB names the drive it booted from by DL: our CD-ROM is E0h, "hd96"
// (E0h - 80h) as root, and `cd` in its device list (a boot drive at 90h or
// above is a CD booted through cdboot.img). The ISO is hybrid: its MBR holds
// a partition table, hence (cd,msdos1).

#[test]
fn grub_cd_boots_on_our_bios() {
    let Some(dir) = images() else { return };
    let run = boot("cd", &["--cdrom", &cd(dir), "--boot", "cdrom"]);
    check(
        &run,
        "GRUB-CD",
        "platform=pc cpu=i386 root=hd96",
        "(cd) (cd,msdos1)",
    );
    check_screen(&run, "GRUB-CD", " KiB, drive E0h");
}

#[test]
fn grub_disk_boots_on_our_bios() {
    let Some(dir) = images() else { return };
    let run = boot("disk", &["--disk", &disk(dir)]);
    check(
        &run,
        "GRUB-DISK",
        "platform=pc cpu=i386 root=hd0,msdos1",
        "(hd0) (hd0,msdos1)",
    );
    check_screen(&run, "GRUB-DISK", "Booting from hard disk (drive 80h)");
}

#[test]
fn grub_cd_sees_the_hard_disk_too() {
    let Some(dir) = images() else { return };
    let run = boot(
        "cd-and-disk",
        &["--cdrom", &cd(dir), "--disk", &disk(dir), "--boot", "cdrom"],
    );
    check(
        &run,
        "GRUB-CD",
        "platform=pc cpu=i386 root=hd96",
        "(hd0) (hd0,msdos1) (cd) (cd,msdos1)",
    );
}

/// The rescue ISO written to a disk, as `dd` to a USB stick would: its
/// hybrid MBR (boot_hybrid.img) loads the same core.img by LBA.
#[test]
fn grub_hybrid_iso_boots_as_a_hard_disk() {
    let Some(dir) = images() else { return };
    let run = boot("hybrid", &["--disk", &cd(dir)]);
    check(
        &run,
        "GRUB-CD",
        "platform=pc cpu=i386 root=hd0",
        "(hd0) (hd0,msdos1)",
    );
}

#[test]
fn grub_cd_and_disk_boot_on_seabios() {
    let Some(dir) = images() else { return };
    if !have_seabios() {
        return;
    }
    let run = boot(
        "seabios-cd",
        &["--bios", SEABIOS, "--cdrom", &cd(dir), "--boot", "cdrom"],
    );
    check(
        &run,
        "GRUB-CD",
        "platform=pc cpu=i386 root=hd96",
        "(cd) (cd,msdos1)",
    );
    let run = boot("seabios-disk", &["--bios", SEABIOS, "--disk", &disk(dir)]);
    check(
        &run,
        "GRUB-DISK",
        "platform=pc cpu=i386 root=hd0,msdos1",
        "(hd0) (hd0,msdos1)",
    );
}
