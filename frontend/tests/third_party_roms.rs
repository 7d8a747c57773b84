//! Third-party firmware from Debian packages on our board: SeaBIOS
//! (`seabios`: /usr/share/seabios/bios.bin and its VGA BIOSes), the Bochs
//! BIOS (`bochsbios`: /usr/share/bochs/BIOS-bochs-latest) and the LGPL VGA
//! BIOS (`vgabios`: /usr/share/vgabios/vgabios.bin), given with `--bios`
//! and `--vga-bios`.
//!
//! The tests that need those files run when they are installed. When they
//! are not, each test says so and passes, unless
//! `RINGSIDE_REQUIRE_THIRD_PARTY_ROMS` is set (`.ci/run` sets it after
//! installing the packages): then a missing file fails the test. The Linux
//! boot also needs `RINGSIDE_LINUX_IMAGE` (as `linux_boot.rs`).
//!
//! Screens are read through the debugger's `screen` command (the text the
//! VGA shows), run from a `--debug-script` after the guest stops.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SEABIOS: &str = "/usr/share/seabios/bios.bin";
const SEABIOS_VGA: &str = "/usr/share/seabios/vgabios-isavga.bin";
const SEABIOS_STDVGA: &str = "/usr/share/seabios/vgabios-stdvga.bin";
const BOCHS_BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
const LGPL_VGA: &str = "/usr/share/vgabios/vgabios.bin";

/// The files a test needs, or `None` (with a message saying which file is
/// missing and what was skipped) when one is absent and not required.
fn roms(files: &[&str], what: &str) -> Option<Vec<PathBuf>> {
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !Path::new(f).is_file())
        .collect();
    if missing.is_empty() {
        return Some(files.iter().map(PathBuf::from).collect());
    }
    assert!(
        std::env::var_os("RINGSIDE_REQUIRE_THIRD_PARTY_ROMS").is_none(),
        "RINGSIDE_REQUIRE_THIRD_PARTY_ROMS is set but {} missing",
        missing.join(", ")
    );
    common::not_run(&format!(
        "{what}: {} not found (apt-get install seabios bochsbios vgabios)",
        missing.join(", ")
    ));
    None
}

fn ringside(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(args)
        .output()
        .expect("run ringside")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ringside-3p-{}-{name}", std::process::id()))
}

/// Run `run ARGS` under a debugger script that continues until the guest
/// stops (or the instruction limit), then prints the screen. Returns the
/// screen's text and the whole output for messages.
fn screen_after_run(args: &[&str], max_instructions: u64, tag: &str) -> (String, String) {
    screen_after_script(args, max_instructions, tag, "c\nscreen\n")
}

