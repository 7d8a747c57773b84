//! `cargo bench -p ringside-machine`: guest MIPS on our benchmark ROMs.
//!
//! A plain harness (no criterion): each workload runs for a fixed
//! instruction budget, short enough to keep the whole bench to a few
//! seconds, and the figures are printed, never asserted. `ringside bench`
//! runs the same ROMs to completion and checks their checksums.

use ringside_machine::{Console, Machine, MachineConfig, RunLimits};

/// Instructions per workload (REP MOVS counts one per REP instruction, so it
/// reaches its end long before this).
const BUDGET: u64 = 30_000_000;

fn main() {
    // `cargo bench -- --list` and filters are passed by cargo; a plain
    // harness only needs to honour a name filter.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!(
        "{:<10} {:>14} {:>10} {:>12} {:>10}",
        "workload", "instructions", "MIPS", "ns/instr", "seconds"
    );
    for w in ringside_roms::WORKLOADS.iter() {
        if filter.as_deref().is_some_and(|f| !w.name.contains(f)) {
            continue;
        }
        let config = MachineConfig {
            console: Console::Null,
            ..MachineConfig::default()
        };
        let mut m = Machine::new(w.rom.to_vec(), config).expect("workload ROM");
        m.run(RunLimits {
            max_instructions: Some(BUDGET),
        });
        let s = m.stats();
        // REP MOVS retires few instructions; its figure is bytes moved.
        let copy = if w.bytes_moved > 0 && s.instructions < BUDGET {
            format!(
                "  {:.0} MB/s guest copy",
                w.bytes_moved as f64 / s.host_time.as_secs_f64() / 1e6
            )
        } else {
            String::new()
        };
        println!(
            "{:<10} {:>14} {:>10.1} {:>12.2} {:>10.3}{copy}",
            w.name,
            s.instructions,
            s.mips(),
            s.ns_per_instruction(),
            s.host_time.as_secs_f64()
        );
    }
}
