//! The protected-mode test harness shared by the protected-mode and paging
//! tests: GDT/IDT/TSS in memory, a CPU put in protected mode at a chosen
//! CPL, snippets run until they reach their end or fault.
#![allow(dead_code)]

use iced_x86::code_asm::*;
use ringside_cpu::segment::Descriptor;
use ringside_cpu::{gpr, Bus, Cpu, PhysMem, SegReg, StopReason};

pub const GDT: u32 = 0x1000;
pub const IDT: u32 = 0x2000;
pub const TSS: u32 = 0x3000;
pub const LDT: u32 = 0x4000;
pub const CODE: u32 = 0x10000;
pub const HANDLERS: u32 = 0x20000;
pub const STACK0: u32 = 0x9000;
pub const STACK3: u32 = 0x8000;
pub const DONE: u8 = 0x80;

pub const CODE0: u16 = 0x08;
pub const DATA0: u16 = 0x10;
pub const CODE3: u16 = 0x1B;
pub const DATA3: u16 = 0x23;
pub const TSS_SEL: u16 = 0x28;
pub const EXPAND_DOWN: u16 = 0x30;
pub const CONFORMING: u16 = 0x38;
pub const READ_ONLY: u16 = 0x40;
pub const EXEC_ONLY: u16 = 0x48;
pub const GATE32: u16 = 0x50;
pub const CODE1: u16 = 0x89;
pub const CODE16: u16 = 0x58;
pub const NOT_PRESENT3: u16 = 0x63;
pub const LDT_SEL: u16 = 0x68;
pub const TSS2_SEL: u16 = 0x70;
pub const TASK_GATE3: u16 = 0x7B;
pub const DATA0_16BIT_STACK: u16 = 0x80;

pub fn seg(base: u32, limit: u32, access: u8, flags: u8) -> u64 {
    (limit as u64 & 0xFFFF)
        | ((base as u64 & 0xFF_FFFF) << 16)
        | ((access as u64) << 40)
        | (((limit as u64 >> 16) & 0xF) << 48)
        | (((flags as u64) & 0xF) << 52)
        | (((base as u64) >> 24) << 56)
}

pub fn gate(selector: u16, offset: u32, typ: u8, dpl: u8, params: u8) -> u64 {
    (offset as u64 & 0xFFFF)
        | ((selector as u64) << 16)
        | ((params as u64 & 0x1F) << 32)
        | (((0x80 | (dpl << 5) | typ) as u64) << 40)
        | (((offset >> 16) as u64) << 48)
}

#[derive(Default)]
pub struct TestBus {
    pub irq: Option<u8>,
    pub ports: Vec<(u16, u32)>,
}

impl Bus for TestBus {
    fn io_read(&mut self, _port: u16, _size: u8) -> u32 {
        0x1234_5678
    }
    fn io_write(&mut self, port: u16, _size: u8, value: u32) {
        self.ports.push((port, value));
    }
    fn interrupt_pending(&mut self) -> bool {
        self.irq.is_some()
    }
    fn acknowledge_interrupt(&mut self) -> u8 {
        self.irq.take().unwrap_or(0xFF)
    }
}

/// How a snippet ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// It reached its end.
    Done,
    /// An exception: vector, error code (if any), saved CS, saved EIP.
    Fault(u8, Option<u32>, u16, u32),
    /// The processor shut down (triple fault).
    Shutdown,
}

pub fn write(cpu: &mut Cpu, at: u32, b: &[u8]) {
    cpu.mem.poke(at, b);
}

pub fn set_gdt(cpu: &mut Cpu, sel: u16, d: u64) {
    write(cpu, GDT + (sel as u32 & !7), &d.to_le_bytes());
}

pub fn set_idt(cpu: &mut Cpu, v: u8, d: u64) {
    write(cpu, IDT + v as u32 * 8, &d.to_le_bytes());
}

pub fn machine() -> Cpu {
    let mut cpu = Cpu::new(PhysMem::new(4 << 20));
    setup_machine(&mut cpu);
    cpu
}

