//! The trap log: an [`Observer`] that writes one line per CPU event, in
//! plain words for a projector (text) or as JSON Lines for tools, and keeps
//! the per-run statistics `--stats` prints.
//!
//! Each line carries the cycle count, CS:EIP, the CPL, and the instruction
//! in NASM syntax; page faults carry the faulting linear address and the
//! page walk, and the JSON form has the instruction's linear and physical
//! addresses on every line. [`describe`] is the formatter: the debugger's
//! `log` command uses it too.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use iced_x86::{Formatter, Instruction, Mnemonic, NasmFormatter, OpKind, Register};
/// The instruction classification, for frontends (`ringside explain`).
pub use ringside_cpu::classify;
use ringside_cpu::classify::Class;
use ringside_cpu::{Cpu, CpuMode, Event, Observer, SegReg};
use ringside_mmu::FlushCause;

/// Output form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Aligned plain words, one event a line.
    #[default]
    Text,
    /// One JSON object a line.
    Jsonl,
}

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

    fn keeps(&self, e: &Event, cpl: u8) -> bool {
        self.kinds.contains(&kind(e)) && (self.cpls.is_empty() || self.cpls.contains(&cpl))
    }
}

/// What the log remembers between events of one instruction, to say which
/// gate a ring change went through.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// The last vector raised or taken, and what raised it.
    last_vector: Option<(u8, &'static str)>,
    /// Instruction count when `last_vector` was set.
    at: u64,
}

/// One event, described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Virtual clock (CPU cycles since power-on).
    pub cycle: u64,
    /// Instructions retired so far.
    pub instructions: u64,
    /// Kind name (see [`KINDS`]).
    pub kind: &'static str,
    /// CS selector of the instruction (or of the interrupted code).
    pub cs: u16,
    /// EIP of the instruction.
    pub eip: u32,
    /// Linear address of the instruction.
    pub linear: u32,
    /// Physical address of the instruction, when it is mapped.
    pub phys: Option<u32>,
    /// CPL when the event happened.
    pub cpl: u8,
    /// Mode ("real", "protected", "v86") when the event was logged.
    pub mode: &'static str,
    /// EFLAGS.IOPL when the event was logged.
    pub iopl: u8,
    /// The instruction in NASM syntax, when one caused the event.
    pub instruction: Option<String>,
    /// The plain-words description.
    pub text: String,
    /// Event-specific fields for JSON (name, value already in JSON).
    pub fields: Vec<(&'static str, String)>,
}

fn mode_name(m: CpuMode) -> &'static str {
    match m {
        CpuMode::Real => "real",
        CpuMode::Protected => "protected",
        CpuMode::Virtual8086 => "v86",
    }
}

fn mode_words(m: CpuMode) -> &'static str {
    match m {
        CpuMode::Real => "real mode",
        CpuMode::Protected => "protected mode",
        CpuMode::Virtual8086 => "virtual-8086 mode",
    }
}

/// Exception names, by vector.
pub fn vector_name(v: u8) -> &'static str {
    match v {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 error",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        _ => "interrupt",
    }
}

fn short_vector(v: u8) -> &'static str {
    vector_name(v).split(' ').next().unwrap_or("")
}

/// The physical address of `linear` by the current page tables, read
/// without side effects (no accessed bits, no TLB fill). `None` when not
/// mapped.
pub fn peek_phys(cpu: &Cpu, linear: u32) -> Option<u32> {
    walk(cpu, linear).0
}

