//! The first milestone end to end: Debian's i686 Linux kernel and a busybox
//! initramfs (built from Debian packages by scripts/
//! build-linux-guest.sh) boot on our own BIOS through SYSLINUX to a shell,
//! run a CPU-bound shell loop, and power off through ACPI (our BIOS's FADT
//! and `\_S5`, the board's PM1a_CNT); all on the serial console.
//!
//! `.ci/run` builds the image and points `RINGSIDE_LINUX_IMAGE` at it; then
//! this test is required. Without the variable (a developer machine without
//! the image) it says so and does nothing.

mod common;

use std::process::Command;

#[test]
fn linux_i686_boots_to_a_shell_on_our_bios() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("Linux boot test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    let serial =
        std::env::temp_dir().join(format!("ringside-linux-serial-{}.txt", std::process::id()));
    let shot = serial.with_extension("png");
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--snapshot",
            "--headless",
            "--debugcon",
            "null",
            "--no-reboot",
        ])
        .args(["--max-instructions", "20000000000"])
        .arg("--serial")
        .arg(format!("file:{}", serial.display()))
        .arg("--disk")
        .arg(&image)
        .arg("--screenshot")
        .arg(&shot)
        .output()
        .unwrap();
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    for marker in [
        "GUEST-BOOT-OK",
        "GNU/Linux",
        "model name\t: Pentium II",
        "guest-loop: n=20000 sum=667472",
        "GUEST-LOOP-DONE",
        "ACPI: RSDP",
        "ACPI: PM: (supports S0 S5)",
        "clocksource: acpi_pm",
        "ACPI: PM: Preparing to enter system sleep state S5",
        "reboot: Power down",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker:?}\nstderr: {stderr}\nconsole tail: {}",
            tail(&console)
        );
    }
    assert!(
        !console.contains("ACPI Error"),
        "the kernel complained about our ACPI tables or registers:\n{console}"
    );
    // The kernel's VGA console was on screen too: the last screen is 80x25
    // text (720x400) and far from blank.
    let (width, height, buf) = common::read_rgba_png(&shot);
    assert_eq!((width, height), (720, 400));
    let lit = buf.chunks(4).filter(|p| p[0] > 0x80).count();
    assert!(
        lit > 5_000,
        "only {lit} bright pixels: the console looks empty"
    );
    // poweroff -f: ACPI S5 ends the run with status 0.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("powered the machine off"), "{stderr}");
}

