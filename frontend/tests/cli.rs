//! The `ringside` binary as a user (or CI script) runs it: exit statuses,
//! console text, the end-of-run summary, and one-line errors for bad input.
//! Guest programs are a few hand-assembled bytes (commented) in a ROM from
//! `ringside_roms::rom_with_code`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ringside_roms::rom_with_code;

mod common;

fn ringside() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ringside"));
    // Keep the test independent of the caller's logging settings.
    c.env_remove("RUST_LOG");
    c
}

/// A fresh scratch directory for one test.
fn scratch(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_rom(dir: &Path, code: &[u8]) -> PathBuf {
    let p = dir.join("test.rom");
    std::fs::write(&p, rom_with_code(code)).unwrap();
    p
}

fn run_rom(test: &str, code: &[u8], extra: &[&str]) -> Output {
    let dir = scratch(test);
    let rom = write_rom(&dir, code);
    let out = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&rom)
        .args(extra)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_summary(o: &Output, post: &str) {
    let e = stderr(o);
    assert!(
        e.contains(&format!("last POST code: {post}\n")),
        "stderr: {e}"
    );
    assert!(e.contains("instructions executed: "), "stderr: {e}");
}

/// Exactly one line on stderr, of the form `ringside: error: …`, that names
/// `name`; exit status 2; no panic.
fn assert_one_line_error(o: &Output, name: &str) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {e}");
    assert_eq!(e.lines().count(), 1, "stderr: {e}");
    assert!(e.starts_with("ringside: error: "), "stderr: {e}");
    assert!(e.contains(name), "stderr should name {name}: {e}");
    assert!(!e.contains("panicked"), "stderr: {e}");
}

#[test]
fn demo_boots_through_our_bios_to_ring_3_and_a_trap() {
    let o = ringside().arg("demo").output().unwrap();
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {out}\nstderr: {}",
        stderr(&o)
    );
    // Our BIOS's POST and boot lines on its log (stderr by default); the
    // debug console has the guest's text alone, from its first byte.
    let log = stderr(&o);
    assert!(log.starts_with("ringside-bios: POST:"), "{log}");
    assert!(
        log.contains("Booting from hard disk (drive 80h)...\n"),
        "our BIOS boots the demo disk: {log}"
    );
    assert!(
        out.starts_with(ringside_roms::DEMO_DISK_EXPECTED),
        "{out}\nwanted:\n{}",
        ringside_roms::DEMO_DISK_EXPECTED
    );
    for line in [
        "[2] protected mode, CPL 0",
        "IRET to ring 3",
        "[4] ring 3: printed by a system call, INT 80h",
        "[5] #GP trapped: error code 0000, CS:EIP 001B:00008500",
        "[7] INT 80h exit call from ring 3: all checks passed.",
    ] {
        assert!(out.contains(line), "missing {line}: {out}");
    }
    assert!(
        out.contains("demo: the guest passed all its checks"),
        "{out}"
    );
    assert_summary(&o, "0C");
}

