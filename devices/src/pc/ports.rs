//! The board's port map: which device answers an `IN` or `OUT` at a port.
//!
//! [`DEVICES`] is the one list: every row names the ports a device decodes
//! (from the device's own `PORTS` declaration) and how the board reads and
//! writes it. Rows earlier in the list win where two devices decode the
//! same port, for reads and writes alike; a row without a read (or write)
//! handler does not decode that direction, so the access goes to the next
//! row that does. From the list the board builds a lookup table per
//! direction (65,536 one-byte entries) when it is made, when a snapshot is
//! restored and when the guest moves a relocatable block (the PIIX4 PM
//! registers): an access is one table load and one call, with no search
//! and no allocation.
//!
//! Adding a device is one row here (and the device's field on [`Pc`]).

use std::ops::RangeInclusive;

use super::{Pc, APM_CONTROL, APM_STATUS, HYPERCALL_PORT, SYSTEM_CONTROL_A};
use crate::bochsports::BochsPorts;
use crate::cmos::Cmos;
use crate::debugport::{DEBUGCON_PORT, EXIT_PORTS};
use crate::dma::Dma;
use crate::fdc::Fdc;
use crate::fwcfg::FwCfg;
use crate::ide::Ide;
use crate::pci::Pci;
use crate::pic::PicPair;
use crate::pit::Pit;
use crate::ps2::{self, Ps2};
use crate::uart::{Uart, COM1_BASE, COM2_BASE};
use crate::vga::Vga;

/// A read handler: the value of a `size`-byte read at `port`, or `None`
/// when the device does not answer this access (an exit-device read that
/// runs past its ports): the bus then floats.
type ReadFn = fn(&mut Pc, u16, u8) -> Option<u32>;
/// A write handler: whether the device took the `size`-byte write.
type WriteFn = fn(&mut Pc, u16, u8, u32) -> bool;

/// One row of the port map.
pub(super) struct PortDevice {
    /// What the row is, for `port_owner` and the tests.
    pub name: &'static str,
    /// The ports it decodes on this board as it is now.
    pub ports: fn(&Pc) -> Vec<RangeInclusive<u16>>,
    /// How a read is served; `None`: reads are not decoded.
    pub read: Option<ReadFn>,
    /// How a write is served; `None`: writes are not decoded.
    pub write: Option<WriteFn>,
}

/// A chip on the low byte lane: the bytes above it read as the open bus
/// (as QEMU does for port 0x92 too).
fn byte_lane(size: u8, v: u8) -> Option<u32> {
    Some((super::open_bus(size) & !0xFF) | v as u32)
}

/// COM1 (or COM2 with `second`) at its base port.
fn uart(pc: &mut Pc, second: bool) -> (&mut Uart, u16) {
    if second {
        (&mut pc.com2, COM2_BASE)
    } else {
        (&mut pc.com1, COM1_BASE)
    }
}

fn uart_read(pc: &mut Pc, second: bool, port: u16, size: u8) -> Option<u32> {
    let now = pc.now;
    let (u, base) = uart(pc, second);
    let v = u.read(port - base, now);
    pc.update_uarts(now);
    byte_lane(size, v)
}

fn uart_write(pc: &mut Pc, second: bool, port: u16, v: u32) -> bool {
    let now = pc.now;
    let (u, base) = uart(pc, second);
    u.write(port - base, v as u8, now);
    pc.update_uarts(now);
    true
}

