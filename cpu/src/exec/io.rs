//! Port I/O: IN OUT (INS/OUTS are in string.rs).

use iced_x86::{Mnemonic, OpKind, Register};

use super::Handler;
use crate::decode::Entry;
use crate::interrupt::Fault;
use crate::processor::Cpu;
use crate::regs::gpr;
use crate::Bus;

impl Cpu {
    /// I/O permission check (SDM Vol. 1 §19.5): see [`Cpu::io_allowed`].
    #[inline]
    pub(crate) fn check_io(&mut self, bus: &mut dyn Bus, port: u16, size: u8) -> Result<(), Fault> {
        if self.cr[0] & crate::regs::cr0::PE == 0 {
            return Ok(());
        }
        self.io_allowed(bus, port, size)
    }
}

fn port_of(cpu: &Cpu, e: &Entry, n: u32) -> u16 {
    if e.ins.op_kind(n) == OpKind::Immediate8 {
        e.ins.immediate8() as u16
    } else {
        cpu.regs[gpr::EDX] as u16
    }
}

fn acc_size(r: Register) -> u8 {
    match r {
        Register::AL => 1,
        Register::AX => 2,
        _ => 4,
    }
}

fn in_(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let r = e.ins.op0_register();
    let size = acc_size(r);
    let port = port_of(cpu, e, 1);
    cpu.check_io(bus, port, size)?;
    bus.sync_time(cpu.cycles);
    let v = bus.io_read(port, size);
    cpu.set_reg(r, v);
    cpu.io_breakpoints(port, size);
    cpu.request_yield();
    Ok(())
}

fn out(cpu: &mut Cpu, bus: &mut dyn Bus, e: &Entry) -> Result<(), Fault> {
    let r = e.ins.op1_register();
    let size = acc_size(r);
    let port = port_of(cpu, e, 0);
    cpu.check_io(bus, port, size)?;
    let v = cpu.get_reg(r);
    bus.sync_time(cpu.cycles);
    bus.io_write(port, size, v);
    cpu.io_breakpoints(port, size);
    cpu.request_yield();
    Ok(())
}

pub(crate) fn select(e: &Entry) -> Option<Handler> {
    Some(match e.ins.mnemonic() {
        Mnemonic::In => in_,
        Mnemonic::Out => out,
        _ => return None,
    })
}
