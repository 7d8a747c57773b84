//! The debugger against our own guests: PMTEST (protected mode, rings,
//! gates, faults, tasks, V86) and DEMO (real mode). Addresses come from
//! roms/build/pmtest.rs's fixed layout.

use super::*;
use crate::{Console, MachineConfig};

const PRINT: u32 = 0xF0800;
const MAIN: u32 = 0xF1000;
const RING3: u32 = 0xF2000;
const GP_HANDLER: u32 = 0xF3000;
const SKIP_LEN: u32 = 0x704;

fn pmtest() -> Machine {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    Machine::new(ringside_roms::PMTEST.to_vec(), config).expect("machine")
}

fn cmd(d: &mut Debugger, m: &mut Machine, line: &str) -> String {
    let r = d.execute(m, line);
    assert!(!r.error, "`{line}` failed: {}", r.text);
    r.text
}

#[test]
fn stops_before_the_first_instruction_and_steps() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let u = cmd(&mut d, &mut m, "u /1");
    assert!(u.starts_with("F000:FFF0 (FFFFFFF0)"), "{u}");
    assert_eq!(m.cpu.instructions, 0);
    assert_eq!(d.resume(&mut m, Resume::Step(1)), StopCause::Stepped);
    assert_eq!(m.cpu.instructions, 1);
    // The reset vector jumps to F000:0000, the ROM's entry.
    assert_eq!(
        (m.cpu.segs[SegReg::Cs as usize].selector, m.cpu.eip),
        (0xF000, 0)
    );
    assert_eq!(d.resume(&mut m, Resume::Step(3)), StopCause::Stepped);
    assert_eq!(m.cpu.instructions, 4);
}

#[test]
fn breakpoint_at_ring3_entry_shows_cpl3() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "b F2000");
    let out = cmd(&mut d, &mut m, "c");
    assert!(out.starts_with("breakpoint 1 at 001B:000F2000"), "{out}");
    assert_eq!(m.cpu.cpl(), 3);
    let r = cmd(&mut d, &mut m, "r");
    assert!(r.contains("protected mode, 32-bit code, CPL 3"), "{r}");
    assert!(
        r.contains(
            "cs   001B  base=00000000 limit=FFFFFFFF attrs=C0FA code readable 32-bit DPL=3 P G"
        ),
        "{r}"
    );
    let gdt = cmd(&mut d, &mut m, "info gdt");
    assert!(
        gdt.contains("0008  base=00000000 limit=FFFFFFFF code readable 32-bit DPL=0 P G"),
        "{gdt}"
    );
    assert!(
        gdt.contains("0018  base=00000000 limit=FFFFFFFF code readable 32-bit DPL=3 P G"),
        "{gdt}"
    );
    assert!(
        gdt.contains("0028  base=00003000 limit=00002068 32-bit TSS (busy) DPL=0 P"),
        "{gdt}"
    );
    assert!(
        gdt.contains("0030  32-bit call gate -> 0008:000F3600 params=1 DPL=3 P"),
        "{gdt}"
    );
    assert!(
        gdt.contains("0038  base=00000000 limit=FFFFFFFF data writable big DPL=0 not present G"),
        "{gdt}"
    );
    let idt = cmd(&mut d, &mut m, "info idt");
    assert!(
        idt.contains("0D  32-bit interrupt gate -> 0008:000F3000 DPL=0 P"),
        "{idt}"
    );
    assert!(
        idt.contains("80  32-bit trap gate -> 0008:000F3400 DPL=3 P"),
        "{idt}"
    );
    let tss = cmd(&mut d, &mut m, "info tss");
    assert!(tss.contains("ss0:esp0=0010:00009000"), "{tss}");
    let u = cmd(&mut d, &mut m, "u cs:eip 2");
    assert!(u.starts_with("001B:000F2000 (000F2000)  66B82300"), "{u}");
    assert!(u.contains("mov ax, 23h"), "{u}");
    // The breakpoint counted its hit; continuing from it runs on.
    assert_eq!(d.points()[0].hits, 1);
}