/// A side-effect-free page walk: the physical address and the entries
/// visited (name, index, value).
fn walk(cpu: &Cpu, linear: u32) -> (Option<u32>, Vec<(&'static str, u32, u64)>) {
    let mask = cpu.mem.a20_mask();
    if cpu.cr[0] & (1 << 31) == 0 {
        return (Some(linear & mask), Vec::new());
    }
    let read32 = |a: u32| cpu.mem.read_u32(a).unwrap_or(u32::MAX);
    let mut levels = Vec::new();
    if cpu.cr[4] & (1 << 5) != 0 {
        // PAE: PDPTE, PDE, PTE (8-byte entries).
        let read64 = |a: u32| read32(a) as u64 | ((read32(a.wrapping_add(4)) as u64) << 32);
        let i = (linear >> 30) & 3;
        let pdpte = read64((cpu.cr[3] & 0xFFFF_FFE0) + i * 8);
        levels.push(("PDPTE", i, pdpte));
        if pdpte & 1 == 0 {
            return (None, levels);
        }
        let i = (linear >> 21) & 0x1FF;
        let pde = read64((pdpte as u32 & 0xFFFF_F000) + i * 8);
        levels.push(("PDE", i, pde));
        if pde & 1 == 0 {
            return (None, levels);
        }
        if pde & 0x80 != 0 {
            return (
                Some((pde as u32 & 0xFFE0_0000) | (linear & 0x1F_FFFF)),
                levels,
            );
        }
        let i = (linear >> 12) & 0x1FF;
        let pte = read64((pde as u32 & 0xFFFF_F000) + i * 8);
        levels.push(("PTE", i, pte));
        if pte & 1 == 0 {
            return (None, levels);
        }
        return (Some((pte as u32 & 0xFFFF_F000) | (linear & 0xFFF)), levels);
    }
    let i = linear >> 22;
    let pde = read32((cpu.cr[3] & 0xFFFF_F000) + i * 4);
    levels.push(("PDE", i, pde as u64));
    if pde & 1 == 0 {
        return (None, levels);
    }
    if pde & 0x80 != 0 && cpu.cr[4] & (1 << 4) != 0 {
        return (Some((pde & 0xFFC0_0000) | (linear & 0x3F_FFFF)), levels);
    }
    let i = (linear >> 12) & 0x3FF;
    let pte = read32((pde & 0xFFFF_F000) + i * 4);
    levels.push(("PTE", i, pte as u64));
    if pte & 1 == 0 {
        return (None, levels);
    }
    (Some((pte & 0xFFFF_F000) | (linear & 0xFFF)), levels)
}

/// Read 8 bytes at a linear address without side effects.
fn peek_u64(cpu: &Cpu, linear: u32) -> Option<u64> {
    let lo = cpu.mem.read_u32(peek_phys(cpu, linear)?)?;
    let hi = cpu.mem.read_u32(peek_phys(cpu, linear.wrapping_add(4))?)?;
    Some(lo as u64 | ((hi as u64) << 32))
}

fn peek_u32(cpu: &Cpu, linear: u32) -> Option<u32> {
    let lo = cpu.mem.read_u16(peek_phys(cpu, linear)?)? as u32;
    let hi = cpu.mem.read_u16(peek_phys(cpu, linear.wrapping_add(2))?)? as u32;
    Some(lo | (hi << 16))
}

/// The IDT gate for `vector`, described ("interrupt gate 0x80, DPL 3").
fn idt_gate(cpu: &Cpu, vector: u8) -> String {
    if cpu.mode() == CpuMode::Real {
        return format!("IVT entry 0x{vector:02X}");
    }
    let off = vector as u32 * 8;
    if off + 7 > cpu.idtr.limit as u32 {
        return format!("IDT entry 0x{vector:02X} (beyond the IDT limit)");
    }
    match peek_u64(cpu, cpu.idtr.base.wrapping_add(off)) {
        Some(d) => {
            let hi = (d >> 32) as u32;
            let dpl = (hi >> 13) & 3;
            let kind = match (hi >> 8) & 0x1F {
                0x05 => "task gate",
                0x06 | 0x0E => "interrupt gate",
                0x07 | 0x0F => "trap gate",
                _ => "IDT entry",
            };
            format!("{kind} 0x{vector:02X} (DPL {dpl})")
        }
        None => format!("IDT entry 0x{vector:02X}"),
    }
}

/// The ring-`n` stack the TSS holds, as "SS:ESP".
fn tss_stack(cpu: &Cpu, ring: u8) -> Option<String> {
    let tss = &cpu.tr;
    let ty = tss.attrs & 0xF;
    if matches!(ty, 0x9 | 0xB) {
        let esp = peek_u32(cpu, tss.base.wrapping_add(4 + 8 * ring as u32))?;
        let ss = peek_u32(cpu, tss.base.wrapping_add(8 + 8 * ring as u32))? as u16;
        Some(format!("{ss:04X}:{esp:08X}"))
    } else if matches!(ty, 0x1 | 0x3) {
        let sp = peek_u32(cpu, tss.base.wrapping_add(2 + 4 * ring as u32))? & 0xFFFF;
        let ss = peek_u32(cpu, tss.base.wrapping_add(4 + 4 * ring as u32))? as u16;
        Some(format!("{ss:04X}:{sp:04X}"))
    } else {
        None
    }
}

/// Format an instruction in NASM syntax.
pub fn nasm(ins: &Instruction) -> String {
    let mut f = NasmFormatter::new();
    f.options_mut().set_uppercase_hex(true);
    f.options_mut().set_space_after_operand_separator(true);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

fn upper(m: Mnemonic) -> String {
    format!("{m:?}").to_uppercase()
}

/// Decode a selector error code ("IDT entry 0x81", "GDT selector 0x0040").
fn selector_error(code: u32) -> String {
    let ext = if code & 1 != 0 {
        ", external event"
    } else {
        ""
    };
    if code & 2 != 0 {
        format!("IDT entry 0x{:02X}{ext}", code >> 3)
    } else if code & 4 != 0 {
        format!("LDT selector 0x{:04X}{ext}", code & !7)
    } else {
        format!("GDT selector 0x{:04X}{ext}", code & !7)
    }
}

fn iopl(cpu: &Cpu) -> u8 {
    ((cpu.eflags() >> 12) & 3) as u8
}

/// The port an I/O instruction addresses.
fn io_port(cpu: &Cpu, ins: &Instruction) -> Option<u16> {
    let n = if ins.mnemonic() == Mnemonic::Out
        || matches!(
            ins.mnemonic(),
            Mnemonic::Outsb | Mnemonic::Outsw | Mnemonic::Outsd
        ) {
        0
    } else {
        1
    };
    match ins.op_kind(n) {
        OpKind::Immediate8 => Some(ins.immediate8() as u16),
        OpKind::Register if ins.op_register(n) == Register::DX => Some(cpu.regs[2] as u16),
        _ => Some(cpu.regs[2] as u16),
    }
}

/// Why a trapped instruction trapped, in plain words.
fn trap_rule(cpu: &Cpu, m: Mnemonic, cpl: u8) -> String {
    let ins = cpu.observed_instruction().map(|o| *o.2);
    let mode = cpu.mode();
    let io = iopl(cpu);
    let name = upper(m);
    match classify::classify(m).map(|c| c.class) {
        Some(Class::IoplSensitive) => {
            let port = ins.as_ref().and_then(|i| io_port(cpu, i));
            match (m, port) {
                (Mnemonic::Cli | Mnemonic::Sti, _) if mode == CpuMode::Virtual8086 => {
                    format!("{name} in virtual-8086 mode with IOPL {io} < 3")
                }
                (Mnemonic::Cli | Mnemonic::Sti, _) => {
                    format!("{name} needs CPL <= IOPL: CPL {cpl} > IOPL {io}")
                }
                (_, Some(p)) => format!(
                    "port 0x{p:04X}: CPL {cpl} > IOPL {io} and the TSS I/O bitmap denies it"
                ),
                _ => format!("{name}: CPL {cpl} > IOPL {io}"),
            }
        }
        _ if m == Mnemonic::Rdtsc => {
            format!("RDTSC with CR4.TSD = 1 is privileged: CPL {cpl} is not 0")
        }
        _ if m == Mnemonic::Int => {
            let v = ins.as_ref().map_or(0, |i| i.immediate8());
            format!(
                "INT 0x{v:02X} through the {} needs CPL <= DPL, and CPL is {cpl}",
                idt_gate(cpu, v)
            )
        }
        Some(Class::Privileged) | None => {
            format!("{name} is privileged: CPL {cpl} is not 0")
        }
        _ if mode == CpuMode::Virtual8086 => {
            format!("{name} in virtual-8086 mode with IOPL {io} < 3 goes to the monitor")
        }
        _ if ins
            .as_ref()
            .is_some_and(|i| classify::classify_instruction(i) == Some(Class::Privileged)) =>
        {
            format!("{name} to a control or debug register is privileged: CPL {cpl} is not 0")
        }
        _ => format!("{name} at CPL {cpl}"),
    }
}

/// What an untrapped sensitive instruction let the guest see or do.
fn sensitive_effect(cpu: &Cpu, m: Mnemonic, cpl: u8) -> String {
    let io = iopl(cpu);
    let fl = cpu.eflags();
    let ifl = (fl >> 9) & 1;
    let ins = cpu.observed_instruction().map(|o| *o.2);
    let ss = cpu.segs[SegReg::Ss as usize];
    let esp = if ss.big() {
        cpu.regs[4]
    } else {
        cpu.regs[4] & 0xFFFF
    };
    let mode = if cpu.mode() == CpuMode::Virtual8086 {
        "in virtual-8086 mode".to_string()
    } else {
        format!("at CPL {cpl}")
    };
    let name = upper(m);
    let tail = "no trap — a VMM would never see this";
    match m {
        Mnemonic::Sgdt => format!(
            "SGDT {mode} revealed the real GDT: base 0x{:08X} limit 0x{:X}, {tail}",
            cpu.gdtr.base, cpu.gdtr.limit
        ),
        Mnemonic::Sidt => format!(
            "SIDT {mode} revealed the real IDT: base 0x{:08X} limit 0x{:X}, {tail}",
            cpu.idtr.base, cpu.idtr.limit
        ),
        Mnemonic::Sldt => format!(
            "SLDT {mode} revealed LDTR = 0x{:04X}, {tail}",
            cpu.ldtr.selector
        ),
        Mnemonic::Str => format!("STR {mode} revealed TR = 0x{:04X}, {tail}", cpu.tr.selector),
        Mnemonic::Smsw => format!(
            "SMSW {mode} revealed CR0 = 0x{:04X} (PE={}, TS={}), {tail}",
            cpu.cr[0] & 0xFFFF,
            cpu.cr[0] & 1,
            (cpu.cr[0] >> 3) & 1
        ),
        Mnemonic::Pushf | Mnemonic::Pushfd => {
            format!("{name} {mode} revealed the real IF={ifl} IOPL={io}, {tail}")
        }
        Mnemonic::Popf | Mnemonic::Popfd => {
            // The popped value is still on the stack just below ESP.
            let size = if m == Mnemonic::Popfd { 4 } else { 2 };
            let popped = peek_u32(cpu, ss.base.wrapping_add(esp.wrapping_sub(size))).map(|v| {
                if size == 2 {
                    v & 0xFFFF
                } else {
                    v
                }
            });
            match popped {
                Some(v) if (v >> 9) & 1 != ifl => format!(
                    "{name} {mode}, IOPL {io}: IF change ignored (asked IF={}, still IF={ifl}), {tail}",
                    (v >> 9) & 1
                ),
                Some(v) if (v >> 12) & 3 != io as u32 => format!(
                    "{name} {mode}: IOPL change ignored (asked {}, still {io}), {tail}",
                    (v >> 12) & 3
                ),
                _ => format!("{name} {mode}, IOPL {io}: IF/IOPL changes would be ignored silently, {tail}"),
            }
        }
        Mnemonic::Lar | Mnemonic::Lsl | Mnemonic::Verr | Mnemonic::Verw => {
            let zf = (fl >> 6) & 1;
            format!(
                "{name} {mode} judged the real descriptor against the real CPL: {}, {tail}",
                if zf == 1 {
                    "ZF=1 (accessible)"
                } else {
                    "ZF=0 (not accessible)"
                }
            )
        }
        Mnemonic::Push | Mnemonic::Pop | Mnemonic::Mov => {
            let loads = m == Mnemonic::Pop
                || (m == Mnemonic::Mov
                    && ins.as_ref().is_some_and(|i| {
                        i.op0_kind() == OpKind::Register && is_sreg(i.op0_register())
                    }));
            let r = ins.as_ref().and_then(|i| {
                (0..i.op_count())
                    .filter(|&n| i.op_kind(n) == OpKind::Register)
                    .map(|n| i.op_register(n))
                    .find(|r| is_sreg(*r))
            });
            match r {
                Some(r) => {
                    let sel = cpu.segs[SegReg::from_iced(r) as usize].selector;
                    if loads {
                        format!(
                            "{name} {mode} loaded {r:?} = 0x{sel:04X}, checked against the real CPL, {tail}"
                        )
                    } else {
                        format!(
                            "{name} {mode} revealed {r:?} = 0x{sel:04X} (RPL {}), {tail}",
                            sel & 3
                        )
                    }
                }
                None => format!("{name} {mode}: {tail}"),
            }
        }
        Mnemonic::Call | Mnemonic::Jmp | Mnemonic::Retf => format!(
            "far {} {mode}: privilege checked against the real CPL, {tail}",
            name
        ),
        Mnemonic::Int => {
            let v = ins.as_ref().map(|i| i.immediate8()).unwrap_or(0);
            format!(
                "INT 0x{v:02X} {mode}: the {} let the real CPL through, straight to ring 0's handler; no trap — a VMM would never see this as the guest's",
                idt_gate(cpu, v)
            )
        }
        Mnemonic::Iret | Mnemonic::Iretd => format!(
            "{name} {mode}, IOPL {io}: IF/IOPL restored only as privilege allows, silently; {tail}"
        ),
        _ => format!("{name} {mode}: {tail}"),
    }
}

fn is_sreg(r: Register) -> bool {
    (Register::ES as u32..=Register::GS as u32).contains(&(r as u32))
}

fn cr0_bits(v: u32) -> String {
    let names = [
        (31, "PG"),
        (30, "CD"),
        (29, "NW"),
        (18, "AM"),
        (16, "WP"),
        (5, "NE"),
        (4, "ET"),
        (3, "TS"),
        (2, "EM"),
        (1, "MP"),
        (0, "PE"),
    ];
    let on: Vec<_> = names
        .iter()
        .filter(|(b, _)| v & (1 << b) != 0)
        .map(|(_, n)| *n)
        .collect();
    on.join(" ")
}

fn changed_bits(cr: u8, old: u32, new: u32) -> String {
    if cr == 0 {
        let set = cr0_bits(new & !old);
        let cleared = cr0_bits(old & !new);
        let mut parts = Vec::new();
        if !set.is_empty() {
            parts.push(format!("{set} set"));
        }
        if !cleared.is_empty() {
            parts.push(format!("{cleared} cleared"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join(", "))
        }
    } else if cr == 3 {
        " (new page directory)".into()
    } else if cr == 2 {
        " (page-fault address)".into()
    } else {
        String::new()
    }
}

/// Describe one event with the CPU's state at the time (`cpu` is the
/// processor lent to [`Observer::event_on`]). `ctx` carries facts between
/// the events of one instruction (keep one per log).
pub fn describe(e: &Event, cpu: &Cpu, ctx: &mut Context) -> Line {
    let observed = cpu.observed_instruction();
    let (mut cs, mut eip) = match observed {
        Some((cs, eip, _)) => (cs, eip),
        None => (cpu.segs[SegReg::Cs as usize].selector, cpu.eip),
    };
    let mut linear = cpu
        .observed_linear()
        .unwrap_or_else(|| cpu.segs[SegReg::Cs as usize].base.wrapping_add(cpu.eip));
    let instruction = observed.map(|o| nasm(o.2));
    let mut cpl = cpu.cpl();
    let mut fields: Vec<(&'static str, String)> = Vec::new();
    if ctx.at != cpu.instructions && !matches!(e, Event::RingChange { .. }) {
        ctx.last_vector = None;
    }
    let text = match *e {
        Event::Exception {
            vector,
            error,
            cs: ecs,
            eip: eeip,
            cpl: ecpl,
            mnemonic,
        } => {
            cs = ecs;
            eip = eeip;
            linear = cpu.segs[SegReg::Cs as usize].base.wrapping_add(eeip);
            cpl = ecpl;
            ctx.last_vector = Some((vector, "exception"));
            ctx.at = cpu.instructions;
            fields.push(("vector", vector.to_string()));
            fields.push(("error", error.map_or("null".into(), |c| c.to_string())));
            let head = match error {
                Some(c) => format!("{}({c:#X})", short_vector(vector)),
                None => short_vector(vector).to_string(),
            };
            let name = vector_name(vector).split_once(' ').map_or("", |p| p.1);
            let why = match (vector, error) {
                (14, Some(c)) => {
                    let cr2 = cpu.cr[2];
                    fields.push(("cr2", format!("\"0x{cr2:08X}\"")));
                    let (_, levels) = walk(cpu, cr2);
                    let walk: Vec<_> = levels
                        .iter()
                        .map(|(n, i, v)| format!("{n}[0x{i:03X}]=0x{v:08X}"))
                        .collect();
                    format!(
                        ": {} on a {} from {} mode at 0x{cr2:08X}{}; walk {}",
                        if c & 1 != 0 {
                            "protection violation"
                        } else {
                            "page not present"
                        },
                        if c & 2 != 0 { "write" } else { "read" },
                        if c & 4 != 0 { "user" } else { "supervisor" },
                        if c & 8 != 0 { ", reserved bit set" } else { "" },
                        walk.join(" ")
                    )
                }
                (13, Some(0)) | (_, None) => match mnemonic {
                    Some(m)
                        if vector == 13
                            && (ecpl > 0 || cpu.mode() == CpuMode::Virtual8086)
                            && trapped_kind(cpu, m) =>
                    {
                        format!(": {}", trap_rule(cpu, m, ecpl))
                    }
                    _ => String::new(),
                },
                (8, Some(_)) => String::new(),
                (_, Some(c)) => {
                    let mut s = format!(": {}", selector_error(c));
                    if vector == 13 && c & 2 != 0 && mnemonic == Some(Mnemonic::Int) {
                        let v = (c >> 3) as u8;
                        s = format!(
                            ": INT 0x{v:02X} at CPL {ecpl} but the {} needs CPL <= its DPL",
                            idt_gate(cpu, v)
                        );
                    }
                    s
                }
            };
            format!("{head} {name}{why}")
        }
        Event::Interrupt { vector, cpl: c } => {
            cpl = c;
            ctx.last_vector = Some((vector, "interrupt"));
            ctx.at = cpu.instructions;
            fields.push(("vector", vector.to_string()));
            format!("hardware interrupt, vector 0x{vector:02X}")
        }
        Event::SoftwareInterrupt { vector, cpl: c } => {
            cpl = c;
            ctx.last_vector = Some((vector, "software"));
            ctx.at = cpu.instructions;
            fields.push(("vector", vector.to_string()));
            format!("software interrupt 0x{vector:02X}")
        }
        Event::RingChange { from, to, cause } => {
            cpl = from;
            fields.push(("from", from.to_string()));
            fields.push(("to", to.to_string()));
            let via = match (cause, ctx.last_vector) {
                ("INT through a gate" | "exception" | "hardware interrupt", Some((v, _))) => {
                    idt_gate(cpu, v)
                }
                ("CALL through a gate", _) => match observed.map(|o| o.2) {
                    Some(i)
                        if matches!(i.op0_kind(), OpKind::FarBranch16 | OpKind::FarBranch32) =>
                    {
                        format!("call gate 0x{:04X}", i.far_branch_selector())
                    }
                    _ => "a call gate".into(),
                },
                ("IRET", _) if cpu.mode() == CpuMode::Virtual8086 => {
                    "IRET (into virtual-8086 mode)".into()
                }
                ("SYSENTER", _) => format!(
                    "SYSENTER (SYSENTER_CS 0x{:04X}, EIP 0x{:08X})",
                    cpu.sysenter[0], cpu.sysenter[2]
                ),
                (c, _) => c.to_string(),
            };
            let stack = if cause == "SYSENTER" {
                format!(
                    "; stack from MSR 0x175: {:04X}:{:08X}",
                    (cpu.sysenter[0] as u16).wrapping_add(8),
                    cpu.sysenter[1]
                )
            } else if to < from {
                match tss_stack(cpu, to) {
                    Some(s) => format!("; stack from the TSS: {s}"),
                    None => String::new(),
                }
            } else {
                String::new()
            };
            format!("ring {from} → ring {to} via {via}{stack}")
        }
        Event::ModeChange { from, to, paging } => {
            fields.push(("from", format!("\"{}\"", mode_name(from))));
            fields.push(("to", format!("\"{}\"", mode_name(to))));
            fields.push(("paging", paging.to_string()));
            if from == to {
                format!("paging {}", if paging { "on" } else { "off" })
            } else {
                format!(
                    "{} → {}{}",
                    mode_words(from),
                    mode_words(to),
                    if paging { ", paging on" } else { "" }
                )
            }
        }
        Event::TaskSwitch { from, to } => {
            fields.push(("from", from.to_string()));
            fields.push(("to", to.to_string()));
            let ins = observed.map(|o| upper(o.2.mnemonic()));
            if ins.as_deref() == Some("LTR") {
                return_text_ltr(to)
            } else {
                format!(
                "task switch: TR 0x{from:04X} → 0x{to:04X} (state saved in the old TSS, loaded from the new){}",
                ins.map(|i| format!(" by {i}")).unwrap_or_default()
            )
            }
        }
        Event::PrivilegedTrap { mnemonic, cpl: c } => {
            cpl = c;
            fields.push(("mnemonic", format!("\"{}\"", upper(mnemonic))));
            format!(
                "{} trapped: {} — a trap-and-emulate VMM sees this",
                upper(mnemonic),
                trap_rule(cpu, mnemonic, c)
            )
        }
        Event::SensitiveUntrapped {
            mnemonic, cpl: c, ..
        } => {
            cpl = c;
            fields.push(("mnemonic", format!("\"{}\"", upper(mnemonic))));
            sensitive_effect(cpu, mnemonic, c)
        }
        Event::ControlRegisterWrite { cr, old, new } => {
            fields.push(("cr", cr.to_string()));
            fields.push(("old", format!("\"0x{old:08X}\"")));
            fields.push(("new", format!("\"0x{new:08X}\"")));
            format!(
                "CR{cr} 0x{old:08X} → 0x{new:08X}{}",
                changed_bits(cr, old, new)
            )
        }
        Event::TlbFlush { cause } => {
            let why = match cause {
                FlushCause::Cr3 => "MOV to CR3 (non-global entries)",
                FlushCause::ControlBits => "paging control bits changed (all entries)",
                FlushCause::Invlpg => "INVLPG (one page)",
                FlushCause::TaskSwitch => "task switch loaded CR3",
            };
            fields.push(("cause", format!("\"{cause:?}\"")));
            format!("TLB flush: {why}")
        }
        Event::TlbFill { linear: l, phys } => {
            fields.push(("lin", format!("\"0x{l:08X}\"")));
            fields.push(("phys_page", format!("\"0x{phys:08X}\"")));
            format!("TLB miss, page walk: linear 0x{l:08X} → physical 0x{phys:08X}")
        }
        Event::SmmEntry {
            smbase,
            cs: from_cs,
            eip: from_eip,
            halted,
        } => {
            fields.push(("smbase", format!("\"0x{smbase:X}\"")));
            fields.push(("from", format!("\"{from_cs:04X}:{from_eip:08X}\"")));
            fields.push(("halted", halted.to_string()));
            summary(e)
        }
        Event::Rsm { smbase } => {
            fields.push(("smbase", format!("\"0x{smbase:X}\"")));
            summary(e)
        }
        Event::Hypercall { .. } => {
            if let Event::Hypercall {
                service, honoured, ..
            } = *e
            {
                fields.push(("service", service.to_string()));
                fields.push(("honoured", honoured.to_string()));
            }
            summary(e)
        }
    };
    Line {
        cycle: cpu.cycles,
        instructions: cpu.instructions,
        kind: kind(e),
        cs,
        eip,
        linear,
        phys: peek_phys(cpu, linear),
        cpl,
        mode: mode_name(cpu.mode()),
        iopl: iopl(cpu),
        instruction,
        text,
        fields,
    }
}

fn return_text_ltr(to: u16) -> String {
    format!("task register loaded: TR = 0x{to:04X} (LTR; no task switch)")
}

/// A one-line description of an event without the processor's context
/// (for events stored and shown later, e.g. the debugger's `log`); live
/// observers should use [`describe`], which adds gates, stacks, rules and
/// what the guest observed.
pub fn summary(e: &Event) -> String {
    match *e {
        Event::Exception {
            vector,
            error,
            cs,
            eip,
            cpl,
            mnemonic,
        } => {
            let err = error.map_or(String::new(), |c| format!("({c:#X})"));
            let by = mnemonic.map_or(String::new(), |m| format!(" by {}", upper(m)));
            let detail = match (vector, error) {
                (10..=13, Some(c)) if c != 0 => format!(": {}", selector_error(c)),
                _ => String::new(),
            };
            format!(
                "{}{err} {} at {cs:04X}:{eip:08X}, CPL {cpl}{by}{detail}",
                short_vector(vector),
                vector_name(vector).split_once(' ').map_or("", |p| p.1)
            )
        }
        Event::Interrupt { vector, cpl } => {
            format!("hardware interrupt, vector 0x{vector:02X}, at CPL {cpl}")
        }
        Event::SoftwareInterrupt { vector, cpl } => {
            format!("software interrupt 0x{vector:02X} at CPL {cpl}")
        }
        Event::RingChange { from, to, cause } => format!("ring {from} → ring {to} via {cause}"),
        Event::ModeChange { from, to, paging } => {
            if from == to {
                format!("paging {}", if paging { "on" } else { "off" })
            } else {
                format!("{} → {}", mode_words(from), mode_words(to))
            }
        }
        Event::TaskSwitch { from, to } => format!("TR 0x{from:04X} → 0x{to:04X}"),
        Event::PrivilegedTrap { mnemonic, cpl } => format!(
            "{} trapped (#GP) at CPL {cpl} — a trap-and-emulate VMM sees this",
            upper(mnemonic)
        ),
        Event::SensitiveUntrapped { mnemonic, cpl, why } => format!(
            "{} at CPL {cpl} did not trap: {why} — a VMM would never see this",
            upper(mnemonic)
        ),
        Event::ControlRegisterWrite { cr, old, new } => format!(
            "CR{cr} 0x{old:08X} → 0x{new:08X}{}",
            changed_bits(cr, old, new)
        ),
        Event::TlbFlush { cause } => format!("TLB flush: {cause:?}"),
        Event::TlbFill { linear, phys } => {
            format!("TLB fill: linear 0x{linear:08X} → physical 0x{phys:08X}")
        }
        Event::SmmEntry {
            smbase,
            cs,
            eip,
            halted,
        } => format!(
            "SMI at {cs:04X}:{eip:08X} → SMM at SMBASE 0x{smbase:X}: state saved at 0x{:X}, handler at 0x{:X}{}",
            smbase.wrapping_add(0xFE00),
            smbase.wrapping_add(0x8000),
            if halted {
                " (was halted: auto-HALT restart set)"
            } else {
                ""
            }
        ),
        Event::Rsm { smbase } => {
            format!("RSM: state restored from SMRAM, SMM left (SMBASE now 0x{smbase:X})")
        }
        Event::Hypercall {
            service,
            routine,
            honoured,
        } => {
            if honoured {
                format!(
                    "hypercall 0x{service:02X} from {routine}: OUT to port 0xE0, serviced by the host \
                     — no trap, the guest asked (paravirtualization)"
                )
            } else {
                format!("write 0x{service:02X} to the BIOS service port refused: not from the BIOS ROM in real mode")
            }
        }
    }
}

/// Whether a #GP raised by `m` is the trap a VMM relies on.
fn trapped_kind(cpu: &Cpu, m: Mnemonic) -> bool {
    match classify::classify(m).map(|c| c.class) {
        Some(Class::Privileged | Class::IoplSensitive) => true,
        _ => {
            cpu.mode() == CpuMode::Virtual8086
                || cpu
                    .observed_instruction()
                    .is_some_and(|o| classify::classify_instruction(o.2) == Some(Class::Privileged))
        }
    }
}

/// A projector line: cycle, CS:EIP, ring, instruction, words.
pub fn format_text(l: &Line) -> String {
    let ring = if l.mode == "real" {
        "real  ".to_string()
    } else if l.mode == "v86" && l.kind != "ring" {
        "v86   ".to_string()
    } else {
        format!("ring {}", l.cpl)
    };
    format!(
        "{:>10}  {:04X}:{:08X}  {ring}  {:<22}  {}",
        l.cycle,
        l.cs,
        l.eip,
        l.instruction.as_deref().unwrap_or("-"),
        l.text
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON Lines record.
pub fn format_jsonl(l: &Line) -> String {
    let mut s = format!(
        "{{\"cycle\":{},\"instructions\":{},\"kind\":\"{}\",\"cs\":\"0x{:04X}\",\"eip\":\"0x{:08X}\",\"linear\":\"0x{:08X}\",\"phys\":{},\"cpl\":{},\"mode\":\"{}\",\"iopl\":{},\"instruction\":{}",
        l.cycle,
        l.instructions,
        l.kind,
        l.cs,
        l.eip,
        l.linear,
        l.phys.map_or("null".into(), |p| format!("\"0x{p:08X}\"")),
        l.cpl,
        l.mode,
        l.iopl,
        l.instruction.as_deref().map_or("null".into(), json_str),
    );
    for (k, v) in &l.fields {
        s.push_str(&format!(",\"{k}\":{v}"));
    }
    s.push_str(&format!(",\"text\":{}}}", json_str(&l.text)));
    s
}

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

    fn record(&mut self, e: &Event, cpu: &Cpu) {
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

/// What a live overlay panel shows (the window reads it between frames):
/// the CPU's CPL, mode, paging and IOPL, and the last few events in the
/// trap log's words.
///
/// The machine side writes it only at events (the trap log already formats
/// a line for each) and at frame boundaries ([`Overlay::sync`]), never per
/// instruction; the window copies it when [`Overlay::changes`] moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// CPL at the last event or sync.
    pub cpl: u8,
    /// Mode at the last event or sync ("real", "protected", "v86"; empty
    /// before the first).
    pub mode: &'static str,
    /// CR0.PG at the last event or sync.
    pub paging: bool,
    /// IOPL at the last event or sync.
    pub iopl: u8,
    /// The most recent events, oldest first.
    pub recent: std::collections::VecDeque<OverlayEvent>,
    /// How many events `recent` keeps.
    pub keep: usize,
    /// Bumped on every change, so a reader redraws only when it moved.
    pub changes: u64,
}

/// One event as the overlay shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlayEvent {
    /// Its kind (see [`KINDS`]), for colouring.
    pub kind: &'static str,
    /// [`format_short`]'s line.
    pub text: String,
}

impl Overlay {
    /// An empty overlay keeping the last `keep` events.
    pub fn new(keep: usize) -> Overlay {
        Overlay {
            keep,
            ..Overlay::default()
        }
    }

    /// Take CPL, mode, paging and IOPL from the CPU as it is now (between
    /// events: IOPL changes by POPF or IRET are not events).
    pub fn sync(&mut self, cpu: &Cpu) {
        let state = (
            cpu.cpl(),
            mode_name(cpu.mode()),
            cpu.cr[0] & 0x8000_0000 != 0,
            iopl(cpu),
        );
        if state != (self.cpl, self.mode, self.paging, self.iopl) {
            (self.cpl, self.mode, self.paging, self.iopl) = state;
            self.changes += 1;
        }
    }

    /// Record one described event (the trap log calls this for each line
    /// it keeps).
    pub fn record(&mut self, line: &Line, cpu: &Cpu) {
        self.sync(cpu);
        if self.keep > 0 {
            while self.recent.len() >= self.keep {
                self.recent.pop_front();
            }
            self.recent.push_back(OverlayEvent {
                kind: line.kind,
                text: format_short(line),
            });
        }
        self.changes += 1;
    }

    /// The state line: `CPL 3  protected mode  paging on  IOPL 0`.
    pub fn status_line(&self) -> String {
        let mode = match self.mode {
            "" => "mode unknown",
            "real" => "real mode",
            "v86" => "virtual-8086 mode",
            _ => "protected mode",
        };
        format!(
            "CPL {}  {mode}  paging {}  IOPL {}",
            self.cpl,
            if self.paging { "on" } else { "off" },
            self.iopl
        )
    }
}

/// A line for a narrow panel: cycle, ring, instruction and the words,
/// without CS:EIP and the projector's column padding.
pub fn format_short(l: &Line) -> String {
    let ring = if l.mode == "real" {
        "real".to_string()
    } else if l.mode == "v86" && l.kind != "ring" {
        "v86".to_string()
    } else {
        format!("ring {}", l.cpl)
    };
    match &l.instruction {
        Some(i) => format!("{:>7} {ring:<6} {i}: {}", l.cycle, l.text),
        None => format!("{:>7} {ring:<6} {}", l.cycle, l.text),
    }
}

/// The observer: writes filtered lines and keeps statistics.
pub struct TrapLog {
    out: Option<Box<dyn Write + Send>>,
    format: Format,
    filter: Filter,
    ctx: Context,
    stats: Option<Arc<Mutex<Stats>>>,
    overlay: Option<Arc<Mutex<Overlay>>>,
}

impl TrapLog {
    /// A log writing to `out` (or only counting, with `None`).
    pub fn new(out: Option<Box<dyn Write + Send>>, format: Format, filter: Filter) -> TrapLog {
        TrapLog {
            out,
            format,
            filter,
            ctx: Context::default(),
            stats: None,
            overlay: None,
        }
    }

    /// Also keep the last `overlay.keep` events (filtered as the log is)
    /// and the CPU's state for a live overlay.
    pub fn with_overlay(mut self, overlay: Arc<Mutex<Overlay>>) -> TrapLog {
        self.overlay = Some(overlay);
        self
    }

    /// Also keep statistics in `stats`.
    pub fn with_stats(mut self, stats: Arc<Mutex<Stats>>) -> TrapLog {
        self.stats = Some(stats);
        self
    }
}

impl Observer for TrapLog {
    fn event(&mut self, _e: &Event) {}

    fn event_on(&mut self, e: &Event, cpu: &Cpu) {
        if let Some(s) = &self.stats {
            if let Ok(mut s) = s.lock() {
                s.record(e, cpu);
            }
        }
        if self.out.is_none() && self.overlay.is_none() {
            return;
        }
        // TLB fills come by the million in a paging guest and only
        // `tlb-fill` asks for them: when the filter drops them, skip
        // describing them, keeping only what `describe` would have done
        // to the context (a later instruction forgets the last vector).
        if matches!(e, Event::TlbFill { .. }) && !self.filter.kinds.contains(&"tlb-fill") {
            if self.ctx.at != cpu.instructions {
                self.ctx.last_vector = None;
            }
            return;
        }
        let line = describe(e, cpu, &mut self.ctx);
        if !self.filter.keeps(e, line.cpl) {
            return;
        }
        if let Some(o) = &self.overlay {
            if let Ok(mut o) = o.lock() {
                o.record(&line, cpu);
            }
        }
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let text = match self.format {
            Format::Text => format_text(&line),
            Format::Jsonl => format_jsonl(&line),
        };
        // A full disk or closed pipe must not stop the guest.
        let _ = writeln!(out, "{text}");
    }
}

/// A writer into a shared buffer (tests, lessons that compare logs).
#[derive(Clone, Debug, Default)]
pub struct SharedBuffer(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// The text written so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Console, Machine, MachineConfig, RunLimits};

    fn run_logged(rom: &[u8], format: Format, filter: Filter) -> (String, Stats, Machine) {
        let config = MachineConfig {
            console: Console::Capture(Vec::new()),
            ..MachineConfig::default()
        };
        let mut m = Machine::new(rom.to_vec(), config).expect("valid ROM");
        let buf = SharedBuffer::default();
        let stats = Arc::new(Mutex::new(Stats::new()));
        let log =
            TrapLog::new(Some(Box::new(buf.clone())), format, filter).with_stats(stats.clone());
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
        let mut log =
            TrapLog::new(None, Format::Text, Filter::default()).with_overlay(overlay.clone());
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
}