/// The board's devices in decode priority order (see the module docs).
pub(super) const DEVICES: &[PortDevice] = &[
    PortDevice {
        name: "debug console",
        ports: |_| vec![DEBUGCON_PORT..=DEBUGCON_PORT],
        read: Some(|pc, port, size| pc.debug.io_read(port, size)),
        write: Some(|pc, port, size, v| pc.debug.io_write(port, size, v)),
    },
    PortDevice {
        name: "exit device",
        ports: |_| vec![EXIT_PORTS],
        read: Some(|pc, port, size| pc.debug.io_read(port, size)),
        write: Some(|pc, port, size, v| pc.debug.io_write(port, size, v)),
    },
    PortDevice {
        name: "POST codes",
        ports: |pc| pc.debug.post_ports(),
        read: None,
        write: Some(|pc, port, size, v| pc.debug.io_write(port, size, v)),
    },
    PortDevice {
        name: "BIOS service port",
        ports: |_| vec![HYPERCALL_PORT..=HYPERCALL_PORT],
        read: None,
        write: Some(|pc, _, size, v| {
            if size != 1 {
                return false;
            }
            pc.hypercall = Some(v as u8);
            true
        }),
    },
    PortDevice {
        name: "IDE",
        ports: |_| Ide::PORTS.to_vec(),
        read: Some(|pc, port, size| {
            let v = pc.ide.io_read(port, size);
            pc.update_ide();
            v
        }),
        write: Some(|pc, port, size, v| {
            pc.ide.io_write(port, size, v);
            pc.update_ide();
            true
        }),
    },
    PortDevice {
        name: "VGA",
        ports: |_| Vga::PORTS.to_vec(),
        read: Some(|pc, port, size| pc.vga.io_read(port, size, pc.now)),
        write: Some(|pc, port, size, v| pc.vga.io_write(port, size, v, pc.now)),
    },
    PortDevice {
        name: "PCI configuration",
        ports: |_| Pci::PORTS.to_vec(),
        read: Some(|pc, port, size| pc.pci.io_read(port, size)),
        write: Some(|pc, port, size, v| {
            pc.pci.io_write(port, size, v);
            // PMBA/PMREGMISC place the PM block.
            pc.place_pm(pc.pci.pm_base());
            if pc.pci.take_reset_request() {
                pc.reset_requested = true;
            }
            true
        }),
    },
    PortDevice {
        name: "ACPI PM",
        ports: |pc| pc.pm.ports(),
        read: Some(|pc, port, size| Some(pc.pm.read(port, size, pc.now))),
        write: Some(|pc, port, size, v| {
            pc.pm.write(port, size, v, pc.now);
            pc.pic.set_irq(pc.pci.sci_irq(), pc.pm.sci(pc.now));
            true
        }),
    },
    PortDevice {
        name: "fw_cfg",
        ports: |_| vec![FwCfg::PORTS],
        read: Some(|pc, port, size| {
            let on = pc.fwcfg.claims(port);
            on.then(|| pc.fwcfg.read(port, size))
        }),
        write: Some(|pc, port, size, v| {
            let on = pc.fwcfg.claims(port);
            if on {
                pc.fwcfg.write(port, size, v);
            }
            on
        }),
    },
    PortDevice {
        name: "Bochs BIOS ports",
        ports: |_| BochsPorts::PORTS.to_vec(),
        read: None,
        write: Some(|pc, port, size, v| {
            pc.bochs.write(port, size, v);
            true
        }),
    },
    PortDevice {
        name: "8259A PICs",
        ports: |_| PicPair::PORTS.to_vec(),
        read: Some(|pc, port, size| byte_lane(size, pc.pic.read(port))),
        write: Some(|pc, port, _, v| {
            pc.pic.write(port, v as u8);
            true
        }),
    },
    PortDevice {
        name: "8254 PIT",
        ports: |_| Pit::PORTS.to_vec(),
        read: Some(|pc, port, size| byte_lane(size, pc.pit.read(port, pc.now))),
        write: Some(|pc, port, _, v| {
            let now = pc.now;
            pc.pit.write(port, v as u8, now);
            pc.update_pit(now);
            true
        }),
    },
    PortDevice {
        name: "8042",
        ports: |_| Ps2::PORTS.to_vec(),
        read: Some(|pc, port, size| {
            let v = pc.ps2.read(port);
            pc.update_ps2(port == ps2::DATA_PORT);
            byte_lane(size, v)
        }),
        write: Some(|pc, port, _, v| {
            pc.ps2.write(port, v as u8);
            pc.update_ps2(false);
            true
        }),
    },
    PortDevice {
        name: "RTC/CMOS",
        ports: |_| Cmos::PORTS.to_vec(),
        read: Some(|pc, port, size| {
            let v = pc.cmos.read(port, pc.now);
            pc.update_rtc();
            byte_lane(size, v)
        }),
        write: Some(|pc, port, _, v| {
            pc.cmos.write(port, v as u8, pc.now);
            pc.update_rtc();
            true
        }),
    },
    PortDevice {
        name: "COM1",
        ports: |_| vec![COM1_BASE..=COM1_BASE + 7],
        read: Some(|pc, port, size| uart_read(pc, false, port, size)),
        write: Some(|pc, port, _, v| uart_write(pc, false, port, v)),
    },
    PortDevice {
        name: "COM2",
        ports: |_| vec![COM2_BASE..=COM2_BASE + 7],
        read: Some(|pc, port, size| uart_read(pc, true, port, size)),
        write: Some(|pc, port, _, v| uart_write(pc, true, port, v)),
    },
    PortDevice {
        name: "System Control Port A",
        ports: |_| vec![SYSTEM_CONTROL_A..=SYSTEM_CONTROL_A],
        read: Some(|pc, _, size| byte_lane(size, pc.read_system_control_a())),
        write: Some(|pc, _, _, v| {
            pc.write_system_control_a(v as u8);
            true
        }),
    },
    PortDevice {
        name: "APM control and status",
        ports: |_| vec![APM_CONTROL..=APM_STATUS],
        read: Some(|pc, port, size| byte_lane(size, pc.apm[(port - APM_CONTROL) as usize])),
        write: Some(|pc, port, _, v| {
            pc.apm[(port - APM_CONTROL) as usize] = v as u8;
            if port == APM_CONTROL && pc.pci.apmc_smi_enabled() {
                pc.smi_requested = true;
            }
            true
        }),
    },
    PortDevice {
        name: "floppy controller",
        ports: |_| Fdc::PORTS.to_vec(),
        read: Some(|pc, port, size| {
            let v = pc.fdc.read(port);
            pc.update_fdc();
            byte_lane(size, v)
        }),
        write: Some(|pc, port, _, v| {
            pc.fdc.write(port, v as u8);
            pc.update_fdc();
            true
        }),
    },
    PortDevice {
        name: "DMA controllers",
        ports: |_| Dma::PORTS.to_vec(),
        read: Some(|pc, port, size| byte_lane(size, pc.dma.read(port))),
        write: Some(|pc, port, _, v| {
            pc.dma.write(port, v as u8);
            true
        }),
    },
    PortDevice {
        // Any write to 0xF0 clears the IRQ13 latch (and asserts IGNNE# on
        // an AT); 0xF1 resets the coprocessor interface the same way.
        name: "coprocessor error latch",
        ports: |_| vec![0xF0..=0xF1],
        read: None,
        write: Some(|pc, _, _, _| {
            pc.irq13 = false;
            pc.pic.set_irq(13, false);
            true
        }),
    },
];