#[test]
fn vector_13_stops_at_the_first_gp_with_its_error_code() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "catch vector d");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Event {
            id: 1,
            event:
                Event::Exception {
                    vector: 13,
                    error: Some(0),
                    cs: 0x1B,
                    cpl: 3,
                    ..
                },
        } => {}
        other => panic!("{other:?}"),
    }
    // Stopped after delivery: at the handler's first instruction, ring 0.
    assert_eq!(m.cpu.eip, GP_HANDLER);
    assert_eq!(m.cpu.cpl(), 0);
    // The next #GP is the IN from port 60h, error 0 again; the fourth is
    // MOV DS,10h with the selector as its error code.
    for _ in 0..2 {
        assert!(matches!(
            d.resume(&mut m, Resume::Continue),
            StopCause::Event { .. }
        ));
    }
    let text = cmd(&mut d, &mut m, "c");
    assert!(
        text.contains(
            "#GP(0x10) general protection at 001B:000F2074, CPL 3 by MOV: GDT selector 0x0010"
        ),
        "{text}"
    );
}

#[test]
fn write_watchpoint_on_a_ram_byte() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "watch w 704");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Watchpoint {
            id: 1,
            linear: SKIP_LEN,
            physical: SKIP_LEN,
            size: 1,
            write: true,
        } => {}
        other => panic!("{other:?}"),
    }
    // The real-mode REP MOVSB that copies the system tables to RAM passes
    // over it first (the stop comes after the whole instruction).
    assert_eq!(m.cpu.mode(), ringside_cpu::CpuMode::Real);
    assert!(matches!(
        d.resume(&mut m, Resume::Continue),
        StopCause::Watchpoint {
            id: 1,
            write: true,
            ..
        }
    ));
    // Then ring 3's `mov byte [704h], 1`.
    assert_eq!(m.cpu.mem.read_u8(SKIP_LEN), Some(1));
    assert_eq!(m.cpu.cpl(), 3);
    // A read watchpoint does not fire on writes: the GP handler's MOVZX is
    // the first read.
    cmd(&mut d, &mut m, "del 1");
    cmd(&mut d, &mut m, "watch r p 704");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Watchpoint {
            id: 2,
            write: false,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.cpu.cpl(), 0);
}

