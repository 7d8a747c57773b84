//! Machine tests: tiny hand-assembled ROMs (bytes commented with their
//! instructions) and the built-in demo.

use super::*;
use ringside_roms::rom_with_code;

fn machine(code: &[u8]) -> Machine {
    let config = MachineConfig {
        memory_mib: 2,
        console: Console::Capture(Vec::new()),
        extra_post_port: Some(0x84),
        ..MachineConfig::default()
    };
    Machine::new(rom_with_code(code), config).expect("valid ROM")
}

fn run(code: &[u8], max: u64) -> (Machine, RunOutcome) {
    let mut m = machine(code);
    let out = m.run(RunLimits {
        max_instructions: Some(max),
    });
    (m, out)
}

fn console(m: &Machine) -> String {
    String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned()
}

#[test]
fn exit_port_value_becomes_the_outcome() {
    let (m, out) = run(
        &[
            0xB0, 0x2A, // mov al, 0x2A
            0xE6, 0xF4, // out 0xF4, al
            0xEB, 0xFE, // jmp $ (never reached)
        ],
        1000,
    );
    assert_eq!(out, RunOutcome::Exit(0x2A));
    assert_eq!(out.exit_status(), 0x55);
    // The far jump at the reset vector, MOV, OUT.
    assert_eq!(m.cpu.instructions, 3);
}

#[test]
fn word_write_to_exit_port_exits_too() {
    let (_, out) = run(
        &[
            0xB8, 0x01, 0x00, // mov ax, 1
            0xE7, 0xF4, // out 0xF4, ax
        ],
        1000,
    );
    assert_eq!(out, RunOutcome::Exit(1));
    assert_eq!(out.exit_status(), 3);
}

#[test]
fn console_and_post_codes() {
    let (m, out) = run(
        &[
            0xB0, b'o', // mov al, 'o'
            0xE6, 0xE9, // out 0xE9, al
            0xB0, b'k', // mov al, 'k'
            0xE6, 0xE9, // out 0xE9, al
            0xB0, 0x11, // mov al, 0x11
            0xE6, 0x80, // out 0x80, al
            0xB0, 0x5A, // mov al, 0x5A
            0xE6, 0x84, // out 0x84, al (the extra POST port)
            0xE4, 0x55, // in al, 0x55 (nothing there: all ones)
            0xE6, 0xF4, // out 0xF4, al
        ],
        1000,
    );
    assert_eq!(console(&m), "ok");
    assert_eq!(m.last_post_code(), Some(0x5A));
    assert_eq!(out, RunOutcome::Exit(0xFF));
    assert_eq!(m.summary_lines()[0], "last POST code: 5A");
}

#[test]
fn no_post_code_says_none() {
    let (m, _) = run(&[0xE6, 0xF4], 100); // out 0xF4, al
    assert_eq!(m.summary_lines()[0], "last POST code: none");
    assert!(m.summary_lines()[1].starts_with("instructions executed: "));
}

#[test]
fn instruction_limit_is_exact() {
    let (m, out) = run(&[0xEB, 0xFE], 12_345); // jmp $
    assert_eq!(out, RunOutcome::MaxInstructions);
    assert_eq!(out.exit_status(), 124);
    assert_eq!(m.cpu.instructions, 12_345);
}

#[test]
fn hlt_with_interrupts_off_ends_the_run() {
    let (_, out) = run(&[0xFA, 0xF4], 1000); // cli; hlt
    assert_eq!(out, RunOutcome::HaltedForever { cs: 0xF000, eip: 2 });
    assert_eq!(out.exit_status(), 3);
    assert!(out.describe().contains("F000:0001"), "{}", out.describe());
}

#[test]
fn hlt_with_interrupts_on_but_no_source_ends_the_run() {
    let (_, out) = run(&[0xFB, 0xF4], 1000); // sti; hlt
    assert_eq!(
        out,
        RunOutcome::HaltedNoInterruptSource { cs: 0xF000, eip: 2 }
    );
    assert_eq!(out.exit_status(), 3);
    assert!(out.describe().contains("no device"));
}

