//! Ringside's x86 processor core.
//!
//! The CPU owns guest physical memory ([`ringside_mmu::PhysMem`]) and talks to
//! the rest of the machine through one trait, [`Bus`]: port I/O, MMIO and
//! interrupt acknowledge. It knows nothing about devices.
//!
//! Instructions are decoded once with iced-x86 and kept in a
//! decoded-instruction cache keyed by physical address and code size
//! ([`decode`]); status flags are evaluated lazily ([`flags`]); every
//! instruction charges a cycle cost to the virtual clock ([`Cpu::cycles`]).

pub mod classify;
mod debug;
pub mod decode;
pub mod events;
mod exec;
pub mod flags;
pub mod fpu;
pub mod interrupt;
mod memory;
mod processor;
mod protect;
pub mod regs;
pub mod segment;
pub mod smm;
pub mod snapshot;
pub mod task;

pub use debug::{HostExec, HostHit, HostWatch};
pub use events::{Event, Observer, Recorder};
pub use interrupt::{Fault, Vector};
pub use processor::{Cpu, CpuMode, StopReason};
pub use regs::{gpr, SegReg, Segment, TableReg};
pub use ringside_mmu::PhysMem;

/// The world as the CPU sees it: everything that is not the CPU itself nor
/// plain RAM/ROM. The board (`devices::Pc`) implements it; tests implement
/// small versions of it.
pub trait Bus {
    /// Read `size` (1, 2 or 4) bytes from I/O port `port`. Unclaimed ports
    /// read as all ones.
    fn io_read(&mut self, port: u16, size: u8) -> u32;
    /// The CPU's cycle count, given just before every port access (and
    /// MMIO access), so devices see the exact virtual time of the access
    /// rather than the time their slice began.
    fn sync_time(&mut self, _cycles: u64) {}
    /// Write `size` (1, 2 or 4) bytes to I/O port `port`.
    fn io_write(&mut self, port: u16, size: u8, value: u32);
    /// Read from a physical address the memory map marked as MMIO.
    fn mmio_read(&mut self, _addr: u32, size: u8) -> u32 {
        match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        }
    }
    /// Write to a physical address the memory map marked as MMIO.
    fn mmio_write(&mut self, _addr: u32, _size: u8, _value: u32) {}
    /// Whether a non-maskable interrupt was requested since the last call
    /// (an edge on the NMI line); the CPU takes it at the next instruction
    /// boundary unless an NMI handler is still running (SDM Vol. 3A §6.7.1).
    fn take_nmi(&mut self) -> bool {
        false
    }
    /// Whether a system-management interrupt was requested since the last
    /// call (an SMI# edge); the CPU latches it and enters SMM at the next
    /// instruction boundary, or after RSM if SMM is running (SDM Vol. 3C
    /// §34.5). Asked whenever the CPU looks at its interrupt lines.
    fn take_smi(&mut self) -> bool {
        false
    }
    /// Whether a maskable interrupt is being requested (the INTR line).
    fn interrupt_pending(&mut self) -> bool {
        false
    }
    /// Interrupt acknowledge cycle: the vector of the highest-priority
    /// pending interrupt. Only called after `interrupt_pending` said yes.
    fn acknowledge_interrupt(&mut self) -> u8 {
        0x0F
    }
}

/// A bus with nothing on it: ports read as all ones, no interrupts.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullBus;

impl Bus for NullBus {
    fn io_read(&mut self, _port: u16, size: u8) -> u32 {
        match size {
            1 => 0xFF,
            2 => 0xFFFF,
            _ => 0xFFFF_FFFF,
        }
    }
    fn io_write(&mut self, _port: u16, _size: u8, _value: u32) {}
}
