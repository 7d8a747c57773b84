//! What the debugger shows: registers with the hidden descriptor caches,
//! control and debug registers, disassembly, memory, descriptor tables, the
//! page walk. Reading guest memory here never has side effects (no A/D
//! bits, no TLB fills, no MMIO reads: MMIO shows as `??`).

use std::fmt::Write as _;

use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, Mnemonic, NasmFormatter};
use ringside_cpu::{gpr, CpuMode, HostExec, SegReg, Segment};

use super::expr::{Context, Reg};
use super::{Catch, Point, PointKind, StopCause};
use crate::Machine;

/// Expressions evaluated against a machine.
pub struct MachineContext<'a>(pub &'a mut Machine);

impl Context for MachineContext<'_> {
    fn reg(&self, r: Reg) -> u32 {
        let c = &self.0.cpu;
        match r {
            Reg::R32(i) => c.regs[i as usize],
            Reg::R16(i) => c.regs[i as usize] & 0xFFFF,
            Reg::R8Lo(i) => c.regs[i as usize] & 0xFF,
            Reg::R8Hi(i) => (c.regs[i as usize] >> 8) & 0xFF,
            Reg::Seg(i) => c.segs[i as usize].selector as u32,
            Reg::Eip => c.eip,
            Reg::Ip => c.eip & 0xFFFF,
            Reg::Eflags => c.eflags(),
            Reg::Cr(i) => c.cr[i as usize],
            Reg::Dr(i) => c.dr[i as usize],
            Reg::Cpl => c.cpl() as u32,
        }
    }

    fn mem(&mut self, linear: u32, size: u8) -> Option<u32> {
        let mut v = 0;
        for i in 0..size as u32 {
            v |= (read_linear_u8(self.0, linear.wrapping_add(i))? as u32) << (8 * i);
        }
        Some(v)
    }
}

/// A byte of physical memory, `None` for MMIO and unmapped space.
pub fn read_phys_u8(m: &Machine, phys: u32) -> Option<u8> {
    if m.cpu.mem.is_mmio(phys) {
        return None;
    }
    m.cpu.mem.read_u8(phys)
}

/// A byte at a linear address (through the page tables, without side
/// effects).
pub fn read_linear_u8(m: &mut Machine, lin: u32) -> Option<u8> {
    let p = m.cpu.debug_translate(lin)?;
    read_phys_u8(m, p)
}

/// Our BIOS's routine at a linear address, as `name+0xOFF` (`name` at its
/// first byte): only when the ROM is ours and the address reaches the ROM
/// (at F0000–FFFFF or its alias below 4 GiB, through the page tables).
pub fn symbol_at(m: &mut Machine, lin: u32) -> Option<String> {
    m.bios.as_ref()?;
    let p = m.cpu.debug_translate(lin)?;
    symbol_at_physical(m, p)
}

/// [`symbol_at`] for a physical address.
pub fn symbol_at_physical(m: &Machine, p: u32) -> Option<String> {
    m.bios.as_ref()?;
    let rom = ringside_bios::layout::ROM_BASE;
    let size = ringside_bios::layout::ROM_SIZE as u32;
    let in_rom = if (rom..rom + size).contains(&p) {
        p
    } else if p >= size.wrapping_neg() {
        rom + (p & (size - 1))
    } else {
        return None;
    };
    let (name, off) = ringside_bios::symbolize(in_rom)?;
    Some(if off == 0 {
        name.to_string()
    } else {
        format!("{name}+0x{off:X}")
    })
}

/// ` <name+0xOFF>` for [`symbol_at`], or nothing.
fn symbol_suffix(m: &mut Machine, lin: u32) -> String {
    symbol_at(m, lin)
        .map(|s| format!(" <{s}>"))
        .unwrap_or_default()
}

/// CS.base + EIP.
pub fn current_linear(m: &Machine) -> u32 {
    m.cpu.segs[SegReg::Cs as usize].base.wrapping_add(m.cpu.eip)
}

/// Decode the instruction at a linear address.
pub fn decode_at(m: &mut Machine, lin: u32, ip: u32, code32: bool) -> Option<Instruction> {
    let mut buf = Vec::with_capacity(16);
    for i in 0..15u32 {
        match read_linear_u8(m, lin.wrapping_add(i)) {
            Some(b) => buf.push(b),
            None => break,
        }
    }
    let mut d = Decoder::with_ip(
        if code32 { 32 } else { 16 },
        &buf,
        ip as u64,
        DecoderOptions::NONE,
    );
    let ins = d.decode();
    (!ins.is_invalid()).then_some(ins)
}

