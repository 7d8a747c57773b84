//! The event stream while the protected-mode test guest runs: ring changes,
//! mode changes, traps of privileged instructions, sensitive instructions
//! that did not trap, task switches.

use iced_x86::Mnemonic;
use ringside_cpu::{Bus, Cpu, CpuMode, Event, PhysMem, Recorder, StopReason};

struct Console(Vec<u8>, bool);

impl Bus for Console {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        0xFFFF_FFFF
    }
    fn io_write(&mut self, port: u16, _size: u8, value: u32) {
        match port {
            0xE9 => self.0.push(value as u8),
            0xF4 => self.1 = true,
            _ => {}
        }
    }
}

fn run_pmtest(observe: bool) -> (Vec<Event>, String, Cpu) {
    let mut cpu = Cpu::new(PhysMem::pc(16, ringside_roms::PMTEST.to_vec()).unwrap());
    let rec = Recorder::default();
    if observe {
        cpu.set_observer(Some(Box::new(rec.clone())));
    }
    let mut bus = Console(Vec::new(), false);
    while !bus.1 {
        match cpu.run(&mut bus, u64::MAX, 1_000_000) {
            StopReason::Yield => {}
            r => panic!("guest stopped early: {r:?}"),
        }
    }
    (
        rec.events(),
        String::from_utf8_lossy(&bus.0).into_owned(),
        cpu,
    )
}

#[test]
fn observer_sees_rings_modes_traps_and_tasks() {
    let (ev, console, _) = run_pmtest(true);
    assert_eq!(
        console,
        ringside_roms::PMTEST_EXPECTED,
        "observing must not change behaviour"
    );
    let has = |f: &dyn Fn(&Event) -> bool| ev.iter().any(f);
    assert!(has(&|e| matches!(
        e,
        Event::ModeChange {
            from: CpuMode::Real,
            to: CpuMode::Protected,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::RingChange {
            from: 0,
            to: 3,
            cause: "IRET"
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::RingChange {
            from: 3,
            to: 0,
            cause: "CALL through a gate"
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::RingChange {
            from: 0,
            to: 3,
            cause: "RET to an outer ring"
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::PrivilegedTrap {
            mnemonic: Mnemonic::Cli,
            cpl: 3
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::PrivilegedTrap {
            mnemonic: Mnemonic::Hlt,
            cpl: 3
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::SensitiveUntrapped {
            mnemonic: Mnemonic::Popfd,
            cpl: 3,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::SensitiveUntrapped {
            mnemonic: Mnemonic::Sgdt,
            cpl: 3,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::Exception {
            vector: 13,
            error: Some(0x40A),
            cpl: 3,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::Exception {
            vector: 11,
            error: Some(0x38),
            cpl: 0,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::TaskSwitch {
            from: 0x28,
            to: 0x40
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::TaskSwitch {
            from: 0x40,
            to: 0x28
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::ModeChange {
            from: CpuMode::Protected,
            to: CpuMode::Virtual8086,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::ModeChange {
            from: CpuMode::Virtual8086,
            to: CpuMode::Protected,
            ..
        }
    )));
    assert!(has(
        &|e| matches!(e, Event::ControlRegisterWrite { cr: 0, old: _, new } if new & 1 == 1)
    ));
    // The paging part: paging switched on, two page faults, TLB traffic.
    assert!(has(&|e| matches!(
        e,
        Event::ModeChange { paging: true, .. }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::Exception {
            vector: 14,
            error: Some(0),
            cpl: 0,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::Exception {
            vector: 14,
            error: Some(3),
            cpl: 0,
            ..
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::TlbFill {
            linear: 0x30_0000,
            phys: 0x30_0000
        }
    )));
    assert!(has(&|e| matches!(
        e,
        Event::TlbFlush {
            cause: ringside_mmu::FlushCause::Invlpg
        }
    )));
    // MOV with a segment register at CPL 3 (ring 3 loads DS and reads CS)
    // is sensitive; MOV between general registers, which ring 3 does all
    // the time, must not be reported: only segment-register forms count.
    let movs = ev
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::SensitiveUntrapped {
                    mnemonic: Mnemonic::Mov,
                    ..
                }
            )
        })
        .count();
    assert!((1..20).contains(&movs), "{movs} MOV events");
    assert!(ev.iter().all(|e| match e {
        Event::SensitiveUntrapped { mnemonic, .. } =>
            ringside_cpu::classify::untrapped_reason(*mnemonic).is_some(),
        _ => true,
    }));
}

#[test]
fn unobserved_run_is_identical() {
    let (_, a, ca) = run_pmtest(false);
    let (_, b, cb) = run_pmtest(true);
    assert_eq!(a, b);
    assert_eq!(ca.instructions, cb.instructions);
    assert_eq!(ca.cycles, cb.cycles);
}
