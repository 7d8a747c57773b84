//! Robustness: random bytes executed as real-mode code never panic the host,
//! and the machine state stays consistent after every instruction.
//!
//! Each case puts random bytes at a random CS:IP, a random interrupt vector
//! table at 0000:0000, random bytes in the rest of RAM, random registers and
//! flags, and executes a bounded number of instructions. The only claims are
//! "no panic" and the invariants in [`check_consistent`]. 256 cases by
//! default; `PROPTEST_CASES=N` changes that.

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use ringside_cpu::flags;
use ringside_cpu::{Cpu, NullBus, PhysMem, SegReg, StopReason};

/// EFLAGS bits that always read as zero on a P6 (3, 5, 15, 22–31).
const EFLAGS_RESERVED_ZERO: u32 = (1 << 3) | (1 << 5) | (1 << 15) | 0xFFC0_0000;

/// A random machine to start from.
#[derive(Clone, Debug)]
struct Start {
    code: Vec<u8>,
    ivt: Vec<u8>,
    fill_seed: u64,
    cs: u16,
    ip: u16,
    data_segs: [u16; 5],
    regs: [u32; 8],
    eflags: u32,
}

fn start() -> impl Strategy<Value = Start> {
    (
        prop::collection::vec(any::<u8>(), 1..256),
        prop::collection::vec(any::<u8>(), 1024),
        any::<u64>(),
        any::<u16>(),
        any::<u16>(),
        any::<[u16; 5]>(),
        any::<[u32; 8]>(),
        any::<u32>(),
    )
        .prop_map(
            |(code, ivt, fill_seed, cs, ip, data_segs, regs, eflags)| Start {
                code,
                ivt,
                fill_seed,
                cs,
                ip,
                data_segs,
                regs,
                eflags,
            },
        )
}

/// xorshift64*: deterministic filler so a failing seed reproduces.
fn filler(mut s: u64) -> impl FnMut() -> u8 {
    s |= 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }
}

fn machine(st: &Start) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    // Random bytes in all of RAM (so interrupt handlers and far jumps land
    // on random code too), then the case's code at CS:IP (wrapping within
    // the segment as real-mode IP does).
    let base = (st.cs as u32) << 4;
    let mut next = filler(st.fill_seed);
    let ram: Vec<u8> = (0..1 << 20).map(|_| next()).collect();
    cpu.mem.poke(0, &ram);
    for (i, &b) in st.code.iter().enumerate() {
        let off = st.ip.wrapping_add(i as u16) as u32;
        cpu.mem.poke((base + off) & 0xF_FFFF, &[b]);
    }
    cpu.mem.poke(0, &st.ivt);
    cpu.load_seg_real(SegReg::Cs, st.cs);
    for (s, &sel) in [SegReg::Ds, SegReg::Es, SegReg::Ss, SegReg::Fs, SegReg::Gs]
        .iter()
        .zip(&st.data_segs)
    {
        cpu.load_seg_real(*s, sel);
    }
    cpu.eip = st.ip as u32;
    cpu.regs = st.regs;
    cpu.set_eflags(st.eflags);
    cpu
}

/// The invariants any instruction boundary must satisfy.
fn check_consistent(cpu: &Cpu, cycles_before: u64, what: &str) -> Result<(), TestCaseError> {
    let f = cpu.eflags();
    prop_assert!(
        f & flags::RESERVED1 != 0,
        "{what}: EFLAGS bit 1 clear ({f:08X})"
    );
    prop_assert!(
        f & EFLAGS_RESERVED_ZERO == 0,
        "{what}: reserved EFLAGS bits set ({f:08X})"
    );
    prop_assert!(
        cpu.cycles >= cycles_before,
        "{what}: the virtual clock went backwards"
    );
    if !cpu.is_shutdown() {
        let cs = cpu.segs[SegReg::Cs as usize];
        prop_assert!(
            cpu.eip <= cs.limit,
            "{what}: EIP {:08X} beyond CS limit {:08X}",
            cpu.eip,
            cs.limit
        );
        if !cs.big() {
            prop_assert!(
                cpu.eip <= 0xFFFF,
                "{what}: 16-bit code with EIP {:08X}",
                cpu.eip
            );
        }
    }
    if cpu.mode() == ringside_cpu::CpuMode::Real {
        for s in SegReg::ALL {
            let seg = cpu.segs[s as usize];
            prop_assert_eq!(
                seg.base,
                (seg.selector as u32) << 4,
                "{}: real-mode {} base does not follow its selector",
                what,
                s.name()
            );
        }
    }
    Ok(())
}