#[test]
fn mode_ring_task_and_port_catchpoints() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "catch port e9");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Port {
            port: 0xE9,
            write: true,
            value: 0x52, // 'R' of the title
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    cmd(&mut d, &mut m, "del all");
    cmd(&mut d, &mut m, "catch mode");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Event {
            event:
                Event::ModeChange {
                    from,
                    to,
                    paging: false,
                },
            ..
        } => {
            assert_eq!(
                (from, to),
                (
                    ringside_cpu::CpuMode::Real,
                    ringside_cpu::CpuMode::Protected
                )
            );
        }
        other => panic!("{other:?}"),
    }
    // Right after MOV CR0: the far jump to 32-bit code is next.
    let next = view::next_instruction(&mut m);
    assert!(next.contains("jmp dword 8:000F1000h"), "{next}");
    cmd(&mut d, &mut m, "del all");
    cmd(&mut d, &mut m, "catch ring 3");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Event {
            event: Event::RingChange { from: 0, to: 3, .. },
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.cpu.eip, RING3);
    cmd(&mut d, &mut m, "del all");
    cmd(&mut d, &mut m, "catch task");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Event {
            event:
                Event::TaskSwitch {
                    from: 0x28,
                    to: 0x40,
                },
            ..
        } => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn conditional_temporary_and_physical_breakpoints() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    // PRINT is called for many strings; stop only for "ring 3: SGDT ...".
    cmd(
        &mut d,
        &mut m,
        "b F0800 if byte[esi+5] == 33 && byte[esi+8] == 53",
    );
    let out = cmd(&mut d, &mut m, "c");
    assert!(out.starts_with("breakpoint 1 at "), "{out}");
    assert_eq!(view::current_linear(&m), PRINT);
    let s = cmd(&mut d, &mut m, "x /6b esi");
    assert!(s.ends_with(": 72 69 6E 67 20 33\n"), "{s}");
    assert_eq!(d.points()[0].hits, 1, "false conditions do not count");
    // An error in a condition stops with the reason.
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, &format!("pb {MAIN:x}"));
    cmd(&mut d, &mut m, "tb F0800");
    assert_eq!(
        d.resume(&mut m, Resume::Continue),
        StopCause::Breakpoint { id: 1 }
    );
    assert_eq!(m.cpu.eip, MAIN);
    assert_eq!(
        d.resume(&mut m, Resume::Continue),
        StopCause::Breakpoint { id: 2 }
    );
    assert_eq!(d.points().len(), 1, "the temporary breakpoint is gone");
    // finish: back in MAIN after the CALL to PRINT.
    assert_eq!(d.resume(&mut m, Resume::Finish), StopCause::Returned);
    assert!(
        m.cpu.eip > MAIN && m.cpu.eip < MAIN + 0x100,
        "{:X}",
        m.cpu.eip
    );
    // A condition that cannot be evaluated stops and says why.
    cmd(&mut d, &mut m, "b F0800 if dword[ffffffff] == 0 / 0");
    match d.resume(&mut m, Resume::Continue) {
        StopCause::ConditionError { id: 3, error } => {
            assert!(error.contains("division"), "{error}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn next_steps_over_calls_and_until_runs_to_an_address() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, &format!("until {MAIN:x}"));
    assert_eq!(m.cpu.eip, MAIN);
    // MAIN: six segment loads, MOV ESP, MOV ESI, then CALL PRINT.
    assert_eq!(d.resume(&mut m, Resume::Step(8)), StopCause::Stepped);
    let ins = view::current_instruction(&mut m).expect("decodes");
    assert_eq!(ins.mnemonic(), iced_x86::Mnemonic::Call);
    let after = m.cpu.eip + ins.len() as u32;
    let before = m.cpu.instructions;
    assert_eq!(d.resume(&mut m, Resume::Next), StopCause::Reached);
    assert_eq!(m.cpu.eip, after);
    assert!(m.cpu.instructions > before + 10, "the whole PRINT ran");
    // The console got the string.
    let out = String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned();
    assert!(out.ends_with("ring 0: protected mode on, CS="), "{out:?}");
}

#[test]
fn trace_writes_each_instruction_and_log_records_events() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let path = std::env::temp_dir().join(format!("ringside-trace-{}.txt", std::process::id()));
    cmd(&mut d, &mut m, &format!("trace on {}", path.display()));
    cmd(&mut d, &mut m, "log on");
    cmd(&mut d, &mut m, &format!("until {RING3:x}"));
    cmd(&mut d, &mut m, "trace off");
    let trace = std::fs::read_to_string(&path).expect("trace file");
    let _ = std::fs::remove_file(&path);
    assert_eq!(trace.lines().count() as u64, m.cpu.instructions);
    assert!(
        trace
            .lines()
            .next()
            .unwrap_or("")
            .contains("F000:0000FFF0 EA000000F0"),
        "{trace}"
    );
    assert!(trace.contains(" iret"), "{trace}");
    let log = cmd(&mut d, &mut m, "log 5");
    // The trap log's words (traplog::summary), one formatter for both.
    for e in d.log(5) {
        assert!(log.contains(&crate::traplog::summary(&e.1)), "{log}");
    }
    assert!(log.contains("real mode → protected mode"), "{log}");
    assert!(log.contains("ring 0 → ring 3 via IRET"), "{log}");
}

#[test]
fn guest_end_limit_and_bad_commands() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    d.max_instructions = Some(50);
    assert_eq!(d.resume(&mut m, Resume::Continue), StopCause::Limit);
    assert_eq!(m.cpu.instructions, 50);
    d.max_instructions = None;
    match d.resume(&mut m, Resume::Continue) {
        StopCause::Guest(RunOutcome::Exit(0)) => {}
        other => panic!("{other:?}"),
    }
    for bad in [
        "frobnicate",
        "b",
        "b zz:1",
        "s x",
        "x /4q 0",
        "watch z 10",
        "catch ring 5",
        "info nothing",
        "bd 99",
        "b 10 if (",
        "page",
        "trace on /nonexistent-dir/t.txt",
    ] {
        let r = d.execute(&mut m, bad);
        assert!(r.error, "`{bad}` was accepted: {}", r.text);
        assert_eq!(r.text.lines().count(), 1, "`{bad}`: {}", r.text);
    }
}