/// The instruction at CS:EIP.
pub fn current_instruction(m: &mut Machine) -> Option<Instruction> {
    let code32 = m.cpu.code32();
    decode_at(m, current_linear(m), m.cpu.eip, code32)
}

/// Where `next` stops when the current instruction is a call, a software
/// interrupt or a REP string instruction: CS:IP of the next instruction.
pub fn step_over_target(m: &mut Machine) -> Option<HostExec> {
    let ins = current_instruction(m)?;
    let over = matches!(
        ins.mnemonic(),
        Mnemonic::Call | Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Into | Mnemonic::Int1
    ) || ins.has_rep_prefix()
        || ins.has_repe_prefix()
        || ins.has_repne_prefix()
        || matches!(
            ins.mnemonic(),
            Mnemonic::Loop | Mnemonic::Loope | Mnemonic::Loopne
        ) && ins.near_branch_target() < ins.ip();
    if !over {
        return None;
    }
    let mut next = m.cpu.eip.wrapping_add(ins.len() as u32);
    if !m.cpu.code32() {
        next &= 0xFFFF;
    }
    Some(HostExec::Segmented(
        m.cpu.segs[SegReg::Cs as usize].selector,
        next,
    ))
}

fn format_ins(ins: &Instruction) -> String {
    let mut f = NasmFormatter::new();
    f.options_mut().set_uppercase_hex(true);
    f.options_mut().set_space_after_operand_separator(true);
    let mut s = String::new();
    f.format(ins, &mut s);
    s
}

/// One line of the instruction trace: instruction count, CS:EIP, bytes,
/// disassembly.
pub fn trace_line(m: &mut Machine) -> String {
    let lin = current_linear(m);
    let cs = m.cpu.segs[SegReg::Cs as usize].selector;
    let (eip, code32) = (m.cpu.eip, m.cpu.code32());
    let n = m.cpu.instructions;
    match decode_at(m, lin, eip, code32) {
        Some(ins) => format!(
            "{n:>12} {cs:04X}:{eip:08X} {:<20} {}",
            bytes_hex(m, lin, ins.len()),
            format_ins(&ins)
        ),
        None => format!("{n:>12} {cs:04X}:{eip:08X} (cannot decode)"),
    }
}

fn bytes_hex(m: &mut Machine, lin: u32, n: usize) -> String {
    let mut s = String::new();
    for i in 0..n as u32 {
        match read_linear_u8(m, lin.wrapping_add(i)) {
            Some(b) => {
                let _ = write!(s, "{b:02X}");
            }
            None => s.push_str("??"),
        }
    }
    s
}

/// Where code or data is, as the user named it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// Selector:offset; the base comes from a segment register holding that
    /// selector, from the descriptor tables, or selector × 16 in real mode.
    Segmented(u16, u32),
    /// A linear address.
    Linear(u32),
    /// A physical address.
    Physical(u32),
}

/// The linear base of selector `sel` as the CPU would use it now.
pub fn segment_base(m: &mut Machine, sel: u16) -> u32 {
    // A loaded segment register's cache wins (CS first): right after reset
    // CS=F000 has base FFFF0000, not F0000.
    let cs = m.cpu.segs[SegReg::Cs as usize];
    if cs.selector == sel {
        return cs.base;
    }
    if m.cpu.mode() != CpuMode::Protected {
        return (sel as u32) << 4;
    }
    if let Some(s) = m.cpu.segs.iter().find(|s| s.selector == sel) {
        return s.base;
    }
    match read_descriptor(m, sel) {
        Some(d) => descriptor_base(d),
        None => 0,
    }
}

/// Read the 8-byte descriptor a selector names (GDT or LDT).
pub fn read_descriptor(m: &mut Machine, sel: u16) -> Option<u64> {
    let (base, limit) = if sel & 4 != 0 {
        (m.cpu.ldtr.base, m.cpu.ldtr.limit)
    } else {
        (m.cpu.gdtr.base, m.cpu.gdtr.limit as u32)
    };
    let off = (sel & !7) as u32;
    if off + 7 > limit {
        return None;
    }
    let mut v = 0u64;
    for i in 0..8 {
        v |= (read_linear_u8(m, base.wrapping_add(off + i))? as u64) << (8 * i);
    }
    Some(v)
}

fn descriptor_base(d: u64) -> u32 {
    (((d >> 16) & 0xFF_FFFF) | (((d >> 56) & 0xFF) << 24)) as u32
}

fn descriptor_limit(d: u64) -> u32 {
    let raw = ((d & 0xFFFF) | (((d >> 48) & 0xF) << 16)) as u32;
    if d & (1 << 55) != 0 {
        (raw << 12) | 0xFFF
    } else {
        raw
    }
}