/// Build the harness's tables in `cpu.mem` (zeroed RAM below 0x30000) and
/// put a just-reset `cpu` in protected mode on them.
pub fn setup_machine(cpu: &mut Cpu) {
    for (sel, d) in [
        (CODE0, seg(0, 0xFFFFF, 0x9A, 0xC)),
        (DATA0, seg(0, 0xFFFFF, 0x92, 0xC)),
        (CODE3, seg(0, 0xFFFFF, 0xFA, 0xC)),
        (DATA3, seg(0, 0xFFFFF, 0xF2, 0xC)),
        (TSS_SEL, seg(TSS, 0x68 + 0x2000, 0x89, 0)),
        (EXPAND_DOWN, seg(0x10_0000, 0x0FFF, 0x96, 0x4)),
        (CONFORMING, seg(0, 0xFFFFF, 0x9E, 0xC)),
        (READ_ONLY, seg(0, 0xFFFFF, 0x90, 0xC)),
        (EXEC_ONLY, seg(0, 0xFFFFF, 0x98, 0xC)),
        (GATE32, gate(CODE0, HANDLERS + 0x1300, 0xC, 3, 2)),
        (CODE16, seg(0x20000, 0xFFFF, 0x9A, 0x0)),
        (NOT_PRESENT3, seg(0, 0xFFFFF, 0x72, 0xC)),
        (LDT_SEL, seg(LDT, 0x0F, 0x82, 0)),
        (TSS2_SEL, seg(0x5000, 0x67, 0x89, 0)),
        (TASK_GATE3, gate(TSS2_SEL, 0, 0x5, 3, 0)),
        (DATA0_16BIT_STACK, seg(0, 0xFFFF, 0x92, 0x0)),
        (CODE1, seg(0, 0xFFFFF, 0xBA, 0xC)),
    ] {
        set_gdt(cpu, sel, d);
    }
    // LDT entry 0 (selector 0x04): ring-0 data.
    write(cpu, LDT, &seg(0x4_0000, 0xFFF, 0x92, 0x4).to_le_bytes());
    // Every exception vector halts at its own address, ring 0.
    for v in 0..=255u8 {
        let at = HANDLERS + v as u32 * 16;
        write(cpu, at, &[0xF4]);
        let dpl = if matches!(v, 3 | 4 | DONE) { 3 } else { 0 };
        let typ = if v == DONE { 0xF } else { 0xE };
        set_idt(cpu, v, gate(CODE0, at, typ, dpl, 0));
    }
    // TSS: ring-0 stack, I/O bitmap with ports 0x60-0x6F closed, rest open.
    write(cpu, TSS + 4, &STACK0.to_le_bytes());
    write(cpu, TSS + 8, &(DATA0 as u32).to_le_bytes());
    write(cpu, TSS + 0x66, &0x68u16.to_le_bytes());
    write(cpu, TSS + 0x68 + 0x60 / 8, &[0xFF, 0xFF]);
    write(cpu, TSS + 0x68 + 0x2000, &[0xFF]);
    cpu.gdtr.base = GDT;
    cpu.gdtr.limit = 0xFF;
    cpu.idtr.base = IDT;
    cpu.idtr.limit = 0x7FF;
    cpu.cr[0] |= 1;
    cpu.tr = Descriptor(seg(TSS, 0x68 + 0x2000, 0x8B, 0)).to_segment(TSS_SEL);
}

pub fn load(cpu: &mut Cpu, s: SegReg, sel: u16) {
    let raw = u64::from_le_bytes(std::array::from_fn(|i| {
        cpu.mem.peek(GDT + (sel as u32 & !7) + i as u32)
    }));
    cpu.segs[s as usize] = Descriptor(raw).to_segment(sel);
}

/// Put the CPU in flat protected mode at `cpl` with `bytes` at CODE.
pub fn enter(cpu: &mut Cpu, cpl: u8, bytes: &[u8]) {
    write(cpu, CODE, bytes);
    let (code_sel, data_sel) = if cpl == 3 {
        (CODE3, DATA3)
    } else {
        (CODE0, DATA0)
    };
    load(cpu, SegReg::Cs, code_sel);
    for s in [SegReg::Ss, SegReg::Ds, SegReg::Es, SegReg::Fs, SegReg::Gs] {
        load(cpu, s, data_sel);
    }
    cpu.set_cpl(cpl);
    cpu.wake();
    cpu.eip = CODE;
    cpu.regs[gpr::ESP] = if cpl == 3 { STACK3 } else { STACK0 };
}

/// Assemble `body` (32-bit) and run it at `cpl` until it ends.
pub fn run(
    cpu: &mut Cpu,
    cpl: u8,
    bus: &mut TestBus,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> End {
    let mut a = CodeAssembler::new(32).unwrap();
    body(&mut a).unwrap();
    a.int(DONE as u32).unwrap();
    let bytes = a.assemble(CODE as u64).unwrap();
    enter(cpu, cpl, &bytes);
    let r = cpu.run(bus, u64::MAX, 10_000);
    let r = if r == StopReason::Yield {
        cpu.run(bus, u64::MAX, 10_000)
    } else {
        r
    };
    if r == StopReason::Shutdown || cpu.is_shutdown() {
        return End::Shutdown;
    }
    assert!(cpu.is_halted(), "snippet did not end: {r:?} {cpu:?}");
    let v = ((cpu.eip - 1 - HANDLERS) / 16) as u8;
    if v == DONE {
        return End::Done;
    }
    let top = cpu.regs[gpr::ESP];
    let rd =
        |cpu: &Cpu, a: u32| u32::from_le_bytes(std::array::from_fn(|i| cpu.mem.peek(a + i as u32)));
    let has_err = matches!(v, 8 | 10..=14 | 17);
    let (err, frame) = if has_err {
        (Some(rd(cpu, top)), top + 4)
    } else {
        (None, top)
    };
    End::Fault(v, err, rd(cpu, frame + 4) as u16, rd(cpu, frame))
}

pub fn gp(e: u32) -> End {
    End::Fault(13, Some(e), 0, 0)
}

/// Compare vector and error code only (saved CS:EIP checked where it matters).
pub fn same_fault(a: &End, b: &End) -> bool {
    match (a, b) {
        (End::Fault(v1, e1, ..), End::Fault(v2, e2, ..)) => v1 == v2 && e1 == e2,
        _ => a == b,
    }
}

#[macro_export]
macro_rules! assert_end {
    ($got:expr, $want:expr) => {{
        let (g, w) = ($got, $want);
        assert!(same_fault(&g, &w), "got {g:?}, want {w:?}");
    }};
}
