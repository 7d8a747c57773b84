//! Per-run statistics (`--stats`): instructions by privilege level,
//! exceptions and interrupts by vector, ring transitions, traps and
//! untrapped sensitive instructions, TLB flushes.

use std::collections::BTreeMap;

use iced_x86::Mnemonic;
use ringside_cpu::{Cpu, CpuMode, Event};

use super::text::{upper, vector_name};

/// Per-run statistics (`--stats`), counted from power-on (real mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Instructions retired, by "real", "ring 0".."ring 3", "v86".
    pub instructions_by_ring: BTreeMap<String, u64>,
    /// Exceptions by vector.
    pub exceptions: BTreeMap<u8, u64>,
    /// Hardware interrupts by vector.
    pub interrupts: BTreeMap<u8, u64>,
    /// Software interrupts by vector.
    pub software_interrupts: BTreeMap<u8, u64>,
    /// Ring transitions by (from, to).
    pub ring_transitions: BTreeMap<(u8, u8), u64>,
    /// Privileged/IOPL-sensitive instructions that trapped, by mnemonic.
    pub privileged_traps: BTreeMap<String, u64>,
    /// Sensitive instructions that ran at CPL > 0 without trapping.
    pub sensitive_untrapped: BTreeMap<String, u64>,
    /// TLB flushes by cause.
    pub tlb_flushes: BTreeMap<String, u64>,
    /// Mode changes.
    pub mode_changes: u64,
    /// Task switches.
    pub task_switches: u64,
    /// Where the instruction count was last attributed.
    mark: u64,
    /// The mode and CPL instructions are being counted for.
    mode: CpuMode,
    cpl: u8,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

fn ring_key(mode: CpuMode, cpl: u8) -> String {
    match mode {
        CpuMode::Real => "real mode".into(),
        CpuMode::Virtual8086 => "virtual-8086".into(),
        CpuMode::Protected => format!("ring {cpl}"),
    }
}

impl Stats {
    /// Empty statistics for a CPU at power-on (real mode, CPL 0).
    pub fn new() -> Stats {
        Stats {
            instructions_by_ring: BTreeMap::new(),
            exceptions: BTreeMap::new(),
            interrupts: BTreeMap::new(),
            software_interrupts: BTreeMap::new(),
            ring_transitions: BTreeMap::new(),
            privileged_traps: BTreeMap::new(),
            sensitive_untrapped: BTreeMap::new(),
            tlb_flushes: BTreeMap::new(),
            mode_changes: 0,
            task_switches: 0,
            mark: 0,
            mode: CpuMode::Real,
            cpl: 0,
        }
    }

    fn attribute(&mut self, key: String, now: u64) {
        let n = now.saturating_sub(self.mark);
        if n > 0 {
            *self.instructions_by_ring.entry(key).or_default() += n;
        }
        self.mark = now;
    }

    pub(super) fn record(&mut self, e: &Event, cpu: &Cpu) {
        match *e {
            Event::Exception { vector, .. } => *self.exceptions.entry(vector).or_default() += 1,
            Event::Interrupt { vector, .. } => *self.interrupts.entry(vector).or_default() += 1,
            Event::SoftwareInterrupt { vector, .. } => {
                *self.software_interrupts.entry(vector).or_default() += 1
            }
            Event::RingChange { from, to, .. } => {
                *self.ring_transitions.entry((from, to)).or_default() += 1;
                // Everything since the last mark ran in the old ring (the
                // instruction that changed it included).
                self.attribute(ring_key(self.mode, self.cpl), cpu.instructions);
                self.cpl = to;
            }
            Event::ModeChange { to, .. } => {
                self.mode_changes += 1;
                self.attribute(ring_key(self.mode, self.cpl), cpu.instructions);
                self.mode = to;
            }
            // LTR changes TR without switching tasks.
            Event::TaskSwitch { .. }
                if cpu
                    .observed_instruction()
                    .is_some_and(|o| o.2.mnemonic() == Mnemonic::Ltr) => {}
            Event::TaskSwitch { .. } => self.task_switches += 1,
            Event::PrivilegedTrap { mnemonic, .. } => {
                *self.privileged_traps.entry(upper(mnemonic)).or_default() += 1
            }
            Event::SensitiveUntrapped { mnemonic, .. } => {
                *self.sensitive_untrapped.entry(upper(mnemonic)).or_default() += 1
            }
            Event::TlbFlush { cause } => {
                *self.tlb_flushes.entry(format!("{cause:?}")).or_default() += 1
            }
            _ => {}
        }
    }

    /// Close the run: attribute the remaining instructions to the current
    /// ring.
    pub fn finish(&mut self, cpu: &Cpu) {
        self.attribute(ring_key(self.mode, self.cpl), cpu.instructions);
    }

    /// The report `--stats` prints (TLB counters and the page-fault count
    /// come from the CPU).
    pub fn report(&self, cpu: &Cpu) -> String {
        let mut s = String::from("statistics:\n  instructions by privilege level:\n");
        for (k, v) in &self.instructions_by_ring {
            s.push_str(&format!("    {k:<14} {v:>12}\n"));
        }
        let vec_list = |m: &BTreeMap<u8, u64>, names: bool| -> String {
            if m.is_empty() {
                return " none\n".into();
            }
            let mut t = String::from("\n");
            for (v, n) in m {
                let name = if names { vector_name(*v) } else { "" };
                t.push_str(&format!("    0x{v:02X} {name:<26} {n:>8}\n"));
            }
            t
        };
        s.push_str(&format!(
            "  exceptions by vector:{}",
            vec_list(&self.exceptions, true)
        ));
        s.push_str(&format!(
            "  hardware interrupts by vector:{}",
            vec_list(&self.interrupts, false)
        ));
        s.push_str(&format!(
            "  software interrupts by vector:{}",
            vec_list(&self.software_interrupts, false)
        ));
        s.push_str("  ring transitions:");
        if self.ring_transitions.is_empty() {
            s.push_str(" none\n");
        } else {
            s.push('\n');
            for ((f, t), n) in &self.ring_transitions {
                s.push_str(&format!("    ring {f} → ring {t} {n:>20}\n"));
            }
        }
        let names = |title: &str, m: &BTreeMap<String, u64>| -> String {
            let mut t = format!("  {title}:");
            if m.is_empty() {
                t.push_str(" none\n");
                return t;
            }
            t.push('\n');
            for (k, n) in m {
                t.push_str(&format!("    {k:<14} {n:>12}\n"));
            }
            t
        };
        s.push_str(&names(
            "privileged instructions trapped",
            &self.privileged_traps,
        ));
        s.push_str(&names(
            "sensitive instructions run at CPL > 0 without a trap",
            &self.sensitive_untrapped,
        ));
        s.push_str(&format!(
            "  mode changes: {}, task switches: {}\n",
            self.mode_changes, self.task_switches
        ));
        let t = cpu.tlb.stats;
        s.push_str(&format!(
            "  TLB: {} hits, {} misses, {} fills; flushes: {} by CR3, {} by control bits, {} by INVLPG, {} by task switch\n",
            t.hits, t.misses, t.fills, t.flush_cr3, t.flush_control, t.flush_invlpg, t.flush_task
        ));
        s.push_str(&format!(
            "  page faults: {}\n",
            self.exceptions.get(&14).copied().unwrap_or(0)
        ));
        s
    }
}
