//! The debugger through the `ringside` binary: `--debug-script` over our
//! own guests, and a real gdb (Debian's, in batch mode) against `--gdb`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("ringside-dbg-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

fn ringside() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringside"))
}

#[test]
fn script_over_pmtest() {
    let rom = file("pm.bin", ringside_roms::PMTEST);
    let script = file(
        "pm.txt",
        b"# break where ring 3 starts\nb F2000\nc\nr\ninfo gdt\nu /2\ncatch vector d\nc\nbl\nq\n",
    );
    let out = ringside()
        .args(["run", "--debugcon", "null", "--bios"])
        .arg(&rom)
        .arg("--debug-script")
        .arg(&script)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "F000:FFF0 (FFFFFFF0)  EA000000F0           jmp 0F000h:0",
        "(ringside) b F2000",
        "breakpoint 1 at 001B:000F2000",
        "mode: protected mode, 32-bit code, CPL 3",
        "0018  base=00000000 limit=FFFFFFFF code readable 32-bit DPL=3 P G",
        "001B:000F2000 (000F2000)  66B82300             mov ax, 23h",
        "catchpoint 2: #GP(0x0) general protection at 001B:000F2039, CPL 3 by CLI; now at 0008:000F3000",
        "  2 on  catch  vector 0D  (hits 1)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn script_over_the_demo_runs_to_its_end() {
    let script = file("demo.txt", b"s 2\nc\n");
    let out = ringside()
        .args(["demo", "--debugcon", "null", "--debug-script"])
        .arg(&script)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stepped to F000:"), "{text}");
    assert!(
        text.contains("the guest's run ended: guest wrote 0x0 to the exit port"),
        "{text}"
    );
}

#[test]
fn bad_script_command_is_one_error_line() {
    let script = file("bad.txt", b"r\nfrobnicate 1\nr\n");
    let out = ringside()
        .args(["demo", "--debugcon", "null", "--debug-script"])
        .arg(&script)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.txt:2: frobnicate: unknown command"),
        "{err}"
    );
    let missing = ringside()
        .args(["demo", "--debug-script", "/nonexistent/script.txt"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/script.txt: cannot read")
    );
}