/// Disassemble `n` instructions at `at`. Segmented and linear locations use
/// the current code size (CS.D); a segmented one prints seg:off addresses.
pub fn disassemble(m: &mut Machine, at: Location, n: usize) -> String {
    let code32 = m.cpu.code32();
    let mut out = String::new();
    let (seg, mut off, base) = match at {
        Location::Segmented(s, o) => {
            let b = segment_base(m, s);
            (Some(s), o, b)
        }
        Location::Linear(l) => (None, l, 0),
        Location::Physical(p) => {
            // Physical addresses are shown through an identity view.
            return disassemble_phys(m, p, n, code32);
        }
    };
    for _ in 0..n {
        let lin = base.wrapping_add(off);
        let Some(ins) = decode_at(m, lin, off, code32) else {
            let _ = writeln!(
                out,
                "{} ({lin:08X})  ??  (cannot decode)",
                addr_text(seg, off, code32)
            );
            break;
        };
        let _ = writeln!(
            out,
            "{} ({lin:08X}){}  {:<20} {}",
            addr_text(seg, off, code32),
            symbol_suffix(m, lin),
            bytes_hex(m, lin, ins.len()),
            format_ins(&ins)
        );
        off = off.wrapping_add(ins.len() as u32);
        if !code32 && seg.is_some() {
            off &= 0xFFFF;
        }
    }
    out
}

fn disassemble_phys(m: &mut Machine, p: u32, n: usize, code32: bool) -> String {
    let mut out = String::new();
    let mut at = p;
    for _ in 0..n {
        let mut buf = Vec::new();
        for i in 0..15 {
            match read_phys_u8(m, at + i) {
                Some(b) => buf.push(b),
                None => break,
            }
        }
        let mut d = Decoder::with_ip(
            if code32 { 32 } else { 16 },
            &buf,
            at as u64,
            DecoderOptions::NONE,
        );
        let ins = d.decode();
        if ins.is_invalid() {
            let _ = writeln!(out, "p {at:08X}  ??  (cannot decode)");
            break;
        }
        let hex: String = buf[..ins.len()]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        let sym = symbol_at_physical(m, at)
            .map(|s| format!(" <{s}>"))
            .unwrap_or_default();
        let _ = writeln!(out, "p {at:08X}{sym}  {hex:<20} {}", format_ins(&ins));
        at = at.wrapping_add(ins.len() as u32);
    }
    out
}

fn addr_text(seg: Option<u16>, off: u32, code32: bool) -> String {
    match seg {
        Some(s) if code32 => format!("{s:04X}:{off:08X}"),
        Some(s) => format!("{s:04X}:{off:04X}"),
        None => format!("{off:08X}"),
    }
}

/// Memory as `x` shows it: `count` units of `unit` bytes (1, 2, 4) in hex,
/// 16 bytes a line; `??` where nothing readable is mapped.
pub fn dump(m: &mut Machine, at: Location, count: usize, unit: u8) -> String {
    let (label_seg, start, physical) = match at {
        Location::Segmented(s, o) => {
            let b = segment_base(m, s);
            (Some((s, o)), b.wrapping_add(o), false)
        }
        Location::Linear(l) => (None, l, false),
        Location::Physical(p) => (None, p, true),
    };
    let per_line = (16 / unit as usize).max(1);
    let mut out = String::new();
    for line in 0..count.div_ceil(per_line) {
        let first = line * per_line;
        let addr = start.wrapping_add((first * unit as usize) as u32);
        let label = match label_seg {
            Some((s, o)) => format!(
                "{s:04X}:{:08X}",
                o.wrapping_add((first * unit as usize) as u32)
            ),
            None if physical => format!("p {addr:08X}"),
            None => format!("{addr:08X}"),
        };
        let _ = write!(out, "{label}:");
        for k in first..(first + per_line).min(count) {
            let a = start.wrapping_add((k * unit as usize) as u32);
            let mut v = 0u32;
            let mut ok = true;
            for i in 0..unit as u32 {
                let b = if physical {
                    read_phys_u8(m, a.wrapping_add(i))
                } else {
                    read_linear_u8(m, a.wrapping_add(i))
                };
                match b {
                    Some(b) => v |= (b as u32) << (8 * i),
                    None => ok = false,
                }
            }
            if ok {
                let _ = write!(out, " {v:0w$X}", w = unit as usize * 2);
            } else {
                let _ = write!(out, " {}", "?".repeat(unit as usize * 2));
            }
        }
        out.push('\n');
    }
    out
}