#[test]
fn page_walk_and_screenshot_and_help() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let p = cmd(&mut d, &mut m, "page 12345");
    assert_eq!(p, "paging is off: linear 00012345 is physical 00012345\n");
    // Build a page directory by hand: 4 KiB page 0x00400000 -> 0x00123000.
    m.cpu.mem.poke(0x10000 + 4, &(0x11000u32 | 7).to_le_bytes());
    m.cpu.mem.poke(0x11000, &(0x123000u32 | 3).to_le_bytes());
    m.cpu.cr[3] = 0x10000;
    m.cpu.cr[0] |= 0x8000_0001;
    let p = cmd(&mut d, &mut m, "page 400010");
    assert!(
        p.contains("PDE   at 00010004 = 0000000000011007 [P RW US]"),
        "{p}"
    );
    assert!(
        p.contains("PTE   at 00011000 = 0000000000123003 [P RW]"),
        "{p}"
    );
    assert!(
        p.contains("-> physical 00123010 (4 KiB page, supervisor, writable)"),
        "{p}"
    );
    let p = cmd(&mut d, &mut m, "page 800000");
    assert!(p.contains("not mapped"), "{p}");
    let h = cmd(&mut d, &mut m, "help");
    for (name, _, _) in commands::COMMANDS {
        assert!(h.contains(name), "{name}");
    }
    let path = std::env::temp_dir().join(format!("ringside-shot-{}.png", std::process::id()));
    let s = cmd(&mut d, &mut m, &format!("screenshot {}", path.display()));
    assert!(s.starts_with("wrote "), "{s}");
    let png = std::fs::read(&path).expect("png");
    let _ = std::fs::remove_file(&path);
    assert_eq!(&png[1..4], b"PNG");
    m.pc.vga.set_mode(0x03);
    m.pc.vga.mem_write(0xB8000, b'R');
    let t = cmd(&mut d, &mut m, "screen");
    assert!(t.starts_with("R\n"), "{t}");
    assert_eq!(t.lines().count(), 25, "{t}");
}

#[test]
fn unarmed_debugger_runs_the_guest_like_machine_run() {
    let mut a = pmtest();
    let plain = a.run(crate::RunLimits::default());
    let mut b = pmtest();
    let mut d = Debugger::new();
    assert_eq!(d.resume(&mut b, Resume::Continue), StopCause::Guest(plain));
    assert_eq!(a.cpu.instructions, b.cpu.instructions);
    assert_eq!(a.pc.debug.captured(), b.pc.debug.captured());
}

#[test]
fn our_bios_code_shows_its_symbol_names() {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    let mut m = Machine::with_our_bios(config).expect("machine");
    let mut d = Debugger::new();
    let u = cmd(&mut d, &mut m, "u /1");
    assert!(
        u.starts_with("F000:FFF0 (FFFFFFF0) <reset_vector>  EA"),
        "{u}"
    );
    // The far jump lands on the first byte of post_reset; the next
    // instruction is inside it, at an offset.
    let s = cmd(&mut d, &mut m, "s");
    assert!(s.starts_with("stepped to F000:"), "{s}");
    assert!(s.lines().next().unwrap().ends_with(" <post_reset>"), "{s}");
    let s = cmd(&mut d, &mut m, "s");
    assert!(s.contains(" <post_reset+0x"), "{s}");
    // A breakpoint on a service by its address names it.
    let (addr, _) = ringside_bios::SYMBOLS
        .iter()
        .find(|(_, n)| *n == "int13_disk")
        .expect("int13_disk");
    let u = cmd(&mut d, &mut m, &format!("u p {addr:X} 1"));
    assert!(
        u.starts_with(&format!("p {addr:08X} <int13_disk>  ")),
        "{u}"
    );
    let u = cmd(&mut d, &mut m, &format!("u F000:{:X} 2", addr - 0xF0000));
    assert!(u.contains(" <int13_disk>  "), "{u}");
    assert!(u.lines().nth(1).unwrap().contains(" <int13_disk+0x"), "{u}");
    // Another ROM's code shows no names.
    let mut other = pmtest();
    let u = cmd(&mut d, &mut other, "u /1");
    assert!(!u.contains('<'), "{u}");
}