fn config() -> ProptestConfig {
    // ProptestConfig::default() reads PROPTEST_CASES (256 when unset).
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Single-step up to 2000 instructions (or fault deliveries), checking
    /// the invariants after each.
    #[test]
    fn random_code_single_steps_consistently(st in start()) {
        let mut cpu = machine(&st);
        let mut bus = NullBus;
        for n in 0..2000 {
            let before = cpu.cycles;
            let r = cpu.step(&mut bus);
            check_consistent(&cpu, before, &format!("after step {n}"))?;
            if matches!(r, StopReason::Halted | StopReason::Shutdown) {
                break;
            }
        }
    }

    /// The run loop with an instruction budget (and a cycle guard: a fault
    /// loop retires no instruction, see `fault_loop_returns_on_instruction_budget`):
    /// returns, honours the budget, leaves a consistent state.
    #[test]
    fn random_code_runs_within_budget(st in start()) {
        let mut cpu = machine(&st);
        let mut bus = NullBus;
        let guard = cpu.cycles + CYCLE_GUARD;
        let watchdog = Watchdog::arm(format!("Cpu::run did not return for {st:?}"));
        // Yields (port I/O, IF changes) return early: go on until the
        // budget of 2000 instructions is spent or the CPU stops.
        let mut calls = 0;
        loop {
            let before = cpu.cycles;
            let left = 2000u64.saturating_sub(cpu.instructions);
            let r = cpu.run(&mut bus, guard, left);
            calls += 1;
            check_consistent(&cpu, before, &format!("after run call {calls} ({r:?})"))?;
            prop_assert!(cpu.instructions <= 2000, "ran {} instructions on a budget of 2000", cpu.instructions);
            if r == StopReason::Budget {
                prop_assert!(cpu.instructions == 2000 || cpu.cycles >= guard, "Budget with {} instructions, {} cycles", cpu.instructions, cpu.cycles);
            }
            if r != StopReason::Yield || calls >= 2000 {
                break;
            }
        }
        drop(watchdog);
    }
}

/// Cycle limit that bounds a run even when no instruction retires.
const CYCLE_GUARD: u64 = 50_000_000;

/// Ends the whole test process if not dropped within 20 s: a hung `run`
/// cannot be interrupted, and a failing case would otherwise hang shrinking.
struct Watchdog(Option<mpsc::Sender<()>>);

impl Watchdog {
    fn arm(what: String) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(Duration::from_secs(20)) {
                // Straight to the process's stderr: the test harness captures eprintln!.
                let _ = writeln!(std::io::stderr(), "watchdog: {what}");
                std::process::exit(101);
            }
        });
        Watchdog(Some(tx))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A real-mode machine whose #UD handler (1000:0000) starts with `handler`:
/// if that raises #UD again, every step delivers one more exception and no
/// instruction ever retires.
fn ud_loop(handler: &[u8]) -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(1 << 20));
    cpu.mem.poke(6 * 4, &[0x00, 0x00, 0x00, 0x10]);
    cpu.mem.poke(0x10000, handler);
    cpu.load_seg_real(SegReg::Cs, 0x1000);
    cpu.load_seg_real(SegReg::Ss, 0x2000);
    cpu.regs[4] = 0xFFFE;
    cpu.eip = 0;
    cpu
}

/// UD2: decodes, then its handler raises #UD.
const UD2: [u8; 2] = [0x0F, 0x0B];
/// FF /7: does not decode at all (the fetch itself raises #UD).
const UNDECODABLE: [u8; 2] = [0xFF, 0xFF];

/// Run `cpu` on a thread; `None` if it has not returned after 10 s (the
/// thread is then left spinning until the test process ends).
fn run_with_timeout(
    mut cpu: Cpu,
    cycle_limit: u64,
    max_instructions: u64,
) -> Option<(StopReason, Option<u8>)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = cpu.run(&mut NullBus, cycle_limit, max_instructions);
        let _ = tx.send((r, cpu.last_exception.map(|f| f.vector)));
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

#[test]
fn ud2_fault_loop_returns_on_cycle_limit() {
    let r = run_with_timeout(ud_loop(&UD2), 100_000, 1000)
        .expect("Cpu::run never returned from a #UD loop");
    assert_eq!(r, (StopReason::Budget, Some(6)));
}

/// Found by `random_code_runs_within_budget`: an exception delivery must
/// cost cycles even when the faulting bytes never decoded, or a guest stuck
/// in such a loop hangs the machine's run loop.
#[test]
fn undecodable_fault_loop_returns_on_cycle_limit() {
    let r = run_with_timeout(ud_loop(&UNDECODABLE), 100_000, 1000)
        .expect("Cpu::run never returned from a #UD loop");
    assert_eq!(r, (StopReason::Budget, Some(6)));
}

/// `run`'s instruction budget alone must bound a fault loop too (a debugger
/// "continue 1000" with no cycle limit).
#[test]
fn fault_loop_returns_on_instruction_budget() {
    let r = run_with_timeout(ud_loop(&UD2), u64::MAX, 1000)
        .expect("Cpu::run never returned from a #UD loop");
    assert_eq!(r, (StopReason::Budget, Some(6)));
}
