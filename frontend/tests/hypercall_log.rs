//! Our BIOS's services are hypercalls (paravirtualization): each one shows
//! in the trap log as such, with the BIOS routine that made it.

use std::process::Command;

#[test]
fn bios_hypercalls_appear_in_the_trap_log() {
    let log = std::env::temp_dir().join(format!("ringside-hypercalls-{}.log", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--headless",
            "--debugcon",
            "null",
            "--max-instructions",
            "3000000",
        ])
        .args(["--trap-log-events", "hypercall", "--trap-log"])
        .arg(&log)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.contains("hypercall 0x10 from int10_video")
                && l.contains("paravirtualization")),
        "stderr: {}\nlog: {}",
        String::from_utf8_lossy(&out.stderr),
        &text[..text.len().min(2000)]
    );
    assert!(
        text.lines().all(|l| l.contains("hypercall")),
        "only hypercall events were asked for"
    );
    let _ = std::fs::remove_file(&log);
}
