use super::*;
use crate::{Console, Machine, MachineConfig, RunLimits};
use iced_x86::Mnemonic;
use ringside_cpu::CpuMode;

fn run_logged(rom: &[u8], format: Format, filter: Filter) -> (String, Stats, Machine) {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(rom.to_vec(), config).expect("valid ROM");
    let buf = SharedBuffer::default();
    let stats = Arc::new(Mutex::new(Stats::new()));
    let log = TrapLog::new(Some(Box::new(buf.clone())), format, filter).with_stats(stats.clone());
    m.cpu.set_observer(Some(Box::new(log)));
    m.run(RunLimits {
        max_instructions: Some(5_000_000),
    });
    m.cpu.set_observer(None);
    let mut s = stats.lock().unwrap().clone();
    s.finish(&m.cpu);
    (buf.text(), s, m)
}

#[test]
fn pmtest_trap_log_says_what_happened() {
    let (text, stats, m) = run_logged(ringside_roms::PMTEST, Format::Text, Filter::default());
    let has = |needle: &str| text.lines().any(|l| l.contains(needle));
    assert!(has("real mode → protected mode"), "{text}");
    assert!(
        has("cli                     CLI trapped: CLI needs CPL <= IOPL: CPL 3 > IOPL 0"),
        "{text}"
    );
    assert!(
        has("HLT trapped: HLT is privileged: CPL 3 is not 0"),
        "{text}"
    );
    assert!(
        has("ring 3 → ring 0 via call gate 0x0033; stack from the TSS"),
        "{text}"
    );
    assert!(has("ring 3 → ring 0 via trap gate 0x80 (DPL 3)"), "{text}");
    assert!(
        has("POPFD at CPL 3, IOPL 0: IF change ignored (asked IF=1, still IF=0)"),
        "{text}"
    );
    assert!(has("SGDT at CPL 3 revealed the real GDT"), "{text}");
    assert!(
        has("#PF(0x3) page fault: protection violation on a write"),
        "{text}"
    );
    assert!(has("protected mode → virtual-8086 mode"), "{text}");
    // A MOV to DS that fails its descriptor check is not a privileged
    // instruction trapping.
    assert!(!has("mov ds, bx              MOV trapped"), "{text}");
    // Each ring change is reported once.
    let rings: Vec<_> = text.lines().filter(|l| l.contains(" → ring ")).collect();
    for w in rings.windows(2) {
        assert_ne!(w[0], w[1], "duplicate ring change");
    }
    let up = stats.ring_transitions.get(&(3, 0)).copied().unwrap_or(0);
    let down = stats.ring_transitions.get(&(0, 3)).copied().unwrap_or(0);
    assert_eq!(
        up,
        rings
            .iter()
            .filter(|l| l.contains("ring 3 → ring 0"))
            .count() as u64
    );
    assert!(up >= 8 && down >= 8, "{up} {down}");
    // Every instruction is attributed to exactly one ring or mode.
    let total: u64 = stats.instructions_by_ring.values().sum();
    assert_eq!(total, m.cpu.instructions);
    assert!(stats.instructions_by_ring.contains_key("virtual-8086"));
    assert_eq!(stats.exceptions.get(&14), Some(&2));
    assert_eq!(stats.sensitive_untrapped.get("SGDT"), Some(&1));
    let report = stats.report(&m.cpu);
    assert!(report.contains("page faults: 2"), "{report}");
}