/// EFLAGS as the flags that are set, by name (`IOPL=n` always).
pub fn decode_eflags(v: u32) -> String {
    const NAMES: [(u32, &str); 15] = [
        (21, "ID"),
        (20, "VIP"),
        (19, "VIF"),
        (18, "AC"),
        (17, "VM"),
        (16, "RF"),
        (14, "NT"),
        (11, "OF"),
        (10, "DF"),
        (9, "IF"),
        (8, "TF"),
        (7, "SF"),
        (6, "ZF"),
        (4, "AF"),
        (2, "PF"),
    ];
    let mut parts: Vec<String> = NAMES
        .iter()
        .filter(|(b, _)| v & (1 << b) != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    if v & 1 != 0 {
        parts.push("CF".into());
    }
    parts.push(format!("IOPL={}", (v >> 12) & 3));
    parts.join(" ")
}

fn mode_text(m: &Machine) -> String {
    let mode = match m.cpu.mode() {
        CpuMode::Real => "real mode",
        CpuMode::Protected => "protected mode",
        CpuMode::Virtual8086 => "virtual-8086 mode",
    };
    let paging = if m.cpu.cr[0] & (1 << 31) != 0 {
        ", paging on"
    } else {
        ""
    };
    let bits = if m.cpu.code32() { 32 } else { 16 };
    let smm = if m.cpu.in_smm() {
        format!(", in SMM (SMBASE 0x{:X})", m.cpu.smm_state().smbase)
    } else {
        String::new()
    };
    format!("{mode}{paging}, {bits}-bit code, CPL {}{smm}", m.cpu.cpl())
}

/// `r`: general registers, EIP, EFLAGS decoded, mode and CPL, then the
/// segment registers with their hidden caches and the control and debug
/// registers.
pub fn registers(m: &mut Machine) -> String {
    let c = &m.cpu;
    let mut s = String::new();
    let r = |i: usize| c.regs[i];
    let _ = writeln!(
        s,
        "eax={:08X} ebx={:08X} ecx={:08X} edx={:08X}",
        r(gpr::EAX),
        r(gpr::EBX),
        r(gpr::ECX),
        r(gpr::EDX)
    );
    let _ = writeln!(
        s,
        "esi={:08X} edi={:08X} ebp={:08X} esp={:08X}",
        r(gpr::ESI),
        r(gpr::EDI),
        r(gpr::EBP),
        r(gpr::ESP)
    );
    let _ = writeln!(
        s,
        "eip={:08X} eflags={:08X} [{}]",
        c.eip,
        c.eflags(),
        decode_eflags(c.eflags())
    );
    let _ = writeln!(s, "mode: {}", mode_text(m));
    let _ = writeln!(
        s,
        "instructions: {}  cycles: {}",
        m.cpu.instructions, m.cpu.cycles
    );
    s.push_str(&segment_registers(m));
    s.push_str(&control_registers(m));
    s
}

fn segment_line(name: &str, seg: &Segment) -> String {
    format!(
        "{name:<4} {:04X}  base={:08X} limit={:08X} attrs={:04X} {}",
        seg.selector,
        seg.base,
        seg.limit,
        seg.attrs,
        describe_attrs(seg.attrs)
    )
}

/// Segment attributes (as kept in the hidden cache, descriptor bits 8–23
/// shifted down) in words.
pub fn describe_attrs(a: u16) -> String {
    let p = if a & 0x80 != 0 { "P" } else { "not present" };
    let dpl = (a >> 5) & 3;
    let kind = if a & 0x10 == 0 {
        system_type(a as u8 & 0xF).to_string()
    } else if a & 0x08 != 0 {
        format!(
            "code{}{}{}",
            if a & 2 != 0 {
                " readable"
            } else {
                " exec-only"
            },
            if a & 4 != 0 { " conforming" } else { "" },
            if a & 0x4000 != 0 {
                " 32-bit"
            } else {
                " 16-bit"
            }
        )
    } else {
        format!(
            "data{}{}{}",
            if a & 2 != 0 {
                " writable"
            } else {
                " read-only"
            },
            if a & 4 != 0 { " expand-down" } else { "" },
            if a & 0x4000 != 0 { " big" } else { "" }
        )
    };
    let g = if a & 0x8000 != 0 { " G" } else { "" };
    format!("{kind} DPL={dpl} {p}{g}")
}

fn system_type(t: u8) -> &'static str {
    match t {
        1 => "16-bit TSS (available)",
        2 => "LDT",
        3 => "16-bit TSS (busy)",
        4 => "16-bit call gate",
        5 => "task gate",
        6 => "16-bit interrupt gate",
        7 => "16-bit trap gate",
        9 => "32-bit TSS (available)",
        0xB => "32-bit TSS (busy)",
        0xC => "32-bit call gate",
        0xE => "32-bit interrupt gate",
        0xF => "32-bit trap gate",
        _ => "reserved system type",
    }
}