#[test]
fn demo_disk_can_be_saved_and_boots_with_run() {
    let dir = scratch("save-disk");
    let p = dir.join("demo.img");
    let o = ringside()
        .args(["demo", "--save-disk"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&p).unwrap(), ringside_roms::DEMO_DISK);
    let o = ringside()
        .args(["run", "--headless", "--disk"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "exit port 0: {}", stderr(&o));
    assert!(stdout(&o).contains(ringside_roms::DEMO_DISK_EXPECTED));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The demo disk on QEMU (its SeaBIOS loads the boot sector) prints the
/// same text on the debug console; skipped without QEMU unless
/// `RINGSIDE_REQUIRE_QEMU` is set.
#[test]
fn demo_disk_prints_the_same_on_qemu() {
    if !common::have_qemu("demo disk comparison") {
        return;
    }
    let dir = scratch("demo-qemu");
    let p = dir.join("demo.img");
    std::fs::write(&p, ringside_roms::DEMO_DISK).unwrap();
    let o = Command::new("timeout")
        .args(["60", "qemu-system-i386", "-display", "none", "-no-reboot"])
        .args(["-debugcon", "stdio"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .arg("-drive")
        .arg(format!("file={},format=raw,snapshot=on", p.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout(&o), ringside_roms::DEMO_DISK_EXPECTED);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rom_demo_exits_zero_and_tells_what_it_did() {
    let o = ringside().args(["demo", "--rom-demo"]).output().unwrap();
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {out}\nstderr: {}",
        stderr(&o)
    );
    assert!(out.starts_with(ringside_roms::DEMO_BANNER), "{out}");
    for section in [
        "[1] real mode",
        "[2] arithmetic",
        "[3] strings",
        "[4] software interrupt",
        "[5] exception",
        "[6] self-modifying code",
        "[7] stack",
    ] {
        assert!(out.contains(section), "missing {section}: {out}");
    }
    assert!(
        out.contains(
            "1+2+...+100 = 5050, 8! = 40320, 12! = 479001600, 1000000 / 7 = 142857 remainder 1"
        ),
        "{out}"
    );
    assert!(out.contains("REPNE SCASB measured 14 bytes"), "{out}");
    assert!(
        out.contains("returned 1111h, after we patched it 2222h"),
        "{out}"
    );
    assert!(out.contains(ringside_roms::DEMO_SUCCESS), "{out}");
    assert!(
        out.contains("demo: the guest passed all its checks"),
        "{out}"
    );
    assert_summary(&o, "08");
}

#[test]
fn demo_with_null_console_and_limits() {
    let o = ringside()
        .args(["demo", "--debugcon", "null", "--memory", "4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        !out.contains("ringside-bios") && !out.contains("Ringside boot demo"),
        "{out}"
    );
    assert!(
        out.contains("demo: the guest passed all its checks"),
        "{out}"
    );
    let o = ringside()
        .args(["demo", "--max-instructions", "50"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(124));
    assert!(
        stderr(&o).contains("instructions executed: 50\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn demo_rom_can_be_saved() {
    let dir = scratch("save-rom");
    let p = dir.join("demo.rom");
    let o = ringside()
        .args(["demo", "--save-rom"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&p).unwrap(), ringside_roms::DEMO);
    // And it runs as an ordinary ROM, exiting through port 0xF4 like QEMU.
    let o = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_port_write_sets_the_status_like_qemu() {
    for (v, status) in [(0u8, 1), (5, 11), (0x7F, 255)] {
        let o = run_rom(
            &format!("exit-{v}"),
            &[
                0xB0, v, // mov al, v
                0xE6, 0xF4, // out 0xF4, al
                0xEB, 0xFE, // jmp $
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(status), "v={v}: {}", stderr(&o));
        assert!(stderr(&o).contains("exit port"), "{}", stderr(&o));
        assert_summary(&o, "none");
    }
}

#[test]
fn dword_write_to_exit_port() {
    let o = run_rom(
        "exit-dword",
        &[
            0x66, 0xB8, 0x03, 0x00, 0x00, 0x00, // mov eax, 3
            0x66, 0xE7, 0xF4, // out 0xF4, eax
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(7));
}

#[test]
fn max_instructions_ends_with_124() {
    let o = run_rom("max", &[0xEB, 0xFE], &["--max-instructions", "1000"]); // jmp $
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("instruction limit"), "{e}");
    assert!(e.contains("instructions executed: 1000\n"), "{e}");
}

#[test]
fn cli_hlt_ends_with_3() {
    let o = run_rom("cli-hlt", &[0xFA, 0xF4], &[]); // cli; hlt
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupts disabled"), "{}", stderr(&o));
    assert_summary(&o, "none");
}

#[test]
fn sti_hlt_without_interrupt_sources_ends_too() {
    let o = run_rom("sti-hlt", &[0xFB, 0xF4], &[]); // sti; hlt
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no device"), "{}", stderr(&o));
}

#[test]
fn console_text_and_post_codes() {
    let code = [
        0xB0, b'h', // mov al, 'h'
        0xE6, 0xE9, // out 0xE9, al
        0xB0, b'i', // mov al, 'i'
        0xE6, 0xE9, // out 0xE9, al
        0xB0, 0x42, // mov al, 0x42
        0xE6, 0x80, // out 0x80, al
        0xBA, 0x90, 0x01, // mov dx, 0x190
        0xB0, 0xC3, // mov al, 0xC3
        0xEE, // out dx, al
        0xE6, 0xF4, // out 0xF4, al (exit with 0xC3)
    ];
    let o = run_rom("post", &code, &[]);
    assert_eq!(stdout(&o), "hi");
    assert_summary(&o, "42");
    assert_eq!(o.status.code(), Some(0x87)); // (0xC3 << 1 | 1) & 0xFF
    let o = run_rom("post-extra", &code, &["--post-port", "0x190"]);
    assert_summary(&o, "C3");
}

#[test]
fn debugcon_to_a_file() {
    let dir = scratch("debugcon-file");
    let rom = write_rom(
        &dir,
        &[
            0xB0, b'Z', // mov al, 'Z'
            0xE6, 0xE9, // out 0xE9, al
            0xE6, 0xF4, // out 0xF4, al
        ],
    );
    let log = dir.join("console.txt");
    let o = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&rom)
        .arg("--debugcon")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some((((b'Z' as i32) << 1) | 1) & 0xFF));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "Z");
    assert_eq!(stdout(&o), "");
    let bad = dir.join("no-such-dir").join("console.txt");
    let o = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&rom)
        .arg("--debugcon")
        .arg(&bad)
        .output()
        .unwrap();
    assert_one_line_error(&o, "console.txt");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_ports_read_all_ones() {
    let o = run_rom(
        "open-bus",
        &[
            0xE4, 0x55, // in al, 0x55
            0xE6, 0xF4, // out 0xF4, al
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0xFF)); // (0xFF << 1 | 1) & 0xFF
}

#[test]
fn wrongly_sized_rom_is_one_error_line() {
    let dir = scratch("bad-size");
    let p = dir.join("short.rom");
    std::fs::write(&p, vec![0u8; 65535]).unwrap();
    let o = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&p)
        .output()
        .unwrap();
    assert_one_line_error(&o, "short.rom");
    assert!(stderr(&o).contains("65535"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_rom_is_one_error_line() {
    let o = ringside()
        .args(["run", "--bios", "/nonexistent/ringside-missing.rom"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "/nonexistent/ringside-missing.rom");
}

#[test]
fn bad_options_exit_2() {
    let o = ringside()
        .args(["run", "--bios", "x.rom", "--post-port", "zz"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = ringside().args(["demo", "--memory", "0"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = ringside()
        .args(["bench", "no-such-workload"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "no-such-workload");
}

#[test]
fn bench_reports_mips() {
    let o = ringside()
        .args([
            "bench",
            "int-loop",
            "call-ret",
            "--max-instructions",
            "200000",
        ])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("MIPS") && out.contains("ns/instr"), "{out}");
    assert!(
        out.contains("int-loop") && out.contains("call-ret"),
        "{out}"
    );
    assert!(!out.contains("mem-loop"), "{out}");
}

#[test]
fn rep_movs_benchmark_runs_to_its_checksum() {
    // The only workload short enough to run whole in a test: few
    // instructions, 96 MiB moved.
    let o = ringside().args(["bench", "rep-movs"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("checksum ok"), "{}", stdout(&o));
}

/// ROM images whose observable behaviour (console bytes and exit status)
/// must be the same here as on QEMU.
fn qemu_parity_cases() -> Vec<(&'static str, Vec<u8>)> {
    let a20 = |bit: u8| {
        vec![
            0xB0, bit, // mov al, bit
            0xE6, 0x92, // out 0x92, al
            0x31, 0xC0, // xor ax, ax
            0x8E, 0xD8, // mov ds, ax
            0xC6, 0x06, 0x00, 0x00, 0x5A, // mov byte [0], 0x5A
            0xB8, 0xFF, 0xFF, // mov ax, 0xFFFF
            0x8E, 0xC0, // mov es, ax
            0x26, 0xA0, 0x10, 0x00, // mov al, [es:0x10]
            0xE6, 0xF4, // out 0xF4, al
        ]
    };
    let reboot = |trigger: &[u8]| {
        let mut c = vec![
            0x31, 0xC0, // xor ax, ax
            0x8E, 0xD8, // mov ds, ax
            0x80, 0x3E, 0x00, 0x05, 0x01, // cmp byte [0x500], 1
            0x74, 0x00, // je second (patched)
            0xC6, 0x06, 0x00, 0x05, 0x01, // mov byte [0x500], 1
        ];
        c.extend_from_slice(trigger);
        c.extend_from_slice(&[0xEB, 0xFE]); // jmp $
        c[10] = (c.len() - 11) as u8;
        c.extend_from_slice(&[0xB0, 0x07, 0xE6, 0xF4]); // second: mov al, 7; out 0xF4, al
        c
    };
    let programs = vec![
        ("a20-closed", a20(0x00)),
        ("a20-open", a20(0x02)),
        // lidt [0x600] (zero limit); int3
        (
            "triple-fault",
            reboot(&[0x0F, 0x01, 0x1E, 0x00, 0x06, 0xCC]),
        ),
        // in al, 0x92; or al, 1; out 0x92, al
        ("fast-reset", reboot(&[0xE4, 0x92, 0x0C, 0x01, 0xE6, 0x92])),
        // in al, PORT; out 0xF4, al
        ("open-bus", vec![0xE4, 0x55, 0xE6, 0xF4]),
        ("debugcon-readback", vec![0xE4, 0xE9, 0xE6, 0xF4]),
        ("exit-readback", vec![0xE4, 0xF4, 0xE6, 0xF4]),
        ("port-92-readback", vec![0xE4, 0x92, 0xE6, 0xF4]),
        // mov eax, 0x0A0B0C0D; out 0xF4, eax
        (
            "exit-dword",
            vec![0x66, 0xB8, 0x0D, 0x0C, 0x0B, 0x0A, 0x66, 0xE7, 0xF4],
        ),
        // mov al, 9; out 0xF7, al
        ("exit-f7", vec![0xB0, 0x09, 0xE6, 0xF7]),
    ];
    let mut images = vec![("demo", ringside_roms::DEMO.to_vec())];
    images.extend(
        programs
            .into_iter()
            .map(|(name, code)| (name, rom_with_code(&code))),
    );
    images
}

/// Runs each case on QEMU too when `qemu-system-i386` is installed (Debian
/// package `qemu-system-x86`); without it there is nothing to compare with,
/// and the test says so and passes, unless `RINGSIDE_REQUIRE_QEMU` is set
/// (`.ci/run` sets it after installing QEMU), when a missing QEMU fails it.
#[test]
fn behaves_like_qemu_when_qemu_is_installed() {
    if !common::have_qemu("QEMU comparison") {
        return;
    }
    let dir = scratch("qemu-parity");
    for (name, image) in qemu_parity_cases() {
        let rom = dir.join(format!("{name}.rom"));
        std::fs::write(&rom, image).unwrap();
        let ours = ringside()
            .arg("run")
            .arg("--bios")
            .arg(&rom)
            .args(["--max-instructions", "50000000"])
            .output()
            .unwrap();
        let qemu = common::qemu_bios(&rom, &[]);
        assert_eq!(
            ours.status.code(),
            qemu.status.code(),
            "{name}: exit status"
        );
        assert_eq!(stdout(&ours), stdout(&qemu), "{name}: console");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conformance_singlestep_runs_a_suite() {
    let Some(dir) = ringside_conformance::singlestep::data_or_skip(
        "singlestep-286",
        "conformance_singlestep_runs_a_suite",
    ) else {
        return;
    };
    let o = ringside()
        .args(["conformance", "singlestep"])
        .arg(&dir)
        .args(["--only", "00", "--max-tests", "50"])
        .output()
        .unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let last = out.lines().last().unwrap_or_default();
    assert!(
        last.ends_with("skipped") && last.contains(" passed, 0 failed"),
        "{out}"
    );
}

#[test]
fn conformance_singlestep_bad_dir_is_one_error_line() {
    let o = ringside()
        .args(["conformance", "singlestep", "/nonexistent/ringside-suite"])
        .output()
        .unwrap();
    assert_one_line_error(&o, "/nonexistent/ringside-suite");
}

#[test]
fn serial_output_goes_to_a_file() {
    let dir = scratch("serial-file");
    let out_file = dir.join("com1.txt");
    let rom = write_rom(
        &dir,
        &[
            0xBA, 0xF8, 0x03, // mov dx, 0x3F8
            0xB0, b'S', // mov al, 'S'
            0xEE, // out dx, al
            0xB0, b'\n', // mov al, '\n'
            0xEE,  // out dx, al
            0xB0, 0x00, // mov al, 0
            0xE6, 0xF4, // out 0xF4, al
        ],
    );
    let o = ringside()
        .arg("run")
        .arg("--bios")
        .arg(&rom)
        .arg("--serial")
        .arg(format!("file:{}", out_file.display()))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out_file).unwrap(), b"S\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_serial_file_is_one_error_line() {
    let o = run_rom(
        "serial-bad",
        &[0xE6, 0xF4],
        &["--serial", "file:/nonexistent-dir/com1.txt"],
    );
    assert_one_line_error(&o, "/nonexistent-dir/com1.txt");
    assert!(stderr(&o).contains("--serial"), "{}", stderr(&o));
}

#[test]
fn bad_rtc_value_is_rejected() {
    let o = run_rom("rtc-bad", &[0xE6, 0xF4], &["--rtc", "2023-02-30T00:00:00"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--rtc"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"));
}

/// The timer guest (PIC, PIT, RTC, 8042 programmed by the guest itself)
/// prints the same here twice and, where QEMU is installed, the same as
/// QEMU started with a 486 (no local APIC, whose reset state would block
/// the 8259's INTR) and its RTC at our default date on the VM clock.
#[test]
fn timer_guest_is_deterministic_and_matches_qemu() {
    let dir = scratch("timer-guest");
    let rom = dir.join("timer.rom");
    std::fs::write(&rom, ringside_roms::TIMER).unwrap();
    let ours = || {
        ringside()
            .arg("run")
            .arg("--bios")
            .arg(&rom)
            .output()
            .unwrap()
    };
    let (a, b) = (ours(), ours());
    assert_eq!(a.status.code(), Some(1), "{}", stderr(&a));
    assert!(stdout(&a).contains("IRQ0 ticks counted while halting: 10\n"));
    assert_eq!(stdout(&a), stdout(&b));
    assert_eq!(stderr(&a), stderr(&b), "same instruction count");
    if common::have_qemu("timer guest QEMU comparison") {
        let q = common::qemu_bios(
            &rom,
            &["-cpu", "486", "-rtc", "base=2000-01-01T00:00:00,clock=vm"],
        );
        assert_eq!(q.status.code(), a.status.code(), "exit status vs QEMU");
        // The seconds after the RTC interrupts depend on QEMU's timing.
        let stable = |s: String| {
            s.lines()
                .filter(|l| !l.contains("seconds now"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        };
        assert_eq!(stable(stdout(&a)), stable(stdout(&q)), "console vs QEMU");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