/// Step forward, then reverse step, comparing the whole machine's
/// serialized state with what it was, bit for bit.
fn reverse_round_trip(mut m: Machine, start: u64) {
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "rec on");
    cmd(&mut d, &mut m, &format!("s {start}"));
    let base = m.cpu.instructions;
    let state = |m: &Machine| m.save_snapshot().expect("snapshot");
    let s0 = state(&m);
    cmd(&mut d, &mut m, "s 1");
    let s1 = state(&m);
    cmd(&mut d, &mut m, "s 498");
    let s499 = state(&m);
    cmd(&mut d, &mut m, "s 500");
    let s999 = state(&m);
    cmd(&mut d, &mut m, "s 1");
    let s1000 = state(&m);
    // A step that waits out HLT and enters the timer's handler retires no
    // instruction, nor does a step of a REP string instruction that leaves
    // iterations to do (PMTEST's from instruction 181 is one such):
    // 1000 steps are at most 1000 instructions.
    assert!(m.cpu.instructions <= base + 1000);
    for (back, want, name) in [
        (1, &s999, "999"),
        (500, &s499, "499"),
        (498, &s1, "1"),
        (1, &s0, "0"),
    ] {
        let r = cmd(&mut d, &mut m, &format!("rs {back}"));
        assert!(r.starts_with("stepped to "), "{r}");
        assert!(
            state(&m) == *want,
            "rs {back}: not the state after step {name}"
        );
    }
    // Forward again is the same future; and 1000 back in one go.
    cmd(&mut d, &mut m, "s 1000");
    assert!(state(&m) == s1000, "forward again diverged");
    cmd(&mut d, &mut m, "rs 1000");
    assert!(state(&m) == s0, "rs 1000");
    assert_eq!(m.cpu.instructions, base);
}

#[test]
fn reverse_step_gives_back_the_state_bit_for_bit_in_protected_mode() {
    reverse_round_trip(pmtest(), 200);
}

#[test]
fn reverse_step_gives_back_the_state_bit_for_bit_into_a_rep_instruction() {
    // From instruction 20: steps of whole instructions, then of the
    // iterations of PMTEST's long REP at instruction 181.
    reverse_round_trip(pmtest(), 20);
}

#[test]
fn reverse_step_gives_back_the_state_bit_for_bit_across_timer_interrupts_and_disk_io() {
    let mut m = crate::snapshot::tests::disk_loop_machine("rs");
    // Into the guest's loop (INT 13h, HLT, IRQ 0) before recording.
    m.run(crate::RunLimits {
        max_instructions: Some(300_000),
    });
    reverse_round_trip(m, 1);
}

#[test]
fn reverse_step_errors_are_one_line() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let r = d.execute(&mut m, "rs");
    assert!(
        r.error && r.text.contains("reverse stepping is off"),
        "{}",
        r.text
    );
    cmd(&mut d, &mut m, "rec on");
    let r = d.execute(&mut m, "rs 5");
    assert!(
        r.error && r.text.contains("only 0 instructions"),
        "{}",
        r.text
    );
    cmd(&mut d, &mut m, "s 10");
    let r = d.execute(&mut m, "rs x");
    assert!(r.error, "{}", r.text);
    cmd(&mut d, &mut m, "rs 10");
    assert_eq!(m.cpu.instructions, 0);
    cmd(&mut d, &mut m, "rec off");
    assert!(d.execute(&mut m, "rs").error);
}

#[test]
fn stepping_and_running_reach_the_same_state() {
    // Reverse stepping replays in single steps what may have run in
    // slices (`c`): both must give the same machine.
    let mut a = crate::snapshot::tests::disk_loop_machine("slices");
    let mut b = crate::snapshot::tests::disk_loop_machine("steps");
    a.run(crate::RunLimits {
        max_instructions: Some(290_000),
    });
    b.run(crate::RunLimits {
        max_instructions: Some(290_000),
    });
    a.run(crate::RunLimits {
        max_instructions: Some(300_000),
    });
    let mut d = Debugger::new();
    while b.cpu.instructions < 300_000 {
        d.resume(&mut b, Resume::Step(1));
    }
    assert_eq!(a.cpu.instructions, b.cpu.instructions);
    assert!(a.save_snapshot().unwrap() == b.save_snapshot().unwrap());
}