#[test]
fn overlay_keeps_the_last_events() {
    let config = MachineConfig {
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(ringside_roms::PMTEST.to_vec(), config).unwrap();
    let overlay = Arc::new(Mutex::new(Overlay::new(3)));
    let mut f = Filter::default();
    f.parse_kinds("ring").unwrap();
    m.cpu.set_observer(Some(Box::new(
        TrapLog::new(None, Format::Text, f).with_overlay(overlay.clone()),
    )));
    m.run(RunLimits {
        max_instructions: Some(5_000_000),
    });
    let o = overlay.lock().unwrap().clone();
    assert_eq!(o.recent.len(), 3);
    assert!(
        o.recent
            .iter()
            .all(|l| l.kind == "ring" && l.text.contains(" → ring ")),
        "{o:?}"
    );
    assert_eq!((o.cpl, o.mode), (0, "protected"), "{o:?}");
}

/// A known sequence of events, fed straight to the log with the CPU
/// set up for each: the overlay's state line and event lines are
/// exactly what the panel will print.
#[test]
fn overlay_text_for_a_known_event_sequence() {
    let mut cpu = Cpu::new(ringside_mmu::PhysMem::new(1 << 20));
    let overlay = Arc::new(Mutex::new(Overlay::new(3)));
    let mut log = TrapLog::new(None, Format::Text, Filter::default()).with_overlay(overlay.clone());
    overlay.lock().unwrap().sync(&cpu);
    let o = overlay.lock().unwrap().clone();
    assert_eq!(o.status_line(), "CPL 0  real mode  paging off  IOPL 0");
    assert!(o.recent.is_empty());
    let before = o.changes;

    // Protected mode, then paging on, then ring 3 with IOPL 3.
    cpu.cr[0] |= 1;
    cpu.cycles = 1200;
    log.event_on(
        &Event::ModeChange {
            from: CpuMode::Real,
            to: CpuMode::Protected,
            paging: false,
        },
        &cpu,
    );
    cpu.cr[0] |= 0x8000_0000;
    cpu.cycles = 1500;
    log.event_on(
        &Event::ModeChange {
            from: CpuMode::Protected,
            to: CpuMode::Protected,
            paging: true,
        },
        &cpu,
    );
    cpu.set_cpl(3);
    cpu.set_eflags(cpu.eflags() | 3 << 12);
    cpu.cycles = 27316;
    log.event_on(
        &Event::PrivilegedTrap {
            mnemonic: Mnemonic::Hlt,
            cpl: 3,
        },
        &cpu,
    );
    // A TLB fill is not in the default filter: not shown, no change.
    let changes = overlay.lock().unwrap().changes;
    log.event_on(
        &Event::TlbFill {
            linear: 0x1000,
            phys: 0x1000,
        },
        &cpu,
    );
    cpu.cycles = 29337;
    cpu.set_cpl(0);
    log.event_on(
        &Event::RingChange {
            from: 3,
            to: 0,
            cause: "interrupt",
        },
        &cpu,
    );
    let o = overlay.lock().unwrap().clone();
    assert_eq!(o.status_line(), "CPL 0  protected mode  paging on  IOPL 3");
    assert!(o.changes > changes && changes > before);
    let lines: Vec<(&str, &str)> = o.recent.iter().map(|e| (e.kind, e.text.as_str())).collect();
    assert_eq!(
        lines,
        [
            ("mode", "   1500 ring 0 paging on"),
            ("trap", "  27316 ring 3 HLT trapped: HLT is privileged: CPL 3 is not 0 — a trap-and-emulate VMM sees this"),
            ("ring", "  29337 ring 3 ring 3 → ring 0 via interrupt"),
        ],
        "{o:?}"
    );
}

#[test]
fn summaries_without_a_cpu() {
    let e = Event::PrivilegedTrap {
        mnemonic: Mnemonic::Cli,
        cpl: 3,
    };
    assert_eq!(
        summary(&e),
        "CLI trapped (#GP) at CPL 3 — a trap-and-emulate VMM sees this"
    );
    let e = Event::Exception {
        vector: 13,
        error: Some(0x40A),
        cs: 0x1B,
        eip: 0x1000,
        cpl: 3,
        mnemonic: Some(Mnemonic::Int),
    };
    assert_eq!(
        summary(&e),
        "#GP(0x40A) general protection at 001B:00001000, CPL 3 by INT: IDT entry 0x81"
    );
}

#[test]
fn filters_and_jsonl() {
    let mut f = Filter::default();
    f.parse_kinds("trap,sensitive").unwrap();
    f.parse_cpls("3").unwrap();
    assert!(f.parse_kinds("nonsense").is_err());
    assert!(f.parse_cpls("4").is_err());
    let (text, _, _) = run_logged(ringside_roms::PMTEST, Format::Jsonl, f);
    assert!(!text.is_empty());
    for l in text.lines() {
        assert!(l.starts_with("{\"cycle\":") && l.ends_with('}'), "{l}");
        assert!(
            l.contains("\"kind\":\"trap\"") || l.contains("\"kind\":\"sensitive\""),
            "{l}"
        );
        assert!(l.contains("\"cpl\":3"), "{l}");
        assert!(l.contains("\"phys\":\"0x"), "{l}");
    }
    assert!(text.contains("\"mnemonic\":\"HLT\""));
    let mut g = Filter::default();
    g.parse_kinds("-tlb-flush,-cr").unwrap();
    assert!(!g.kinds.contains(&"cr") && g.kinds.contains(&"ring"));
}

#[test]
fn a_jsonl_record_parses_back_with_its_fields_in_order() {
    let line = Line {
        cycle: 7,
        instructions: 5,
        kind: "exception",
        cs: 0x1B,
        eip: 0x8048000,
        linear: 0x8048000,
        phys: None,
        cpl: 3,
        mode: "protected",
        iopl: 0,
        instruction: Some("mov [eax], \"x\"".into()),
        text: "ring 3 → ring 0\n\t\u{1}".into(),
        fields: vec![("vector", 14.into()), ("error", serde_json::Value::Null)],
    };
    let s = format_jsonl(&line);
    assert!(!s.contains('\n'), "one line: {s}");
    let v: serde_json::Value = serde_json::from_str(&s).expect("valid JSON");
    assert_eq!(v["cs"], "0x001B");
    assert_eq!(v["eip"], "0x08048000");
    assert_eq!(v["phys"], serde_json::Value::Null);
    assert_eq!(v["instruction"], "mov [eax], \"x\"");
    assert_eq!(v["text"], "ring 3 → ring 0\n\t\u{1}");
    assert_eq!(v["vector"], 14);
    let keys = [
        "cycle",
        "instructions",
        "kind",
        "cs",
        "eip",
        "linear",
        "phys",
        "cpl",
        "mode",
        "iopl",
        "instruction",
        "vector",
        "error",
        "text",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| s.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{s}");
}
