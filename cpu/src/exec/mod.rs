//! Instruction execution, one file per instruction group.

mod operand;

use iced_x86::Instruction;

use crate::decode::Entry;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::Bus;

/// An instruction handler: executes the decoded instruction.
pub(crate) type Handler = fn(&mut Cpu, &mut dyn Bus, &Entry) -> Result<(), Fault>;

fn undefined(_: &mut Cpu, _: &mut dyn Bus, _: &Entry) -> Result<(), Fault> {
    Err(Fault::UD)
}

/// Build the cache entry for a freshly decoded instruction.
pub(crate) fn make_entry(ins: Instruction, code32: bool) -> Entry {
    let size = operand::op_size(&ins, 0).unwrap_or(if code32 { 4 } else { 2 });
    Entry { ins, handler: undefined, size, addr32: code32, code32, len: ins.len() as u8, cycles: 1 }
}
