//! The PC board: every chip the CPU reaches through its `Bus`.
//!
//! One file per chip. [`pc::Pc`] wires them together and implements
//! [`ringside_cpu::Bus`]; the machine crate owns it next to the CPU.

#![warn(missing_docs)]

pub mod debugport;
pub mod disk;
pub mod ide;
pub mod pc;
pub mod pci;

pub use debugport::{Console, DebugPorts};
pub use pc::{Pc, PcConfig};
