//! The protected-mode test guest (roms: `PMTEST`) run through the `ringside`
//! binary: every ring change, gate, fault and error code it prints must be
//! what the SDM says, which is also what QEMU prints for the same ROM.

use std::process::Command;

mod common;

fn rom_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ringside-pmtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn protected_mode_guest_prints_every_trap_as_the_sdm_says() {
    let rom = rom_file("pmtest.bin", ringside_roms::PMTEST);
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(["run", "--bios"])
        .arg(&rom)
        .args(["--max-instructions", "1000000"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        ringside_roms::PMTEST_EXPECTED,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "exit port written with 0 → status 1"
    );
}

#[test]
fn protected_mode_guest_matches_qemu() {
    if !common::have_qemu("QEMU comparison") {
        return;
    }
    let rom = rom_file("pmtest-qemu.bin", ringside_roms::PMTEST);
    let q = common::qemu_bios(&rom, &[]);
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        ringside_roms::PMTEST_EXPECTED
    );
    assert_eq!(q.status.code(), Some(1));
}

/// A ROM that triple-faults at once (IDT limit 0 in protected mode... here
/// simply: real mode with an IVT limit of 0 and an INT 3).
fn triple_fault_rom() -> Vec<u8> {
    let mut rom = vec![0xF4u8; 0x1_0000];
    // F000:0000: lidt [cs:0x100] (limit 0) ; int3  → #GP → #DF → shutdown.
    let code = [0x2E, 0x0F, 0x01, 0x1E, 0x00, 0x01, 0xCC];
    rom[..code.len()].copy_from_slice(&code);
    rom[0x100..0x106].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    rom[0xFFF0..0xFFF5].copy_from_slice(&[0xEA, 0x00, 0x00, 0x00, 0xF0]);
    rom
}

#[test]
fn no_reboot_ends_the_run_on_a_triple_fault() {
    let rom = rom_file("triple.bin", &triple_fault_rom());
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args([
            "run",
            "--no-reboot",
            "--max-instructions",
            "10000",
            "--bios",
        ])
        .arg(&rom)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("triple fault at F000:"), "{stderr}");
    // Without the flag the guest resets and loops until the limit.
    let out = Command::new(env!("CARGO_BIN_EXE_ringside"))
        .args(["run", "--max-instructions", "10000", "--bios"])
        .arg(&rom)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124));
}