/// `sreg`: segment registers with their hidden descriptor caches, GDTR,
/// IDTR, LDTR and TR.
pub fn segment_registers(m: &Machine) -> String {
    let c = &m.cpu;
    let mut s = String::new();
    for r in SegReg::ALL {
        let _ = writeln!(s, "{}", segment_line(r.name(), &c.segs[r as usize]));
    }
    let _ = writeln!(s, "{}", segment_line("ldtr", &c.ldtr));
    let _ = writeln!(s, "{}", segment_line("tr", &c.tr));
    let _ = writeln!(
        s,
        "gdtr base={:08X} limit={:04X}   idtr base={:08X} limit={:04X}",
        c.gdtr.base, c.gdtr.limit, c.idtr.base, c.idtr.limit
    );
    s
}

/// `creg`: CR0–CR4 with their bits named, DR0–DR7.
pub fn control_registers(m: &Machine) -> String {
    let c = &m.cpu;
    let bits = |v: u32, names: &[(u32, &str)]| -> String {
        names
            .iter()
            .filter(|(b, _)| v & (1 << b) != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let cr4 = [
        (10, "OSXMMEXCPT"),
        (9, "OSFXSR"),
        (8, "PCE"),
        (7, "PGE"),
        (6, "MCE"),
        (5, "PAE"),
        (4, "PSE"),
        (3, "DE"),
        (2, "TSD"),
        (1, "PVI"),
        (0, "VME"),
    ];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "cr0={:08X} [{}]",
        c.cr[0],
        ringside_cpu::regs::cr0::names(c.cr[0])
    );
    let _ = writeln!(s, "cr2={:08X} cr3={:08X}", c.cr[2], c.cr[3]);
    let _ = writeln!(s, "cr4={:08X} [{}]", c.cr[4], bits(c.cr[4], &cr4));
    let _ = writeln!(
        s,
        "dr0={:08X} dr1={:08X} dr2={:08X} dr3={:08X}",
        c.dr[0], c.dr[1], c.dr[2], c.dr[3]
    );
    let _ = writeln!(s, "dr6={:08X} dr7={:08X}", c.dr[6], c.dr[7]);
    s
}

/// `fpu`: the x87 registers in ST order, control/status/tag words.
pub fn fpu(m: &Machine) -> String {
    format!("{}", m.cpu.fpu.view())
}

/// `info gdt` / `info ldt`: every descriptor of the table.
pub fn descriptor_table(m: &mut Machine, ldt: bool) -> String {
    let (base, limit, name) = if ldt {
        if m.cpu.ldtr.selector & !3 == 0 {
            return "LDTR is null: no LDT\n".into();
        }
        (m.cpu.ldtr.base, m.cpu.ldtr.limit, "LDT")
    } else {
        (m.cpu.gdtr.base, m.cpu.gdtr.limit as u32, "GDT")
    };
    let mut s = format!("{name} at {base:08X}, limit {limit:X}\n");
    let entries = ((limit as u64 + 1) / 8).min(8192) as u32;
    for i in 0..entries {
        let mut d = 0u64;
        let mut ok = true;
        for b in 0..8 {
            match read_linear_u8(m, base.wrapping_add(i * 8 + b)) {
                Some(x) => d |= (x as u64) << (8 * b),
                None => ok = false,
            }
        }
        let sel = (i * 8) as u16 | if ldt { 4 } else { 0 };
        if !ok {
            let _ = writeln!(s, "{sel:04X}  (not mapped)");
            continue;
        }
        if d == 0 {
            if i == 0 && !ldt {
                let _ = writeln!(s, "{sel:04X}  null descriptor");
            }
            continue;
        }
        let _ = writeln!(s, "{sel:04X}  {}", describe_descriptor(d));
    }
    s
}

/// One descriptor in words: segment (base, limit, attributes) or gate
/// (selector:offset).
pub fn describe_descriptor(d: u64) -> String {
    let attrs = (((d >> 40) & 0xFF) | (((d >> 52) & 0xF) << 12)) as u16;
    let s_bit = attrs & 0x10 != 0;
    let ty = attrs as u8 & 0xF;
    if !s_bit && matches!(ty, 4 | 5 | 6 | 7 | 0xC | 0xE | 0xF) {
        let sel = ((d >> 16) & 0xFFFF) as u16;
        let off = ((d & 0xFFFF) | ((d >> 32) & 0xFFFF_0000)) as u32;
        let dpl = (attrs >> 5) & 3;
        let p = if attrs & 0x80 != 0 {
            "P"
        } else {
            "not present"
        };
        return if ty == 5 {
            format!("{} TSS selector={sel:04X} DPL={dpl} {p}", system_type(ty))
        } else if ty == 4 || ty == 0xC {
            format!(
                "{} -> {sel:04X}:{off:08X} params={} DPL={dpl} {p}",
                system_type(ty),
                (d >> 32) & 0x1F
            )
        } else {
            format!("{} -> {sel:04X}:{off:08X} DPL={dpl} {p}", system_type(ty))
        };
    }
    format!(
        "base={:08X} limit={:08X} {}",
        descriptor_base(d),
        descriptor_limit(d),
        describe_attrs(attrs)
    )
}

/// `info idt`: every present gate (or the IVT's vectors in real mode).
pub fn idt(m: &mut Machine) -> String {
    if m.cpu.mode() == CpuMode::Real {
        return ivt(m);
    }
    let (base, limit) = (m.cpu.idtr.base, m.cpu.idtr.limit as u32);
    let mut s = format!("IDT at {base:08X}, limit {limit:X}\n");
    for v in 0..((limit + 1) / 8).min(256) {
        let mut d = 0u64;
        let mut ok = true;
        for b in 0..8 {
            match read_linear_u8(m, base.wrapping_add(v * 8 + b)) {
                Some(x) => d |= (x as u64) << (8 * b),
                None => ok = false,
            }
        }
        if !ok {
            let _ = writeln!(s, "{v:02X}  (not mapped)");
        } else if d & (1 << 47) != 0 {
            let _ = writeln!(s, "{v:02X}  {}", describe_descriptor(d));
        }
    }
    s
}

/// `info ivt`: the real-mode interrupt vector table at IDTR.base.
pub fn ivt(m: &mut Machine) -> String {
    let base = m.cpu.idtr.base;
    let count = ((m.cpu.idtr.limit as u32 + 1) / 4).min(256);
    let mut s = format!("IVT at {base:08X} ({count} vectors)\n");
    for v in 0..count {
        let mut w = 0u32;
        for b in 0..4 {
            w |= (read_linear_u8(m, base.wrapping_add(v * 4 + b)).unwrap_or(0) as u32) << (8 * b);
        }
        let _ = write!(s, "{v:02X}={:04X}:{:04X}", w >> 16, w & 0xFFFF);
        s.push(if v % 4 == 3 { '\n' } else { ' ' });
    }
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// `info tss`: the current task's TSS fields.
pub fn tss(m: &mut Machine) -> String {
    let tr = m.cpu.tr;
    if tr.selector & !3 == 0 {
        return "TR is null: no task state segment loaded\n".into();
    }
    let is32 = tr.attrs & 0x8 != 0;
    let mut rd = |off: u32, size: u32| -> String {
        let mut v = 0u32;
        for i in 0..size {
            match read_linear_u8(m, tr.base.wrapping_add(off + i)) {
                Some(b) => v |= (b as u32) << (8 * i),
                None => return "?".into(),
            }
        }
        format!("{v:0w$X}", w = size as usize * 2)
    };
    let mut s = format!(
        "TR={:04X} base={:08X} limit={:08X} ({})\n",
        tr.selector,
        tr.base,
        tr.limit,
        describe_attrs(tr.attrs)
    );
    if is32 {
        let _ = writeln!(s, "link={}", rd(0, 2));
        for ring in 0..3 {
            let _ = writeln!(
                s,
                "ss{ring}:esp{ring}={}:{}",
                rd(8 + ring * 8, 2),
                rd(4 + ring * 8, 4)
            );
        }
        let _ = writeln!(
            s,
            "cr3={} eip={} eflags={}",
            rd(0x1C, 4),
            rd(0x20, 4),
            rd(0x24, 4)
        );
        let _ = writeln!(
            s,
            "eax={} ecx={} edx={} ebx={}",
            rd(0x28, 4),
            rd(0x2C, 4),
            rd(0x30, 4),
            rd(0x34, 4)
        );
        let _ = writeln!(
            s,
            "esp={} ebp={} esi={} edi={}",
            rd(0x38, 4),
            rd(0x3C, 4),
            rd(0x40, 4),
            rd(0x44, 4)
        );
        let _ = writeln!(
            s,
            "es={} cs={} ss={} ds={} fs={} gs={} ldt={}",
            rd(0x48, 2),
            rd(0x4C, 2),
            rd(0x50, 2),
            rd(0x54, 2),
            rd(0x58, 2),
            rd(0x5C, 2),
            rd(0x60, 2)
        );
        let _ = writeln!(s, "T={} iomap base={}", rd(0x64, 1), rd(0x66, 2));
    } else {
        let _ = writeln!(
            s,
            "link={} sp0={} ss0={} ip={} flags={}",
            rd(0, 2),
            rd(2, 2),
            rd(4, 2),
            rd(0xE, 2),
            rd(0x10, 2)
        );
    }
    s
}

/// `info pic`: masks and in-service registers of the 8259 pair.
pub fn pic(m: &Machine) -> String {
    let (mm, sm) = m.pc.pic.masks();
    let (mi, si) = m.pc.pic.in_service();
    format!(
        "master: IMR={mm:02X} ISR={mi:02X}\nslave:  IMR={sm:02X} ISR={si:02X}\nINTR={}\n",
        m.pc.pic.intr()
    )
}

/// `info pit`: the 8254's state (its own debug view).
pub fn pit(m: &Machine) -> String {
    format!("{:#?}\n", m.pc.pit)
}

/// `info mode`: mode, paging, code size, CPL, A20.
pub fn mode(m: &Machine) -> String {
    format!(
        "{}\nA20 {}\n",
        mode_text(m),
        if m.cpu.mem.a20_enabled() {
            "enabled"
        } else {
            "masked (addresses wrap at 1 MiB)"
        }
    )
}

/// `tlb` / `info tlb`: statistics and the valid entries.
pub fn tlb(m: &Machine) -> String {
    let st = m.cpu.tlb.stats;
    let mut s = format!(
        "lookups: {} hits, {} misses; {} fills\nflushes: {} by MOV CR3, {} by CR0/CR4 bits, {} by INVLPG, {} by task switches\n",
        st.hits,
        st.misses,
        st.fills,
        st.flush_cr3,
        st.flush_control,
        st.flush_invlpg,
        st.flush_task
    );
    if m.cpu.cr[0] & (1 << 31) == 0 {
        s.push_str("paging is off: the TLB is not used\n");
    }
    for (lin, e) in m.cpu.tlb.dump() {
        let _ = writeln!(
            s,
            "{lin:08X} -> {:08X} perms={:04b}{}",
            e.phys,
            e.perms,
            if e.global { " G" } else { "" }
        );
    }
    s
}

/// `page LINEAR`: the page walk, each level with its flags.
pub fn page(m: &mut Machine, lin: u32) -> String {
    use ringside_mmu::paging::pte;
    if m.cpu.cr[0] & (1 << 31) == 0 {
        return format!(
            "paging is off: linear {lin:08X} is physical {:08X}{}\n",
            lin & m.cpu.mem.a20_mask(),
            if m.cpu.mem.a20_enabled() {
                ""
            } else {
                " (A20 masked)"
            }
        );
    }
    let mode = m.cpu.paging_mode();
    let flags = |v: u64| -> String {
        let names = [
            (pte::P, "P"),
            (pte::RW, "RW"),
            (pte::US, "US"),
            (pte::PWT, "PWT"),
            (pte::PCD, "PCD"),
            (pte::A, "A"),
            (pte::D, "D"),
            (pte::PS, "PS"),
            (pte::G, "G"),
        ];
        names
            .iter()
            .filter(|(b, _)| v & b != 0)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
            .join(" ")
    };
    // CR4.PSE as the guest set it (the walk's `pse` is also on with PAE).
    let mut s = format!(
        "linear {lin:08X}, CR3={:08X}{}{}\n",
        mode.cr3,
        if mode.pae { " PAE" } else { "" },
        if m.cpu.cr[4] & (1 << 4) != 0 {
            " PSE"
        } else {
            ""
        }
    );
    let result = ringside_mmu::peek(&m.cpu.mem, mode, lin);
    let levels = match &result {
        Ok(t) => t.levels,
        Err(f) => f.levels,
    };
    for l in levels.iter().flatten() {
        let _ = writeln!(
            s,
            "  {:<5} at {:08X} = {:016X} [{}]",
            l.name,
            l.addr,
            l.value,
            flags(l.value)
        );
    }
    match result {
        Ok(t) => {
            let _ = writeln!(
                s,
                "  -> physical {:08X} ({} KiB page{}{})",
                t.phys,
                t.page_size / 1024,
                if t.user { ", user" } else { ", supervisor" },
                if t.user_writable || t.supervisor_writable {
                    ", writable"
                } else {
                    ", read-only"
                }
            );
        }
        Err(f) => {
            let _ = writeln!(s, "  -> not mapped: a read would raise #PF({:#x})", f.error);
        }
    }
    s
}

/// A point in one line, as `bl` lists it.
pub fn describe_point(p: &Point) -> String {
    let what = match &p.kind {
        PointKind::Break {
            at,
            condition,
            temporary,
        } => {
            let mut s = format!(
                "{} {}",
                if *temporary { "tbreak" } else { "break " },
                exec_text(*at)
            );
            if let Some((src, _)) = condition {
                let _ = write!(s, " if {src}");
            }
            s
        }
        PointKind::Watch(w) => format!(
            "watch  {} {}{:08X} len {:X}",
            match (w.read, w.write) {
                (true, true) => "access",
                (true, false) => "read",
                _ => "write",
            },
            if w.physical { "p " } else { "" },
            w.start,
            w.len
        ),
        PointKind::Catch(c) => format!("catch  {}", catch_text(*c)),
    };
    format!(
        "{:>3} {} {what}  (hits {})",
        p.id,
        if p.enabled { "on " } else { "off" },
        p.hits
    )
}

/// A breakpoint location in the debugger's syntax.
pub fn exec_text(at: HostExec) -> String {
    match at {
        HostExec::Segmented(s, o) => format!("{s:04X}:{o:04X}"),
        HostExec::Linear(l) => format!("{l:08X}"),
        HostExec::Physical(p) => format!("p {p:08X}"),
    }
}

fn catch_text(c: Catch) -> String {
    match c {
        Catch::Vector(v) => format!("vector {v:02X}"),
        Catch::AnyRing => "ring (any change)".into(),
        Catch::Cpl(n) => format!("ring {n}"),
        Catch::Mode => "mode".into(),
        Catch::Task => "task".into(),
        Catch::Port(lo, hi) if lo == hi => format!("port {lo:04X}"),
        Catch::Port(lo, hi) => format!("port {lo:04X}-{hi:04X}"),
    }
}

/// An exception vector's mnemonic (#GP …), or `INT nn`.
pub fn vector_name(v: u8) -> String {
    const NAMES: [&str; 20] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM",
    ];
    match NAMES.get(v as usize) {
        Some(n) => format!("{n} (vector {v:02X})"),
        None => format!("vector {v:02X}"),
    }
}

/// A CPU event in one line: the trap log's own words
/// ([`crate::traplog::summary`]), so the debugger's `log`, its catchpoint
/// stops and the trap log say the same thing the same way.
pub fn describe_event(e: &ringside_cpu::Event) -> String {
    crate::traplog::summary(e)
}

/// Why the machine stopped, in one line.
pub fn describe_stop(m: &mut Machine, c: &StopCause) -> String {
    let cs = m.cpu.segs[SegReg::Cs as usize].selector;
    let lin = current_linear(m);
    let sym = symbol_suffix(m, lin);
    let here = format!("{cs:04X}:{:08X}{sym}", m.cpu.eip);
    match c {
        StopCause::Breakpoint { id } => format!("breakpoint {id} at {here}"),
        StopCause::Watchpoint {
            id,
            linear,
            physical,
            size,
            write,
        } => format!(
            "watchpoint {id}: {} of {size} byte(s) at linear {linear:08X} (physical {physical:08X}); now at {here}",
            if *write { "write" } else { "read" }
        ),
        StopCause::Event { id, event } => {
            format!("catchpoint {id}: {}; now at {here}", describe_event(event))
        }
        StopCause::Port {
            id,
            port,
            size,
            write,
            value,
        } => format!(
            "catchpoint {id}: {} port {port:04X} ({size} byte(s)) value {value:X}; now at {here}",
            if *write { "OUT to" } else { "IN from" }
        ),
        StopCause::ConditionError { id, error } => {
            format!("breakpoint {id} at {here}: its condition failed: {error}")
        }
        StopCause::Stepped => format!("stepped to {here}"),
        StopCause::Returned => format!("returned to {here}"),
        StopCause::Reached => format!("reached {here}"),
        StopCause::Guest(o) => format!("the guest's run ended: {}", o.describe()),
        StopCause::Limit => format!("instruction limit reached at {here}"),
        StopCause::Interrupted => format!("interrupted at {here}"),
        StopCause::HistoryStart => format!("at the start of the recording: {here}"),
    }
}

/// The instruction about to run, as `u` shows it (one line).
pub fn next_instruction(m: &mut Machine) -> String {
    let cs = m.cpu.segs[SegReg::Cs as usize].selector;
    disassemble(m, Location::Segmented(cs, m.cpu.eip), 1)
}