/// The same image on SeaBIOS (Debian package `seabios`; `.ci/run`
/// installs it and sets `RINGSIDE_REQUIRE_SEABIOS`): SeaBIOS shadows
/// itself through the PAM registers, loads our ACPI tables through the
/// board's fw_cfg interface (QEMU's table-loader files), boots SYSLINUX
/// from the disk; Linux reaches its shell and powers off through ACPI
/// (status 0).
#[test]
fn linux_i686_boots_to_a_shell_on_seabios() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("SeaBIOS Linux boot test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    let bios = std::path::Path::new("/usr/share/seabios/bios.bin");
    if !bios.exists() {
        assert!(
            std::env::var_os("RINGSIDE_REQUIRE_SEABIOS").is_none(),
            "RINGSIDE_REQUIRE_SEABIOS is set but {} is missing",
            bios.display()
        );
        common::not_run(&format!(
            "{} not found (apt-get install seabios): SeaBIOS Linux boot test skipped",
            bios.display()
        ));
        return;
    }
    let serial = std::env::temp_dir().join(format!(
        "ringside-linux-seabios-serial-{}.txt",
        std::process::id()
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(["run", "--snapshot", "--headless", "--no-reboot"])
        .args(["--debugcon", "null", "--max-instructions", "20000000000"])
        .arg("--bios")
        .arg(bios)
        .arg("--serial")
        .arg(format!("file:{}", serial.display()))
        .arg("--disk")
        .arg(&image)
        .output()
        .unwrap();
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    let _ = std::fs::remove_file(&serial);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for marker in [
        "GUEST-BOOT-OK",
        "guest-loop: n=20000 sum=667472",
        "GUEST-LOOP-DONE",
        "ACPI: RSDP",
        "ACPI: PM: (supports S0 S5)",
        "reboot: Power down",
    ] {
        assert!(
            console.contains(marker),
            "missing {marker:?}\nstderr: {stderr}\nconsole tail: {}",
            tail(&console)
        );
    }
    assert!(!console.contains("ACPI Error"), "{console}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

fn tail(s: &str) -> &str {
    &s[s.len().saturating_sub(2000)..]
}

/// Issue 7's "done when": from the reset vector to the Linux kernel's
/// protected-mode entry (0010:00100000, after SYSLINUX and the kernel's
/// real-mode setup) with the REPL, and one instruction back with `rs`.
#[test]
fn debugger_steps_to_the_kernels_protected_mode_entry_and_back() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("Linux debugger test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    let script =
        std::env::temp_dir().join(format!("ringside-linux-dbg-{}.txt", std::process::id()));
    // The first 0x100000 hit is SYSLINUX's own code (CS 0x20); the kernel's
    // boot GDT has its code at 0x10.
    std::fs::write(&script, "lb 100000 if cs==10\nc\nr\nrs 1\nr\ns\nr\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--snapshot",
            "--headless",
            "--debugcon",
            "null",
            "--serial",
            "null",
        ])
        .arg("--disk")
        .arg(&image)
        .arg("--debug-script")
        .arg(&script)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let eips: Vec<&str> = text.lines().filter(|l| l.starts_with("eip=")).collect();
    assert_eq!(eips.len(), 3, "{text}");
    assert!(text.contains("breakpoint 1 at 0010:00100000"), "{text}");
    assert!(eips[0].starts_with("eip=00100000"), "{text}");
    assert!(
        !eips[1].starts_with("eip=00100000"),
        "rs 1 went back before the entry: {text}"
    );
    assert!(
        eips[2].starts_with("eip=00100000"),
        "and s comes back to it: {text}"
    );
    assert!(
        text.contains("mode: protected mode, 32-bit code, CPL 0"),
        "{text}"
    );
    let _ = std::fs::remove_file(&script);
}

/// The same with Debian's gdb against `--gdb`: a conditional breakpoint on
/// the kernel's entry, `reverse-stepi`, `stepi`.
#[test]
fn gdb_reaches_the_kernels_protected_mode_entry_and_steps_back() {
    let Some(image) = std::env::var_os("RINGSIDE_LINUX_IMAGE") else {
        common::not_run("Linux gdb test: RINGSIDE_LINUX_IMAGE not set; build the guest with `scripts/build-linux-guest.sh DIR` (as root, on Debian or Ubuntu; .ci/run does it) and set RINGSIDE_LINUX_IMAGE=DIR/linux-i686.img");
        return;
    };
    if !common::have_gdb("the Linux gdb test") {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--snapshot",
            "--headless",
            "--debugcon",
            "null",
            "--serial",
            "null",
        ])
        .arg("--disk")
        .arg(&image)
        .args(["--gdb", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let start = std::time::Instant::now();
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        assert!(start.elapsed().as_secs() < 20, "the stub did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = Command::new("timeout")
        .args(["120", "gdb", "-batch", "-nx"])
        .args(["-ex", "set architecture i386"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", "break *0x100000 if $cs == 0x10"])
        .args(["-ex", "continue"])
        .args(["-ex", "info registers eip cs"])
        .args(["-ex", "reverse-stepi"])
        .args(["-ex", "info registers eip"])
        .args(["-ex", "stepi"])
        .args(["-ex", "info registers eip"])
        .args(["-ex", "kill"])
        .output()
        .expect("gdb");
    let _ = server.kill();
    let _ = server.wait();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let eips: Vec<&str> = text.lines().filter(|l| l.starts_with("eip ")).collect();
    assert_eq!(eips.len(), 3, "{text}");
    assert!(eips[0].contains("0x100000 "), "{text}");
    assert!(
        !eips[1].contains("0x100000 "),
        "reverse-stepi went back: {text}"
    );
    assert!(eips[2].contains("0x100000 "), "{text}");
    assert!(text.contains("cs             0x10"), "{text}");
}
