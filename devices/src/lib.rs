//! The PC board: every chip the CPU reaches through its `Bus`.
//!
//! One file per chip. [`pc::Pc`] wires them together and implements
//! [`ringside_cpu::Bus`]; the machine crate owns it next to the CPU.

#![warn(missing_docs)]

pub mod acpi;
pub mod bochsports;
pub mod clock;
pub mod cmos;
pub mod debugport;
pub mod disk;
pub mod dma;
pub mod fdc;
pub mod fwcfg;
pub mod ide;
pub mod pc;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod ps2;
mod snapshot;
pub mod uart;
pub mod vga;

pub use clock::{Clock, DEFAULT_CPU_HZ};
pub use cmos::{BootDevice, CmosConfig, DateTime};
pub use debugport::{Console, DebugPorts};
pub use pc::{Pc, PcConfig};
pub use uart::SerialBackend;
