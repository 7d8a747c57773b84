//! Ringside memory: the physical memory map (RAM, ROM, MMIO, A20 gate), the
//! page walk and the software TLB.
//!
//! The CPU reads and writes guest memory through [`PhysMem`]; anything that is
//! not plain RAM or ROM is reported back as MMIO so the CPU can hand it to the
//! board through its `Bus`.

pub mod paging;
pub mod phys;
pub mod snapshot;
pub mod tlb;
mod vram;

pub use paging::{peek, walk, Access, PageFault, PagingMode, Translation};
pub use phys::{smram, MemError, PhysMem, Smram, PAGE_SHIFT, PAGE_SIZE};
pub use tlb::{FlushCause, Tlb, TlbStats};
