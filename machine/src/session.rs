//! Running a machine in pieces, for a frontend that has other things to do
//! between them (draw frames, take screenshots, deliver keys, print a
//! status line): [`Machine::run_until_cycle`] and a one-look [`Status`].

use std::time::Instant;

use ringside_cpu::CpuMode;

use crate::{Machine, RunLimits, RunOutcome};

/// What a title bar or a status line shows about the processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// `real`, `protected` or `V86`.
    pub mode: &'static str,
    /// CR0.PG.
    pub paging: bool,
    /// Current privilege level.
    pub cpl: u8,
    /// Instructions retired since power-on.
    pub instructions: u64,
    /// The virtual clock, in cycles.
    pub cycles: u64,
    /// The last POST code the guest wrote.
    pub last_post_code: Option<u8>,
}

impl Machine {
    /// Run until the run is over (`Some`, as [`Machine::run`] would return)
    /// or the virtual clock has reached `until_cycle` (`None`; it may pass
    /// it by the rest of one slice). Unlike [`Machine::run`], real-time
    /// pacing carries on from the previous call, so a frontend can call
    /// this in a loop without the guest drifting; after a pause, call
    /// [`Machine::restart_pacing`].
    pub fn run_until_cycle(&mut self, limits: RunLimits, until_cycle: u64) -> Option<RunOutcome> {
        let start = Instant::now();
        let mut outcome = None;
        while self.cpu.cycles < until_cycle {
            if let Some(v) = self.pc.exit_request() {
                outcome = Some(RunOutcome::Exit(v));
                break;
            }
            let budget = match limits.max_instructions {
                Some(max) if self.cpu.instructions >= max => {
                    outcome = Some(RunOutcome::MaxInstructions);
                    break;
                }
                Some(max) => (max - self.cpu.instructions).min(crate::SLICE_INSTRUCTIONS),
                None => crate::SLICE_INSTRUCTIONS,
            };
            // Each instruction costs at least a cycle: no more instructions
            // than cycles left keeps the overshoot small.
            let budget = budget.min((until_cycle - self.cpu.cycles).max(1));
            if let Some(o) = self.slice(budget, None, false) {
                outcome = Some(o);
                break;
            }
        }
        self.host_time += start.elapsed();
        if let Err(e) = self.pc.flush() {
            log::warn!("debug console or serial port: {e}");
        }
        if let Err(e) = self.bios_log.flush() {
            log::warn!("BIOS log: {e}");
        }
        outcome
    }

    /// Forget the pacing reference point (after the frontend paused the
    /// machine), so the guest does not race to catch up.
    pub fn restart_pacing(&mut self) {
        self.pace_origin = None;
    }

    /// Mode, paging, CPL and counters, for a title bar or status line.
    pub fn status(&self) -> Status {
        Status {
            mode: match self.cpu.mode() {
                CpuMode::Real => "real",
                CpuMode::Protected => "protected",
                CpuMode::Virtual8086 => "V86",
            },
            paging: self.cpu.cr[0] & (1 << 31) != 0,
            cpl: self.cpu.cpl(),
            instructions: self.cpu.instructions,
            cycles: self.cpu.cycles,
            last_post_code: self.last_post_code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Machine, MachineConfig, RunLimits, RunOutcome};

    #[test]
    fn pieces_add_up_to_a_whole_run() {
        let whole = {
            let mut m =
                Machine::new(ringside_roms::DEMO.to_vec(), MachineConfig::default()).unwrap();
            let o = m.run(RunLimits::default());
            (o, m.cpu.instructions, m.cpu.cycles)
        };
        let mut m = Machine::new(ringside_roms::DEMO.to_vec(), MachineConfig::default()).unwrap();
        let mut pieces = 0;
        let outcome = loop {
            let until = m.cpu.cycles + 10_000;
            if let Some(o) = m.run_until_cycle(RunLimits::default(), until) {
                break o;
            }
            assert!(m.cpu.cycles >= until, "returned early at {}", m.cpu.cycles);
            pieces += 1;
        };
        assert_eq!(outcome, RunOutcome::Exit(0));
        assert!(pieces > 1, "the demo should take more than 10000 cycles");
        assert_eq!((outcome, m.cpu.instructions, m.cpu.cycles), whole);
        let s = m.status();
        assert_eq!((s.mode, s.paging, s.cpl), ("real", false, 0));
    }
}