/// [`screen_after_run`] with another debugger script (it must end with
/// `screen`).
fn screen_after_script(
    args: &[&str],
    max_instructions: u64,
    tag: &str,
    commands: &str,
) -> (String, String) {
    let script = temp(&format!("{tag}.dbg"));
    std::fs::write(&script, commands).unwrap();
    let max = max_instructions.to_string();
    let mut all = vec![
        "run",
        "--headless",
        "--debugcon",
        "null",
        "--max-instructions",
        &max,
        "--debug-script",
        script.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let out = ringside(&all);
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The screen is what follows the `screen` command's echo.
    let screen = stdout
        .rsplit_once("screen\n")
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    (screen, format!("stdout:\n{stdout}\nstderr:\n{stderr}"))
}

#[test]
fn our_bios_runs_the_lgpl_vga_bios_and_its_int10h_shows_our_banner() {
    let Some(r) = roms(&[LGPL_VGA], "VGA BIOS on our BIOS") else {
        return;
    };
    let (screen, all) = screen_after_run(
        &["--vga-bios", r[0].to_str().unwrap()],
        50_000_000,
        "ours-vga",
    );
    let banner = screen.find("Bochs VGABios").unwrap_or_else(|| {
        panic!("the VGA BIOS's banner is not on screen:\n{all}");
    });
    let ours = screen
        .find("Ringside BIOS")
        .unwrap_or_else(|| panic!("our banner is not on screen:\n{all}"));
    assert!(banner < ours, "ours comes after the VGA BIOS's:\n{all}");
    assert!(screen.contains("No bootable device"), "{all}");
}

#[test]
fn our_bios_without_a_vga_bios_keeps_its_own_video() {
    let (screen, all) = screen_after_run(&[], 50_000_000, "ours-plain");
    assert!(screen.starts_with("Ringside BIOS"), "{all}");
    assert!(!screen.contains("VGABios"), "{all}");
}

#[test]
fn bochs_bios_with_the_lgpl_vga_bios_shows_both_banners() {
    let Some(r) = roms(&[BOCHS_BIOS, LGPL_VGA], "Bochs BIOS screen") else {
        return;
    };
    let (screen, all) = screen_after_run(
        &[
            "--bios",
            r[0].to_str().unwrap(),
            "--vga-bios",
            r[1].to_str().unwrap(),
        ],
        300_000_000,
        "bochs-vga",
    );
    for want in [
        "Bochs VBE Display Adapter enabled",
        "Bochs 2.7 BIOS",
        "rombios32",
        "Booting from Hard Disk...",
        "FATAL: No bootable device.",
    ] {
        assert!(screen.contains(want), "missing {want:?}:\n{all}");
    }
}

#[test]
fn seabios_finds_its_vga_bios_through_fw_cfg_and_shows_its_banner() {
    let Some(r) = roms(&[SEABIOS, SEABIOS_VGA], "SeaBIOS screen") else {
        return;
    };
    seabios_says_no_bootable_device(&r[0], &r[1], "seabios-vga");
}

/// SeaBIOS with its VGA BIOS on the screen until its first retry.
/// SeaBIOS retries the boot every 60 s of virtual time by jumping to the
/// reset vector (F000:FFF0): stop there, with the message still on the
/// screen. (Stopping at an instruction count instead lands in the POST or
/// in the wait depending on how many instructions a POST takes; the limit
/// only bounds the run.)
fn seabios_says_no_bootable_device(bios: &Path, vga: &Path, tag: &str) {
    let (screen, all) = screen_after_script(
        &[
            "--bios",
            bios.to_str().unwrap(),
            "--vga-bios",
            vga.to_str().unwrap(),
        ],
        400_000_000,
        tag,
        "b F000:FFF0\nc\nscreen\n",
    );
    for want in ["SeaBIOS (version", "No bootable device."] {
        assert!(screen.contains(want), "missing {want:?}:\n{all}");
    }
}

/// SeaBIOS's Bochs/QEMU standard VGA BIOS finds the dispi interface (VBE
/// on this board) and still shows the text console.
#[test]
fn seabios_with_the_stdvga_bios_shows_its_banner_and_boots_the_demo() {
    let Some(r) = roms(&[SEABIOS, SEABIOS_STDVGA], "SeaBIOS with stdvga") else {
        return;
    };
    seabios_says_no_bootable_device(&r[0], &r[1], "seabios-stdvga");
    demo_passes(&r[0], &r[1]);
}

/// The built-in demo's disk, booted by each third-party BIOS: the guest
/// checks itself and writes 0 to the exit port.
fn demo_passes(bios: &Path, vga: &Path) {
    let out = ringside(&[
        "demo",
        "--headless",
        "--max-instructions",
        "2000000000",
        "--bios",
        bios.to_str().unwrap(),
        "--vga-bios",
        vga.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("demo: the guest passed all its checks"),
        "{}:\nstdout:\n{stdout}\nstderr:\n{stderr}",
        bios.display()
    );
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn the_demo_boots_on_the_bochs_bios() {
    if let Some(r) = roms(&[BOCHS_BIOS, LGPL_VGA], "demo on the Bochs BIOS") {
        demo_passes(&r[0], &r[1]);
    }
}

#[test]
fn the_demo_boots_on_seabios() {
    if let Some(r) = roms(&[SEABIOS, SEABIOS_VGA], "demo on SeaBIOS") {
        demo_passes(&r[0], &r[1]);
    }
}

/// Debian's i686 Linux (the image `.ci/run` builds) on the Bochs BIOS with
/// the LGPL VGA BIOS: rombios32 enumerates PCI (i440FX, PIIX3 and its IDE,
/// the PIIX4 power-management function), sets up SMM (opens SMRAM, raises
/// an SMI through port 0xB2 whose handler relocates SMBASE to 0xA0000),
/// builds the MP, SMBIOS and ACPI tables; the BIOS boots SYSLINUX from the
/// disk and Linux reaches its shell and runs the loop. Linux enables ACPI
/// by writing ACPI_ENABLE to the FADT's SMI command port (the BIOS's SMM
/// handler sets SCI_EN), and `poweroff` turns the machine off through
/// PM1a_CNT: status 0.
#[test]
fn linux_boots_to_its_shell_on_the_bochs_bios() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("Linux on the Bochs BIOS: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    let Some(r) = roms(&[BOCHS_BIOS, LGPL_VGA], "Linux on the Bochs BIOS") else {
        return;
    };
    let serial = temp("bochs-linux-serial.txt");
    let serial_arg = format!("file:{}", serial.display());
    let out = ringside(&[
        "run",
        "--snapshot",
        "--headless",
        "--debugcon",
        "null",
        "--no-reboot",
        "--max-instructions",
        "20000000000",
        "--bios",
        r[0].to_str().unwrap(),
        "--vga-bios",
        r[1].to_str().unwrap(),
        "--serial",
        &serial_arg,
        "--disk",
        image.to_str().unwrap(),
    ]);
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    let _ = std::fs::remove_file(&serial);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = console
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    for marker in [
        "BIOS Bochs 2.7",
        "MPTABLE: OEM ID: BOCHSCPU",
        "GUEST-BOOT-OK",
        "GNU/Linux",
        "guest-loop: n=20000 sum=667472",
        "GUEST-LOOP-DONE",
        "ACPI: Interpreter enabled",
        "reboot: Power down",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker:?}\nstderr: {stderr}\nconsole tail:\n{tail}"
        );
    }
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("powered the machine off"), "{stderr}");
}