#[test]
fn reverse_step_after_continue_goes_back_by_instructions() {
    let run = |m: &mut Machine, to: u64| {
        m.run(crate::RunLimits {
            max_instructions: Some(to),
        })
    };
    let mut a = crate::snapshot::tests::disk_loop_machine("cont-a");
    let mut b = crate::snapshot::tests::disk_loop_machine("cont-b");
    run(&mut a, 280_000);
    let mut d = Debugger::new();
    d.set_reverse(true);
    d.max_instructions = Some(330_000);
    // The snapshot is taken as `c` starts; it runs 50 000 instructions
    // through timer interrupts and disk I/O in slices.
    assert_eq!(d.resume(&mut a, Resume::Continue), StopCause::Limit);
    assert_eq!(a.cpu.instructions, 330_000);
    cmd(&mut d, &mut a, "rs 1");
    let mut c = crate::snapshot::tests::disk_loop_machine("cont-c");
    run(&mut c, 329_999);
    assert_eq!(a.cpu.instructions, 329_999);
    assert!(a.save_snapshot().unwrap() == c.save_snapshot().unwrap());
    cmd(&mut d, &mut a, "rs 20000");
    run(&mut b, 309_999);
    assert_eq!(b.cpu.instructions, 309_999);
    assert!(a.save_snapshot().unwrap() == b.save_snapshot().unwrap());
    // Older than the snapshot: a clear error, nothing changed.
    let r = d.execute(&mut a, "rs 40000");
    assert!(
        r.error && r.text.contains("no snapshot that far back"),
        "{}",
        r.text
    );
    assert_eq!(a.cpu.instructions, 309_999);
}

#[test]
fn step_runs_one_iteration_of_a_rep_string_instruction() {
    // Real mode at 0000:7C00: REP MOVSB with CX = 3, then HLT.
    let mut m = pmtest();
    let mut d = Debugger::new();
    m.cpu.mem.poke(0x7C00, &[0xF3, 0xA4, 0xF4]); // rep movsb; hlt
    m.cpu.mem.poke(0x1000, b"abc");
    m.cpu.load_seg_real(SegReg::Cs, 0);
    m.cpu.load_seg_real(SegReg::Ds, 0);
    m.cpu.load_seg_real(SegReg::Es, 0);
    m.cpu.eip = 0x7C00;
    m.cpu.regs[ringside_cpu::gpr::ECX] = 3;
    m.cpu.regs[ringside_cpu::gpr::ESI] = 0x1000;
    m.cpu.regs[ringside_cpu::gpr::EDI] = 0x2000;
    m.cpu.flush_decode_cache();
    let mut seen = Vec::new();
    for _ in 0..3 {
        cmd(&mut d, &mut m, "s");
        seen.push((m.cpu.eip, m.cpu.regs[ringside_cpu::gpr::ECX]));
    }
    // `s` twice stays on the REP, one element each; the third ends it.
    assert_eq!(seen, [(0x7C00, 2), (0x7C00, 1), (0x7C02, 0)]);
    assert_eq!([0, 1, 2].map(|i| m.cpu.mem.peek(0x2000 + i)), *b"abc");
    // gdb's `stepi` is the same one-step resume.
    m.cpu.eip = 0x7C00;
    m.cpu.regs[ringside_cpu::gpr::ECX] = 2;
    assert_eq!(d.resume(&mut m, Resume::Step(1)), StopCause::Stepped);
    assert_eq!((m.cpu.eip, m.cpu.regs[ringside_cpu::gpr::ECX]), (0x7C00, 1));
}

