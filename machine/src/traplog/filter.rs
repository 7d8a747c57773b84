//! Which events the trap log writes: the kinds `--trap-log-events` names,
//! and the CPLs `--trap-log-cpl` keeps.

use ringside_cpu::Event;

/// The kinds of event, as the `--trap-log-events` filter names them.
pub const KINDS: &[(&str, &str)] = &[
    (
        "exception",
        "exceptions (faults, traps, aborts) with the rule that fired",
    ),
    ("interrupt", "hardware interrupts accepted"),
    ("int", "software interrupts (INT n, INT3, INTO)"),
    ("ring", "privilege-level changes, with the gate or TSS used"),
    (
        "mode",
        "real / protected / virtual-8086 mode and paging changes",
    ),
    ("task", "hardware task switches"),
    (
        "trap",
        "privileged or IOPL-sensitive instructions that trapped",
    ),
    (
        "sensitive",
        "sensitive instructions that ran at CPL > 0 without trapping",
    ),
    ("cr", "control-register writes"),
    ("tlb-flush", "TLB flushes by cause"),
    (
        "hypercall",
        "BIOS services called through port 0xE0 (paravirtualization)",
    ),
    (
        "smm",
        "system-management mode: SMI entry (state saved to SMRAM) and RSM",
    ),
    (
        "tlb-fill",
        "TLB fills after a page walk (many; off by default)",
    ),
];

/// The kind name of an event (see [`KINDS`]).
pub fn kind(e: &Event) -> &'static str {
    match e {
        Event::Exception { .. } => "exception",
        Event::Interrupt { .. } => "interrupt",
        Event::SoftwareInterrupt { .. } => "int",
        Event::RingChange { .. } => "ring",
        Event::ModeChange { .. } => "mode",
        Event::TaskSwitch { .. } => "task",
        Event::PrivilegedTrap { .. } => "trap",
        Event::SensitiveUntrapped { .. } => "sensitive",
        Event::ControlRegisterWrite { .. } => "cr",
        Event::TlbFlush { .. } => "tlb-flush",
        Event::TlbFill { .. } => "tlb-fill",
        Event::Hypercall { .. } => "hypercall",
        Event::SmmEntry { .. } | Event::Rsm { .. } => "smm",
    }
}

/// Which events are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Kinds to keep (names from [`KINDS`]).
    pub kinds: Vec<&'static str>,
    /// CPLs to keep (the CPL when the event happened); empty keeps all.
    pub cpls: Vec<u8>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            kinds: KINDS
                .iter()
                .map(|k| k.0)
                .filter(|k| *k != "tlb-fill")
                .collect(),
            cpls: Vec::new(),
        }
    }
}

impl Filter {
    /// Parse a comma-separated list of kinds (`all` for every kind, a
    /// leading `-` removes one from the default set, e.g. `-tlb-flush`).
    pub fn parse_kinds(&mut self, s: &str) -> Result<(), String> {
        let mut explicit = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part == "all" {
                self.kinds = KINDS.iter().map(|k| k.0).collect();
                continue;
            }
            let (remove, name) = match part.strip_prefix('-') {
                Some(n) => (true, n),
                None => (false, part),
            };
            let Some(&(k, _)) = KINDS.iter().find(|k| k.0 == name) else {
                let names: Vec<_> = KINDS.iter().map(|k| k.0).collect();
                return Err(format!(
                    "`{name}` is not an event kind (have: all, {})",
                    names.join(", ")
                ));
            };
            if remove {
                self.kinds.retain(|x| *x != k);
            } else {
                explicit.push(k);
            }
        }
        if !explicit.is_empty() {
            self.kinds = explicit;
        }
        Ok(())
    }

    /// Parse a comma-separated list of CPLs (0–3).
    pub fn parse_cpls(&mut self, s: &str) -> Result<(), String> {
        self.cpls.clear();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u8>() {
                Ok(n) if n <= 3 => self.cpls.push(n),
                _ => return Err(format!("`{part}` is not a CPL (0 to 3)")),
            }
        }
        Ok(())
    }

    pub(super) fn keeps(&self, e: &Event, cpl: u8) -> bool {
        self.kinds.contains(&kind(e)) && (self.cpls.is_empty() || self.cpls.contains(&cpl))
    }
}