#[test]
fn port_92_closes_and_opens_a20() {
    // Write 0x5A at 0000:0000, then read FFFF:0010 (physical 0x100000),
    // which aliases it only while A20 is closed; exit with what was read.
    let program = |a20_bit: u8| {
        vec![
            0xB0, a20_bit, // mov al, a20_bit
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
    let (m, out) = run(&program(0x00), 1000);
    assert_eq!(out, RunOutcome::Exit(0x5A), "A20 closed: 1 MiB wraps to 0");
    assert!(!m.cpu.mem.a20_enabled());
    let (m, out) = run(&program(0x02), 1000);
    assert_eq!(
        out,
        RunOutcome::Exit(0x00),
        "A20 open: 1 MiB is its own byte"
    );
    assert!(m.cpu.mem.a20_enabled());
}

/// First boot: mark RAM, then `trigger`; the second boot finds the mark and
/// exits with 7. RAM survives a reset, as on a PC.
fn reboot_program(trigger: &[u8]) -> Vec<u8> {
    let mut code = vec![
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0x80, 0x3E, 0x00, 0x05, 0x01, // cmp byte [0x500], 1
        0x74, 0x00, // je second (patched below)
        0xC6, 0x06, 0x00, 0x05, 0x01, // mov byte [0x500], 1
    ];
    code.extend_from_slice(trigger);
    code.extend_from_slice(&[0xEB, 0xFE]); // jmp $ (only if the trigger fails)
    code[10] = (code.len() - 11) as u8;
    code.extend_from_slice(&[
        0xB0, 0x07, // second: mov al, 7
        0xE6, 0xF4, // out 0xF4, al
    ]);
    code
}

#[test]
fn triple_fault_resets_the_machine() {
    // LIDT with a zero limit: INT3 finds no vector (#GP), nor does the #GP
    // (#DF), nor the #DF: shutdown, which a PC turns into a reset.
    let (m, out) = run(
        &reboot_program(&[
            0x0F, 0x01, 0x1E, 0x00, 0x06, // lidt [0x600] (zeros: limit 0)
            0xCC, // int3
        ]),
        10_000,
    );
    assert_eq!(out, RunOutcome::Exit(7));
    assert_eq!(m.stats().resets, 1);
}

#[test]
fn port_92_fast_reset() {
    let (m, out) = run(
        &reboot_program(&[
            0xE4, 0x92, // in al, 0x92
            0x0C, 0x01, // or al, 1
            0xE6, 0x92, // out 0x92, al
        ]),
        10_000,
    );
    assert_eq!(out, RunOutcome::Exit(7));
    assert_eq!(m.stats().resets, 1);
}

#[test]
fn the_demo_passes_its_own_checks() {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(ringside_roms::DEMO.to_vec(), config).unwrap();
    let out = m.run(RunLimits {
        max_instructions: Some(10_000_000),
    });
    let text = console(&m);
    assert_eq!(out, RunOutcome::Exit(0), "console:\n{text}");
    assert!(text.starts_with(ringside_roms::DEMO_BANNER), "{text}");
    assert!(text.contains("1+2+...+100 = 5050"), "{text}");
    assert!(text.contains("INT 60h"), "{text}");
    assert!(text.contains("#DE"), "{text}");
    assert!(
        text.trim_end().ends_with(ringside_roms::DEMO_SUCCESS),
        "{text}"
    );
    assert_eq!(m.last_post_code(), Some(0x08));
}

#[test]
fn bad_rom_sizes_are_errors_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("ringside-machine-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = dir.join("small.rom");
    std::fs::write(&small, [0u8; 1000]).unwrap();
    let e = Machine::from_rom_file(&small, MachineConfig::default()).unwrap_err();
    assert!(matches!(e, MachineError::RomSize { size: 1000, .. }));
    assert!(
        e.to_string().starts_with(&small.display().to_string()),
        "{e}"
    );
    let missing = dir.join("missing.rom");
    let e = Machine::from_rom_file(&missing, MachineConfig::default()).unwrap_err();
    assert!(matches!(e, MachineError::RomRead { .. }));
    assert!(e.to_string().contains("missing.rom"), "{e}");
    let e = Machine::from_rom_file(&dir, MachineConfig::default()).unwrap_err();
    assert!(e.to_string().contains("directory"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_memory_size_is_an_error() {
    let config = MachineConfig {
        memory_mib: 0,
        ..MachineConfig::default()
    };
    assert!(matches!(
        Machine::new(rom_with_code(&[0xF4]), config),
        Err(MachineError::Memory(_))
    ));
}

#[test]
fn outcomes_describe_themselves() {
    assert_eq!(RunOutcome::Exit(0).exit_status(), 1);
    assert_eq!(
        RunOutcome::Exit(0x80).exit_status(),
        1,
        "8-bit status, as the OS truncates QEMU's"
    );
    assert!(RunOutcome::Exit(2).describe().contains("exit status 5"));
    assert!(RunOutcome::MaxInstructions.describe().contains("limit"));
}

/// The benchmark guests print checksums the build script computed on its
/// own (and QEMU agrees with): running them whole checks about 400 million
/// instructions of loops, memory traffic, REP MOVSD and CALL/RET. Optimised
/// builds (`cargo test --release`, as CI runs) run them to the end; debug
/// builds only the first few million instructions of each.
#[test]
fn benchmark_guests_compute_their_checksums() {
    for w in ringside_roms::WORKLOADS.iter() {
        let config = MachineConfig {
            console: Console::Capture(Vec::new()),
            ..MachineConfig::default()
        };
        let mut m = Machine::new(w.rom.to_vec(), config).unwrap();
        if cfg!(debug_assertions) {
            let out = m.run(RunLimits {
                max_instructions: Some(3_000_000),
            });
            assert!(
                matches!(out, RunOutcome::MaxInstructions | RunOutcome::Exit(0)),
                "{}: {out:?}",
                w.name
            );
            continue;
        }
        let out = m.run(RunLimits {
            max_instructions: Some(1_000_000_000),
        });
        assert_eq!(out, RunOutcome::Exit(0), "{}", w.name);
        assert_eq!(console(&m), w.expected_output, "{}", w.name);
        assert_eq!(m.last_post_code(), Some(0x02), "{}", w.name);
    }
}

fn timer_machine() -> Machine {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    Machine::new(ringside_roms::TIMER.to_vec(), config).unwrap()
}

const TIMER_OUTPUT: &str = "8042 self-test: 0055\n\
    IRQ0 ticks counted while halting: 10\n\
    RTC date: 20000101 time: 0000\n\
    RTC periodic IRQ8 twice (2 Hz), seconds now: 0001\n\
    timer guest done\n";

#[test]
fn timer_guest_counts_irq0_and_reads_the_rtc() {
    let mut m = timer_machine();
    let out = m.run(RunLimits {
        max_instructions: Some(10_000_000),
    });
    assert_eq!(console(&m), TIMER_OUTPUT);
    assert_eq!(out, RunOutcome::Exit(0));
    let s = m.stats();
    assert_eq!(s.interrupts, 12, "ten IRQ0s and two IRQ8s");
    // About one virtual second passed, nearly all of it skipped in HLT.
    assert!(s.cycles >= DEFAULT_CPU_HZ, "{} cycles", s.cycles);
    assert!(
        s.cycles < DEFAULT_CPU_HZ + DEFAULT_CPU_HZ / 100,
        "{} cycles",
        s.cycles
    );
    assert!(s.idle_cycles > s.cycles * 9 / 10, "{s:?}");
    assert!(s.instructions < 10_000, "{} instructions", s.instructions);
}

#[test]
fn same_guest_twice_is_identical() {
    let run = || {
        let mut m = timer_machine();
        let out = m.run(RunLimits {
            max_instructions: Some(10_000_000),
        });
        (out, console(&m), m.stats().cycles, m.stats().instructions)
    };
    let first = run();
    assert_eq!(first, run());
    assert_eq!(first.0, RunOutcome::Exit(0));
}

#[test]
fn irq0_interval_follows_the_cpu_frequency() {
    // At 100 MHz the same ten 10 ms ticks take half the cycles.
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        cpu_hz: 100_000_000,
        ..MachineConfig::default()
    };
    let mut m = Machine::new(ringside_roms::TIMER.to_vec(), config).unwrap();
    assert_eq!(m.run(RunLimits::default()), RunOutcome::Exit(0));
    assert_eq!(console(&m), TIMER_OUTPUT);
    let c = m.stats().cycles;
    assert!((100_000_000..101_000_000).contains(&c), "{c}");
}

#[test]
fn rtc_start_comes_from_the_configuration() {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        rtc_start: DateTime {
            year: 2024,
            month: 2,
            day: 29,
            hour: 13,
            minute: 45,
            second: 10,
        },
        ..MachineConfig::default()
    };
    let mut m = Machine::new(ringside_roms::TIMER.to_vec(), config).unwrap();
    assert_eq!(m.run(RunLimits::default()), RunOutcome::Exit(0));
    let text = console(&m);
    assert!(text.contains("RTC date: 20240229 time: 1345\n"), "{text}");
    assert!(text.contains("seconds now: 0011\n"), "{text}");
}

#[test]
fn keyboard_controller_reset_pulse_resets_the_machine() {
    let (m, out) = run(
        &reboot_program(&[
            0xB0, 0xFE, // mov al, 0xFE
            0xE6, 0x64, // out 0x64, al
        ]),
        10_000,
    );
    assert_eq!(out, RunOutcome::Exit(7));
    assert_eq!(m.stats().resets, 1);
}

#[test]
fn hlt_with_every_irq_masked_ends_the_run() {
    // PIT running (mode 2), but the PIC masks everything: nothing wakes HLT.
    let (_, out) = run(
        &[
            0xB0, 0xFF, // mov al, 0xFF
            0xE6, 0x21, // out 0x21, al
            0xB0, 0x34, // mov al, 0x34
            0xE6, 0x43, // out 0x43, al
            0xE6, 0x40, // out 0x40, al
            0xE6, 0x40, // out 0x40, al
            0xFB, // sti
            0xF4, // hlt
        ],
        1000,
    );
    assert!(
        matches!(out, RunOutcome::HaltedNoInterruptSource { .. }),
        "{out:?}"
    );
}

/// Under `no_reboot` each way a guest asks for a reset ends the run with
/// [`RunOutcome::GuestReset`] (exit status 5) before the second boot, so
/// the mark the first boot left is never read back.
#[test]
fn guest_reset_under_no_reboot_ends_the_run() {
    let triggers: [(&str, &[u8]); 3] = [
        ("8042 pulse", &[0xB0, 0xFE, 0xE6, 0x64]), // mov al, 0xFE; out 0x64, al
        ("port 0x92", &[0xE4, 0x92, 0x0C, 0x01, 0xE6, 0x92]), // in; or al, 1; out
        // mov dx, 0xCF9; mov al, 6; out dx, al (PIIX3 reset control: hard reset)
        ("port 0xCF9", &[0xBA, 0xF9, 0x0C, 0xB0, 0x06, 0xEE]),
    ];
    for (what, trigger) in triggers {
        let mut m = machine(&reboot_program(trigger));
        m.no_reboot = true;
        let out = m.run(RunLimits {
            max_instructions: Some(10_000),
        });
        assert_eq!(out, RunOutcome::GuestReset, "{what}");
        assert_eq!(out.exit_status(), 5, "{what}");
        assert_eq!(m.stats().resets, 0, "{what}");
    }
    // A triple fault is not a guest request: it keeps its own status.
    let mut m = machine(&reboot_program(&[0x0F, 0x01, 0x1E, 0x00, 0x06, 0xCC]));
    m.no_reboot = true;
    let out = m.run(RunLimits {
        max_instructions: Some(10_000),
    });
    assert!(matches!(out, RunOutcome::TripleFault { .. }), "{out:?}");
    assert_eq!(out.exit_status(), 4);
}

/// Our BIOS boots a diskette whose boot sector writes a sector back with
/// INT 13h AH=03h and exits with the status in AH: 0, or 03h (write
/// protected) when the medium is.
fn floppy_write_status(write_protected: bool) -> (RunOutcome, Vec<u8>) {
    use crate::disk::{Disk, DiskMode};
    let code: &[u8] = &[
        0x31, 0xC0, // xor ax, ax
        0x8E, 0xD8, // mov ds, ax
        0x8E, 0xC0, // mov es, ax
        0xB8, 0x01, 0x03, // mov ax, 0301h
        0xBB, 0x00, 0x7C, // mov bx, 7C00h
        0xB9, 0x02, 0x00, // mov cx, 0002h
        0xBA, 0x00, 0x00, // mov dx, 0000h
        0xCD, 0x13, // int 13h
        0x88, 0xE0, // mov al, ah
        0xE6, 0xF4, // out 0F4h, al
        0xF4, // hlt
    ];
    let mut img = vec![0u8; 737_280];
    img[..code.len()].copy_from_slice(code);
    img[510] = 0x55;
    img[511] = 0xAA;
    let path = std::env::temp_dir().join(format!(
        "ringside-machine-{}-fdwp-{write_protected}.img",
        std::process::id()
    ));
    std::fs::write(&path, &img).unwrap();
    let mut m = Machine::with_our_bios(MachineConfig {
        memory_mib: 16,
        boot_order: vec![BootDevice::Floppy],
        ..MachineConfig::default()
    })
    .unwrap();
    let disk = Disk::open(&path, DiskMode::Snapshot).unwrap();
    let t = m.pc.attach_floppy(0, disk, write_protected).unwrap();
    assert_eq!(t, crate::fdc::FloppyType::K720);
    let _ = std::fs::remove_file(&path);
    let out = m.run(RunLimits {
        max_instructions: Some(50_000_000),
    });
    let mut sector = vec![0u8; 512];
    m.pc.fdc.drives[0]
        .disk
        .as_ref()
        .unwrap()
        .read_sectors(1, &mut sector)
        .unwrap();
    (out, sector)
}

#[test]
fn diskette_writes_reach_the_medium_unless_write_protected() {
    let (out, sector) = floppy_write_status(false);
    assert_eq!(out, RunOutcome::Exit(0));
    assert_eq!(
        &sector[..4],
        &[0x31, 0xC0, 0x8E, 0xD8],
        "boot sector copied"
    );
    let (out, sector) = floppy_write_status(true);
    assert_eq!(
        out,
        RunOutcome::Exit(3),
        "INT 13h status 03h: write protected"
    );
    assert!(sector.iter().all(|&b| b == 0));
}