/// No row decodes the port.
const NONE: u8 = u8::MAX;

/// The lookup tables built from [`DEVICES`]: for each port, the index of
/// the row that serves a read and a write there.
#[derive(Debug, Default)]
pub(super) struct PortMap {
    read: Box<[u8]>,
    write: Box<[u8]>,
}

impl PortMap {
    /// The tables for `pc` as it is now (rows in priority order: a port
    /// goes to the first row that decodes it in that direction).
    pub fn build(pc: &Pc) -> PortMap {
        const _: () = assert!(DEVICES.len() < NONE as usize);
        let mut read = vec![NONE; 1 << 16].into_boxed_slice();
        let mut write = vec![NONE; 1 << 16].into_boxed_slice();
        for (i, d) in DEVICES.iter().enumerate() {
            for range in (d.ports)(pc) {
                for port in range {
                    let p = port as usize;
                    if d.read.is_some() && read[p] == NONE {
                        read[p] = i as u8;
                    }
                    if d.write.is_some() && write[p] == NONE {
                        write[p] = i as u8;
                    }
                }
            }
        }
        PortMap { read, write }
    }

    /// The row serving reads at `port`.
    #[inline]
    pub fn reader(&self, port: u16) -> Option<&'static PortDevice> {
        let i = self.read.get(port as usize).copied().unwrap_or(NONE);
        DEVICES.get(i as usize)
    }

    /// The row serving writes at `port`.
    #[inline]
    pub fn writer(&self, port: u16) -> Option<&'static PortDevice> {
        let i = self.write.get(port as usize).copied().unwrap_or(NONE);
        DEVICES.get(i as usize)
    }
}
