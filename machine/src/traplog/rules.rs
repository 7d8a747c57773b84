//! The teaching text for trapped and untrapped sensitive instructions:
//! why a trapped instruction trapped ([`trap_rule`]), what an untrapped
//! sensitive one let the guest see or do ([`sensitive_effect`]), and
//! whether a #GP is the trap a VMM relies on ([`trapped_kind`]). The
//! classification itself is `ringside_cpu::classify`.

use iced_x86::{Instruction, Mnemonic, OpKind, Register};
use ringside_cpu::classify::{self, is_sreg, Class};
use ringside_cpu::{Cpu, CpuMode, SegReg};

use super::text::{idt_gate, iopl, peek_u32, upper};

/// The port an I/O instruction addresses.
pub(super) fn io_port(cpu: &Cpu, ins: &Instruction) -> Option<u16> {
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
pub(super) fn trap_rule(cpu: &Cpu, m: Mnemonic, cpl: u8) -> String {
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
pub(super) fn sensitive_effect(cpu: &Cpu, m: Mnemonic, cpl: u8) -> String {
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

/// Whether a #GP raised by `m` is the trap a VMM relies on.
pub(super) fn trapped_kind(cpu: &Cpu, m: Mnemonic) -> bool {
    match classify::classify(m) {
        Some(c) if c.class.traps_deprivileged() => true,
        _ => {
            cpu.mode() == CpuMode::Virtual8086
                || cpu
                    .observed_instruction()
                    .is_some_and(|o| classify::classify_instruction(o.2) == Some(Class::Privileged))
        }
    }
}
