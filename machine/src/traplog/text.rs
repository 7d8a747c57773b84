//! An event in plain words: [`describe`] with the processor's state at the
//! time (gates, stacks, page walks, the rule that trapped), [`summary`]
//! without it. Memory is read without side effects: page walks go through
//! `ringside_mmu::peek` (no accessed or dirty bits, no TLB fill).

use iced_x86::{Formatter, Instruction, Mnemonic, NasmFormatter, OpKind};
use ringside_cpu::{regs::cr0, Cpu, CpuMode, Event, SegReg};
use ringside_mmu::FlushCause;
use serde_json::Value;

use super::filter::kind;
use super::rules::{sensitive_effect, trap_rule, trapped_kind};

/// What the log remembers between events of one instruction, to say which
/// gate a ring change went through.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context {
    /// The last vector raised or taken, and what raised it.
    last_vector: Option<(u8, &'static str)>,
    /// Instruction count when `last_vector` was set.
    at: u64,
}

impl Context {
    /// A later instruction than the one that raised the last vector
    /// forgets it.
    pub(super) fn new_instruction(&mut self, instructions: u64) {
        if self.at != instructions {
            self.last_vector = None;
        }
    }
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
    /// Event-specific fields for JSON (name, value), in order.
    pub fields: Vec<(&'static str, Value)>,
}

pub(super) fn mode_name(m: CpuMode) -> &'static str {
    match m {
        CpuMode::Real => "real",
        CpuMode::Protected => "protected",
        CpuMode::Virtual8086 => "v86",
    }
}

pub(super) fn mode_words(m: CpuMode) -> &'static str {
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

pub(super) fn short_vector(v: u8) -> &'static str {
    vector_name(v).split(' ').next().unwrap_or("")
}

/// The physical address of `linear` by the current page tables, read
/// without side effects (no accessed bits, no TLB fill). `None` when not
/// mapped.
pub fn peek_phys(cpu: &Cpu, linear: u32) -> Option<u32> {
    if cpu.cr[0] & cr0::PG == 0 {
        return Some(linear & cpu.mem.a20_mask());
    }
    ringside_mmu::peek(&cpu.mem, cpu.paging_mode(), linear)
        .ok()
        .map(|t| t.phys)
}

/// The entries a page walk for `linear` visits, as the #PF line shows them
/// (`PDE[0x001]=0x00002007`), read without side effects.
fn walk_text(cpu: &Cpu, linear: u32) -> String {
    let levels = match ringside_mmu::peek(&cpu.mem, cpu.paging_mode(), linear) {
        Ok(t) => t.levels,
        Err(f) => f.levels,
    };
    let pae = cpu.paging_mode().pae;
    let entries: Vec<_> = levels
        .iter()
        .flatten()
        .map(|l| {
            // The entry's index in its table, from where it sits: PDPTEs
            // in their 32-byte table, the others in a 4 KiB page.
            let index = match (l.name, pae) {
                ("PDPTE", _) => (l.addr >> 3) & 3,
                (_, true) => (l.addr & 0xFFF) >> 3,
                (_, false) => (l.addr & 0xFFF) >> 2,
            };
            format!("{}[0x{index:03X}]=0x{:08X}", l.name, l.value)
        })
        .collect();
    entries.join(" ")
}

/// Read 8 bytes at a linear address without side effects.
pub(super) fn peek_u64(cpu: &Cpu, linear: u32) -> Option<u64> {
    let lo = cpu.mem.read_u32(peek_phys(cpu, linear)?)?;
    let hi = cpu.mem.read_u32(peek_phys(cpu, linear.wrapping_add(4))?)?;
    Some(lo as u64 | ((hi as u64) << 32))
}

pub(super) fn peek_u32(cpu: &Cpu, linear: u32) -> Option<u32> {
    let lo = cpu.mem.read_u16(peek_phys(cpu, linear)?)? as u32;
    let hi = cpu.mem.read_u16(peek_phys(cpu, linear.wrapping_add(2))?)? as u32;
    Some(lo | (hi << 16))
}