#[test]
fn a_bad_vga_bios_is_one_error_line_naming_the_file_with_status_2() {
    let not_rom = temp("not-a-rom.bin");
    std::fs::write(&not_rom, b"MZ this is not an option ROM").unwrap();
    let cases = [
        (
            "/nonexistent/vgabios.bin".to_string(),
            "cannot read option ROM image",
        ),
        (not_rom.display().to_string(), "55h AAh"),
        (std::env::temp_dir().display().to_string(), "is a directory"),
    ];
    for (file, why) in &cases {
        for cmd in ["run", "demo"] {
            let out = ringside(&[cmd, "--headless", "--vga-bios", file]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {file}: {stderr}");
            let want = format!("ringside: error: {file}: ");
            assert!(
                stderr.starts_with(&want) && stderr.contains(why),
                "{cmd} {file}: {stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
    let _ = std::fs::remove_file(&not_rom);
}

#[test]
fn vga_bios_is_a_spec_key_and_the_command_line_wins() {
    let dir = temp("spec");
    std::fs::create_dir_all(&dir).unwrap();
    let spec = dir.join("vm.toml");
    std::fs::write(&spec, "[machine]\nvga_bios = \"vga.bin\"\n").unwrap();
    let spec_arg = spec.to_str().unwrap();
    // Relative to the spec file's folder.
    let out = ringside(&["run", "--config", spec_arg, "--print-config"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    let want = format!("vga_bios = \"{}\"", dir.join("vga.bin").display());
    assert!(printed.contains(&want), "{printed}");
    let out = ringside(&[
        "run",
        "--config",
        spec_arg,
        "--vga-bios",
        "/x/other.bin",
        "--print-config",
    ]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("vga_bios = \"/x/other.bin\""), "{printed}");
    // Without one, the printed spec says our BIOS's INT 10h serves.
    let out = ringside(&["run", "--print-config"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("# vga_bios = \"FILE\""), "{printed}");
    // A bad value is a one-line error naming the file, line and key.
    std::fs::write(&spec, "[machine]\nvga_bios = 3\n").unwrap();
    let out = ringside(&["run", "--config", spec_arg]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{spec_arg}:2: [machine] vga_bios")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