#[test]
fn reverse_continue_goes_back_to_each_earlier_breakpoint_stop_then_to_the_start() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let state = |m: &Machine| m.save_snapshot().expect("snapshot");
    let r = d.execute(&mut m, "rc");
    assert!(
        r.error && r.text.contains("reverse stepping is off"),
        "{}",
        r.text
    );
    cmd(&mut d, &mut m, "rec on");
    let start = state(&m);
    cmd(&mut d, &mut m, &format!("lb {PRINT:X}"));
    // Three stops at the print routine, with work between them.
    let mut stops = Vec::new();
    for _ in 0..3 {
        let t = cmd(&mut d, &mut m, "c");
        assert!(t.starts_with("breakpoint 1 at "), "{t}");
        stops.push((state(&m), m.cpu.instructions));
    }
    assert!(stops[0].1 < stops[1].1 && stops[1].1 < stops[2].1);
    assert_eq!(d.points()[0].hits, 3);
    for back in [1, 0] {
        let t = cmd(&mut d, &mut m, "rc");
        assert!(t.starts_with("breakpoint 1 at "), "{t}");
        assert_eq!(m.cpu.instructions, stops[back].1);
        assert!(
            state(&m) == stops[back].0,
            "rc: not the state of stop {back}"
        );
    }
    // Before the first stop: the start of the recording, then no further.
    for _ in 0..2 {
        let r = d.execute(&mut m, "rc");
        assert!(!r.error, "{}", r.text);
        assert_eq!(r.stop, Some(StopCause::HistoryStart), "{}", r.text);
        assert!(
            r.text.starts_with("at the start of the recording"),
            "{}",
            r.text
        );
        assert!(state(&m) == start, "not the state the recording began with");
    }
    // Forward again: the same stops.
    cmd(&mut d, &mut m, "c");
    assert!(state(&m) == stops[0].0);
    assert!(d.points().iter().all(|p| p.enabled));
}

#[test]
fn reverse_continue_stops_before_the_write_a_watchpoint_saw() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    let state = |m: &Machine| m.save_snapshot().expect("snapshot");
    cmd(&mut d, &mut m, "rec on");
    cmd(&mut d, &mut m, "watch w 704");
    // The real-mode REP MOVSB first, then ring 3's `mov byte [704h], 1`.
    cmd(&mut d, &mut m, "c");
    let t = cmd(&mut d, &mut m, "c");
    assert!(t.starts_with("watchpoint 1: write"), "{t}");
    assert_eq!(m.cpu.cpl(), 3);
    assert_eq!(m.cpu.mem.read_u8(SKIP_LEN), Some(1));
    let after = state(&m);
    let t = cmd(&mut d, &mut m, "rc");
    assert!(t.starts_with("watchpoint 1: write"), "{t}");
    // Before the write: the old value, the MOV about to run.
    assert_ne!(m.cpu.mem.read_u8(SKIP_LEN), Some(1));
    assert_eq!(m.cpu.cpl(), 3);
    assert!(t.ends_with("mov byte [704h], 1\n"), "{t}");
    // One step redoes the write: the state the watchpoint stopped in.
    cmd(&mut d, &mut m, "s");
    assert!(state(&m) == after, "s after rc: not the watchpoint's stop");
    // Twice back: the REP MOVSB's write, then the start.
    let t = cmd(&mut d, &mut m, "rc");
    assert!(t.starts_with("watchpoint 1: write"), "{t}");
    let t = cmd(&mut d, &mut m, "rc");
    assert!(t.starts_with("watchpoint 1: write"), "{t}");
    assert_eq!(m.cpu.mode(), ringside_cpu::CpuMode::Real);
    let r = d.execute(&mut m, "rc");
    assert_eq!(r.stop, Some(StopCause::HistoryStart), "{}", r.text);
    assert_eq!(m.cpu.instructions, 0);
}

#[test]
fn info_tlb_is_words_not_a_debug_struct() {
    let mut m = pmtest();
    let mut d = Debugger::new();
    cmd(&mut d, &mut m, "c");
    let st = m.cpu.tlb.stats;
    let t = cmd(&mut d, &mut m, "info tlb");
    assert!(!t.contains('{') && !t.contains("TlbStats"), "{t}");
    assert!(
        t.starts_with(&format!(
            "lookups: {} hits, {} misses; {} fills\n",
            st.hits, st.misses, st.fills
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("flushes: {} by MOV CR3,", st.flush_cr3)),
        "{t}"
    );
    assert_eq!(t, cmd(&mut d, &mut m, "tlb"));
}
