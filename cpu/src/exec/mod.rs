//! Instruction execution, one file per instruction group.
//!
//! A handler is chosen once per decoded instruction ([`make_entry`]) and
//! stored in the decode cache, so the hot loop is a cache lookup and an
//! indirect call.

mod alu;
mod bcd;
mod bit;
mod control;
mod data;
mod io;
mod muldiv;
pub(crate) mod operand;
mod prot;
mod shift;
mod stack;
mod string;
pub(crate) mod system;

use iced_x86::{Instruction, Mnemonic, OpKind, Register};

use crate::decode::{Entry, EA_NONE, EA_SLOW};
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::SegReg;
use crate::Bus;

/// An instruction handler: executes the decoded instruction.
pub(crate) type Handler = fn(&mut Cpu, &mut dyn Bus, &Entry) -> Result<(), Fault>;

/// Instructions this CPU does not implement (MMX, SSE, …) are #UD, as on a
/// part without the feature.
pub(crate) fn undefined(_: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    Err(Fault::UD)
}

fn is32(r: Register) -> bool {
    (Register::EAX as u32..=Register::R15D as u32).contains(&(r as u32))
}

/// Whether the instruction addresses memory with 32-bit addresses.
fn address_size_32(ins: &Instruction, code32: bool) -> bool {
    for n in 0..ins.op_count() {
        match ins.op_kind(n) {
            OpKind::Memory => {
                let b = ins.memory_base();
                let i = ins.memory_index();
                if b != Register::None {
                    return is32(b);
                }
                if i != Register::None {
                    return is32(i);
                }
                return ins.memory_displ_size() == 4;
            }
            OpKind::MemorySegSI | OpKind::MemorySegDI | OpKind::MemoryESDI => return false,
            OpKind::MemorySegESI | OpKind::MemorySegEDI | OpKind::MemoryESEDI => return true,
            _ => {}
        }
    }
    code32
}

/// Base cycle cost by instruction class: roughly a P6's latencies, so the
/// virtual clock moves at a plausible rate. Memory operands add one.
fn cycle_cost(ins: &Instruction) -> u8 {
    use Mnemonic::*;
    let base: u8 = match ins.mnemonic() {
        Mul | Imul => 4,
        Div | Idiv => 20,
        Call | Ret | Retf | Jmp
            if ins.op0_kind() != OpKind::NearBranch16 && ins.op0_kind() != OpKind::NearBranch32 =>
        {
            8
        }
        Int | Int3 | Into | Int1 | Iret | Iretd => 20,
        In | Out | Insb | Insw | Insd | Outsb | Outsw | Outsd => 30,
        Cpuid => 40,
        Lgdt | Lidt | Lmsw | Mov
            if ins.op0_kind() == OpKind::Register && ins.op0_register() == Register::CR0 =>
        {
            10
        }
        Enter | Pusha | Pushad | Popa | Popad => 8,
        Aam | Aad => 10,
        _ => 1,
    };
    let mem = (0..ins.op_count()).any(|n| ins.op_kind(n) == OpKind::Memory);
    base + mem as u8
}

fn reg_slot(ins: &Instruction, n: u32) -> u8 {
    if n < ins.op_count() && ins.op_kind(n) == OpKind::Register {
        operand::gpr_slot(ins.op_register(n)).unwrap_or(0xFF)
    } else {
        0xFF
    }
}

/// The effective-address form of the memory operand as (base, index, log2
/// scale) register numbers for [`Cpu::ea`]: 16- and 32-bit general registers
/// only (16-bit addressing masks the sum to 16 bits, so a 16-bit register
/// reads as its full 32-bit register). Anything else is [`EA_SLOW`].
fn ea_form(ins: &Instruction) -> (u8, u8, u8) {
    let reg = |r: Register| -> Option<u8> {
        if r == Register::None {
            return Some(EA_NONE);
        }
        let n = r as u32;
        for base in [Register::EAX, Register::AX] {
            let rel = n.wrapping_sub(base as u32);
            if rel < 8 {
                return Some(rel as u8);
            }
        }
        None
    };
    let scale = match ins.memory_index_scale() {
        1 => 0,
        2 => 1,
        4 => 2,
        8 => 3,
        _ => return (EA_SLOW, EA_NONE, 0),
    };
    match (reg(ins.memory_base()), reg(ins.memory_index())) {
        (Some(b), Some(i)) => (b, i, scale),
        _ => (EA_SLOW, EA_NONE, 0),
    }
}