/// The IDT gate for `vector`, described ("interrupt gate 0x80, DPL 3").
pub(super) fn idt_gate(cpu: &Cpu, vector: u8) -> String {
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
pub(super) fn tss_stack(cpu: &Cpu, ring: u8) -> Option<String> {
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

pub(super) fn upper(m: Mnemonic) -> String {
    format!("{m:?}").to_uppercase()
}

/// Decode a selector error code ("IDT entry 0x81", "GDT selector 0x0040").
pub(super) fn selector_error(code: u32) -> String {
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

pub(super) fn iopl(cpu: &Cpu) -> u8 {
    ((cpu.eflags() >> 12) & 3) as u8
}

pub(super) fn changed_bits(cr: u8, old: u32, new: u32) -> String {
    if cr == 0 {
        let set = cr0::names(new & !old);
        let cleared = cr0::names(old & !new);
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
    let mut fields: Vec<(&'static str, Value)> = Vec::new();
    if !matches!(e, Event::RingChange { .. }) {
        ctx.new_instruction(cpu.instructions);
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
            fields.push(("vector", vector.into()));
            fields.push(("error", error.into()));
            let head = match error {
                Some(c) => format!("{}({c:#X})", short_vector(vector)),
                None => short_vector(vector).to_string(),
            };
            let name = vector_name(vector).split_once(' ').map_or("", |p| p.1);
            let why = match (vector, error) {
                (14, Some(c)) => {
                    let cr2 = cpu.cr[2];
                    fields.push(("cr2", format!("0x{cr2:08X}").into()));
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
                        walk_text(cpu, cr2)
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
            fields.push(("vector", vector.into()));
            format!("hardware interrupt, vector 0x{vector:02X}")
        }
        Event::SoftwareInterrupt { vector, cpl: c } => {
            cpl = c;
            ctx.last_vector = Some((vector, "software"));
            ctx.at = cpu.instructions;
            fields.push(("vector", vector.into()));
            format!("software interrupt 0x{vector:02X}")
        }
        Event::RingChange { from, to, cause } => {
            cpl = from;
            fields.push(("from", from.into()));
            fields.push(("to", to.into()));
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
            fields.push(("from", mode_name(from).into()));
            fields.push(("to", mode_name(to).into()));
            fields.push(("paging", paging.into()));
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
            fields.push(("from", from.into()));
            fields.push(("to", to.into()));
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
            fields.push(("mnemonic", upper(mnemonic).into()));
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
            fields.push(("mnemonic", upper(mnemonic).into()));
            sensitive_effect(cpu, mnemonic, c)
        }
        Event::ControlRegisterWrite { cr, old, new } => {
            fields.push(("cr", cr.into()));
            fields.push(("old", format!("0x{old:08X}").into()));
            fields.push(("new", format!("0x{new:08X}").into()));
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
            fields.push(("cause", format!("{cause:?}").into()));
            format!("TLB flush: {why}")
        }
        Event::TlbFill { linear: l, phys } => {
            fields.push(("lin", format!("0x{l:08X}").into()));
            fields.push(("phys_page", format!("0x{phys:08X}").into()));
            format!("TLB miss, page walk: linear 0x{l:08X} → physical 0x{phys:08X}")
        }
        Event::SmmEntry {
            smbase,
            cs: from_cs,
            eip: from_eip,
            halted,
        } => {
            fields.push(("smbase", format!("0x{smbase:X}").into()));
            fields.push(("from", format!("{from_cs:04X}:{from_eip:08X}").into()));
            fields.push(("halted", halted.into()));
            summary(e)
        }
        Event::Rsm { smbase } => {
            fields.push(("smbase", format!("0x{smbase:X}").into()));
            summary(e)
        }
        Event::Hypercall { .. } => {
            if let Event::Hypercall {
                service, honoured, ..
            } = *e
            {
                fields.push(("service", service.into()));
                fields.push(("honoured", honoured.into()));
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

pub(super) fn return_text_ltr(to: u16) -> String {
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