/// Debian's gdb in batch mode against `--gdb`, bounded in time.
#[test]
fn gdb_batch_session_in_real_and_protected_mode() {
    if !common::have_gdb("the gdb stub test over PMTEST") {
        return;
    }
    let rom = file("pm-gdb.bin", ringside_roms::PMTEST);
    // A free port: bind, note it, let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = ringside()
        .args(["run", "--debugcon", "null", "--bios"])
        .arg(&rom)
        .args(["--gdb", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Listening once we can no longer bind the port ourselves.
    let start = Instant::now();
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the stub did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("timeout")
        .args(["60", "gdb", "-batch", "-nx"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")])
        .args(["-ex", "info registers eip cs"])
        .args(["-ex", "x/2i $pc"])
        .args(["-ex", "stepi"])
        .args(["-ex", "info registers eip"])
        // One more forward, then back: at F000:0000 again.
        .args(["-ex", "stepi"])
        .args(["-ex", "info registers eip"])
        .args(["-ex", "reverse-stepi"])
        .args(["-ex", "info registers eip"])
        .args(["-ex", "break *0xf2000"])
        .args(["-ex", "continue"])
        .args(["-ex", "info registers cs eip"])
        // 32-bit code: gdb is told, as the README says.
        .args(["-ex", "set architecture i386"])
        .args(["-ex", "x/i $pc"])
        .args(["-ex", "monitor info gdt"])
        .args(["-ex", "watch *(char*)0x710"])
        .args(["-ex", "continue"])
        .args(["-ex", "detach"])
        .output()
        .expect("gdb");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(s)) = server.try_wait() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    for want in [
        // Real mode: the PC is CS.base + IP, the reset vector.
        "eip            0xfffffff0",
        "cs             0xf000",
        // The reset vector's far jump, decoded as 16-bit code.
        "=> 0xfffffff0:\tljmp   $0xf000,$0x0",
        "=> 0xf2000:\tmov    $0x23,%ax",
        // After the far jump: F000:0000 is linear F0000.
        "eip            0xf0000",
        "Breakpoint 1, 0x000f2000",
        "cs             0x1b",
        "0030  32-bit call gate -> 0008:000F3600 params=1 DPL=3 P",
        "Hardware watchpoint 2: *(char*)0x710",
        "New value",
    ] {
        assert!(
            text.contains(want),
            "missing {want:?} in gdb's output:\n{text}"
        );
    }
    // reverse-stepi came back to F000:0000 (seen before and after the
    // second stepi's different EIP).
    let eips: Vec<&str> = text.lines().filter(|l| l.starts_with("eip ")).collect();
    assert!(eips.len() >= 4, "{text}");
    assert!(
        eips[1].contains("0xf0000") && eips[3].contains("0xf0000"),
        "{eips:?}\n{text}"
    );
    assert!(!eips[2].contains("0xf0000 "), "{eips:?}");
    for unwanted in [
        "No more reverse-execution history",
        "support this operation",
    ] {
        assert!(!text.contains(unwanted), "{unwanted:?} in:\n{text}");
    }
    assert!(
        !text.contains("Remote 'g' packet reply is too long"),
        "{text}"
    );
    // Detached: the guest ran on to its exit (0 → status 1).
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{text}");
}

#[test]
fn gdb_on_a_non_loopback_address_needs_the_explicit_flag() {
    let out = ringside()
        .args(["demo", "--debugcon", "null", "--gdb", "0.0.0.0:0"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ringside: error: --gdb 0.0.0.0:0: not a loopback address"),
        "{err}"
    );
    let out = ringside()
        .args(["demo", "--gdb", "nowhere"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`nowhere` is not PORT or ADDR:PORT"), "{err}");
    // With the flag it listens there, after a warning.
    let mut child = ringside()
        .args([
            "demo",
            "--debugcon",
            "null",
            "--gdb",
            "0.0.0.0:0",
            "--gdb-allow-remote",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let start = Instant::now();
    while !seen
        .iter()
        .any(|l: &String| l.contains("waiting for gdb on 0.0.0.0:"))
    {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) => seen.push(l),
            Err(_) => assert!(start.elapsed() < Duration::from_secs(20), "{seen:?}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen[0].starts_with("ringside: warning: the gdb stub listens on 0.0.0.0:0, not loopback"),
        "{seen:?}"
    );
}

#[test]
fn bench_under_the_debugger_checks_the_same_results() {
    let out = ringside()
        .args(["bench", "call-ret", "--debugger", "--reverse"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("call-ret") && text.contains("checksum ok"),
        "{text}"
    );
    let out = ringside()
        .args(["bench", "int-loop", "--reverse"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn script_steps_back_with_rs() {
    let rom = file("pm-rs.bin", ringside_roms::PMTEST);
    let script = file("rs.txt", b"s 5\nrs 2\ninfo mode\nrs 10\nq\n");
    let out = ringside()
        .args(["run", "--debugcon", "null", "--bios"])
        .arg(&rom)
        .arg("--debug-script")
        .arg(&script)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    // The script stops at its first failing command, with one error line.
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}");
    assert!(text.contains("(ringside) rs 2\nstepped to "), "{text}");
    assert!(
        err.contains(":4: rs: only 3 instructions have run"),
        "{err}"
    );
}

/// Start `ringside run ARGS --gdb PORT`, run gdb in batch mode with
/// `commands` against it (bounded in time), and return gdb's output
/// (stdout and stderr).
fn gdb_against(args: &[&std::ffi::OsStr], commands: &[&str]) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port");
    let mut server = ringside()
        .args(args)
        .args(["--gdb", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the stub did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut gdb = Command::new("timeout");
    gdb.args(["60", "gdb", "-batch", "-nx"])
        .args(["-ex", &format!("target remote 127.0.0.1:{port}")]);
    for c in commands {
        gdb.args(["-ex", c]);
    }
    let out = gdb.output().expect("gdb");
    let _ = server.kill();
    let _ = server.wait();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A 64 KiB disk whose boot sector is `cli; mov eax, 1234h; inc eax;
/// jmp $`: the 32-bit MOV (66 B8 34 12 00 00) at 0x7C01 is what a 16-bit
/// disassembler shows as `mov $0x1234,%eax` and a 32-bit one as
/// `mov $0x1234,%ax` followed by garbage.
fn boot_sector_disk(name: &str) -> PathBuf {
    let mut disk = vec![0u8; 64 * 1024];
    let code = [
        0xFA, 0x66, 0xB8, 0x34, 0x12, 0x00, 0x00, 0x66, 0x40, 0xEB, 0xFE,
    ];
    disk[..code.len()].copy_from_slice(&code);
    disk[510] = 0x55;
    disk[511] = 0xAA;
    file(name, &disk)
}

/// gdb with no `set architecture`: the stub's target description names
/// i8086 while the CPU runs 16-bit code, so the reset vector, a boot
/// sector and each step disassemble as real-mode code; `reverse-continue`
/// goes back to the breakpoint, then to the start of the recording.
#[test]
fn gdb_disassembles_real_mode_code_as_16_bit_and_reverse_continues() {
    if !common::have_gdb("the gdb real-mode disassembly test") {
        return;
    }
    let disk = boot_sector_disk("boot16.img");
    let text = gdb_against(
        &[
            "run".as_ref(),
            "--headless".as_ref(),
            "--snapshot".as_ref(),
            "--debugcon".as_ref(),
            "null".as_ref(),
            "--hda".as_ref(),
            disk.as_os_str(),
        ],
        &[
            "show architecture",
            "x/i $pc",
            "break *0x7c00",
            "continue",
            "x/2i 0x7c00",
            "stepi",
            "x/i $pc",
            "stepi",
            "x/i $pc",
            "info registers eax",
            "reverse-continue",
            "info registers eip eax",
            "reverse-continue",
            "info registers eip",
            "continue",
            "info registers eip",
            "kill",
        ],
    );
    for want in [
        "(currently \"i8086\")",
        "=> 0xfffffff0:\tljmp   $0xf000,$0x0",
        "Breakpoint 1, 0x00007c00",
        "   0x7c01:\tmov    $0x1234,%eax",
        "=> 0x7c01:\tmov    $0x1234,%eax",
        "=> 0x7c07:\tinc    %eax",
        "eax            0x1234 ",
        "No more reverse-execution history.",
    ] {
        assert!(
            text.contains(want),
            "missing {want:?} in gdb's output:\n{text}"
        );
    }
    assert!(!text.contains("$0x1234,%ax"), "32-bit disassembly:\n{text}");
    assert!(
        !text.contains("warning: A handler for the OS ABI"),
        "{text}"
    );
    // reverse-continue: back at the breakpoint (before the MOV ran), then
    // at the reset vector; continue reaches the breakpoint again.
    let eips: Vec<&str> = text.lines().filter(|l| l.starts_with("eip ")).collect();
    assert_eq!(eips.len(), 3, "{text}");
    assert!(eips[0].contains("0x7c00 "), "{text}");
    assert!(eips[1].contains("0xfffffff0 "), "{text}");
    assert!(eips[2].contains("0x7c00 "), "{text}");
    assert_eq!(
        text.matches("Breakpoint 1, 0x00007c00").count(),
        3,
        "{text}"
    );
    let eax: Vec<&str> = text.lines().filter(|l| l.starts_with("eax ")).collect();
    assert_eq!(eax.len(), 2, "{text}");
    assert!(
        !eax[1].contains("0x1234 "),
        "the MOV was not undone: {text}"
    );
}