/// Build the cache entry for a freshly decoded instruction.
pub(crate) fn make_entry(ins: Instruction, code32: bool) -> Entry {
    let mut size = operand::op_size(&ins, 0).unwrap_or(if code32 { 4 } else { 2 });
    if matches!(
        ins.mnemonic(),
        Mnemonic::Outsb | Mnemonic::Outsw | Mnemonic::Outsd
    ) {
        size = operand::op_size(&ins, 1).unwrap_or(1);
    }
    let mut e = Entry {
        ins,
        handler: undefined,
        size,
        addr32: address_size_32(&ins, code32),
        code32,
        len: ins.len() as u8,
        cycles: cycle_cost(&ins),
        cacheable: false,
        r0: reg_slot(&ins, 0),
        r1: reg_slot(&ins, 1),
        imm: 0,
        mbase: EA_NONE,
        mindex: EA_NONE,
        mscale: 0,
        mseg: SegReg::from_iced(ins.memory_segment()),
    };
    (e.mbase, e.mindex, e.mscale) = ea_form(&ins);
    if ins.op_count() > 1 {
        let mask = match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => u32::MAX,
        };
        e.imm = match ins.op1_kind() {
            OpKind::Immediate8 => ins.immediate8() as u32,
            OpKind::Immediate16 => ins.immediate16() as u32,
            OpKind::Immediate32 => ins.immediate32(),
            OpKind::Immediate8to16 => ins.immediate8to16() as u16 as u32,
            OpKind::Immediate8to32 => ins.immediate8to32() as u32,
            _ => 0,
        } & mask;
    }
    if matches!(ins.op0_kind(), OpKind::NearBranch16 | OpKind::NearBranch32) {
        // Relative branches keep their displacement, not iced's absolute
        // target: see `control::target_of`.
        e.imm = (ins.near_branch_target() as u32).wrapping_sub(ins.next_ip() as u32);
    }
    e.handler = select(&e);
    e
}

/// The decode cache's sentinel entry (arena index 0): never executed.
pub(crate) fn sentinel_entry() -> Entry {
    Entry {
        ins: Instruction::default(),
        handler: undefined,
        size: 0,
        addr32: false,
        code32: false,
        len: 1,
        cycles: 0,
        cacheable: false,
        r0: 0xFF,
        r1: 0xFF,
        imm: 0,
        mbase: EA_NONE,
        mindex: EA_NONE,
        mscale: 0,
        mseg: SegReg::Ds,
    }
}

fn select(e: &Entry) -> Handler {
    if e.ins.is_invalid() {
        return undefined;
    }
    data::select(e)
        .or_else(|| alu::select(e))
        .or_else(|| control::select(e))
        .or_else(|| stack::select(e))
        .or_else(|| string::select(e))
        .or_else(|| shift::select(e))
        .or_else(|| muldiv::select(e))
        .or_else(|| bit::select(e))
        .or_else(|| bcd::select(e))
        .or_else(|| io::select(e))
        .or_else(|| prot::select(e))
        .or_else(|| crate::fpu::select(e))
        .or_else(|| system::select(e))
        .unwrap_or(undefined)
}

/// What caused a privilege change made by an instruction, for events.
pub(crate) fn transfer_cause(m: Mnemonic) -> &'static str {
    use Mnemonic::*;
    match m {
        Iret | Iretd => "IRET",
        Call => "CALL through a gate",
        Jmp => "JMP",
        Retf => "RET to an outer ring",
        Int | Int3 | Into | Int1 => "INT through a gate",
        Sysenter => "SYSENTER",
        Sysexit => "SYSEXIT",
        _ => "instruction",
    }
}
