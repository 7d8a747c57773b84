//! The PC board as the CPU sees it: port I/O dispatch, MMIO, the INTR line.
//!
//! This milestone's board holds only the debug ports and System Control
//! Port A (0x92: fast A20 gate and fast reset). The interrupt controller,
//! timer, CMOS, keyboard controller and friends are later chips: each becomes
//! a field of [`Pc`], a few arms in the port dispatch below, and (for the ones
//! that interrupt) a source behind [`Pc::can_interrupt`] and
//! [`Pc::next_event`]. Nothing else in the machine has to change for them.
//!
//! The board never acts on the CPU or memory itself: A20 and reset are
//! *requests* that the machine applies between instruction slices (the CPU
//! yields after every port access, so no guest instruction runs in between).

use ringside_cpu::Bus;

use crate::debugport::{Console, DebugPorts};

/// System Control Port A (PS/2 "fast A20" port).
pub const SYSTEM_CONTROL_A: u16 = 0x92;
const SCA_RESET: u8 = 1 << 0;
const SCA_A20: u8 = 1 << 1;

/// What the board is built with.
#[derive(Debug)]
pub struct PcConfig {
    /// Where port 0xE9 output goes.
    pub console: Console,
    /// A POST-code port besides 0x80, if any.
    pub extra_post_port: Option<u16>,
}

impl Default for PcConfig {
    fn default() -> Self {
        PcConfig {
            console: Console::Null,
            extra_post_port: None,
        }
    }
}

/// The board: every device behind the CPU's [`Bus`].
#[derive(Debug)]
pub struct Pc {
    /// Debug console, POST codes, exit device.
    pub debug: DebugPorts,
    /// Port 0x92 as last written (the A20 bit is kept in `a20`).
    system_control_a: u8,
    /// The A20 gate as the board drives it.
    a20: bool,
    reset_requested: bool,
    /// Accesses to ports no device claims (for the run summary / debugging).
    unclaimed_accesses: u64,
}

impl Pc {
    /// A board in its power-on state.
    pub fn new(config: PcConfig) -> Pc {
        Pc {
            debug: DebugPorts::new(config.console, config.extra_post_port),
            system_control_a: 0,
            // A20 starts enabled, as the memory map starts it (QEMU and
            // Bochs do the same; the firmware closes it if it wants wrap).
            a20: true,
            reset_requested: false,
            unclaimed_accesses: 0,
        }
    }

    /// Board reset (after a guest-requested reset or triple fault): every
    /// chip back to its power-on state; the debug ports keep their history
    /// because they belong to the host, not the guest. Port 0x92 keeps its
    /// bits but the reset bit (QEMU does the same), while the gate itself
    /// opens again with the CPU's reset.
    pub fn reset(&mut self) {
        self.system_control_a &= !SCA_RESET;
        self.a20 = true;
        self.reset_requested = false;
    }

    /// Whether the board drives the A20 gate open.
    pub fn a20_enabled(&self) -> bool {
        self.a20
    }

    /// Whether the guest asked for a system reset since the last call.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_requested)
    }

    /// The value the guest wrote to the exit device, if it did.
    pub fn exit_request(&self) -> Option<u32> {
        self.debug.exit_request()
    }

    /// Whether any device on this board can ever raise an interrupt. With
    /// none, a CPU halted with IF=1 waits forever. (False until the PIC and
    /// the timer arrive.)
    pub fn can_interrupt(&self) -> bool {
        false
    }

    /// The virtual-clock cycle at which a device next needs service, if any
    /// device is scheduled. The machine ends its instruction slices there.
    pub fn next_event(&self) -> Option<u64> {
        None
    }

    /// Port accesses that no device claimed.
    pub fn unclaimed_accesses(&self) -> u64 {
        self.unclaimed_accesses
    }

    fn write_system_control_a(&mut self, v: u8) {
        // Fast reset fires on a 0→1 transition of bit 0.
        if v & SCA_RESET != 0 && self.system_control_a & SCA_RESET == 0 {
            log::info!("port 0x92: fast reset requested");
            self.reset_requested = true;
        }
        self.system_control_a = v;
        let a20 = v & SCA_A20 != 0;
        if a20 != self.a20 {
            log::debug!(
                "port 0x92: A20 {}",
                if a20 { "enabled" } else { "disabled" }
            );
        }
        // The last writer drives the gate (as in QEMU, where the 8042's
        // output port and this one share one A20 line).
        self.a20 = a20;
    }

    /// Reads return what was last written, not the gate's state: A20 is
    /// open at power-on while this port reads 0, as on QEMU.
    fn read_system_control_a(&self) -> u8 {
        self.system_control_a
    }
}

/// A value of `size` bytes with every bit set: what an undriven ISA bus reads.
fn open_bus(size: u8) -> u32 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

impl Bus for Pc {
    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        if let Some(v) = self.debug.io_read(port, size) {
            return v;
        }
        match port {
            // The bytes above the port itself read as the open bus.
            SYSTEM_CONTROL_A => (open_bus(size) & !0xFF) | self.read_system_control_a() as u32,
            _ => {
                self.unclaimed_accesses += 1;
                log::trace!("read from unclaimed port {port:#06x} (size {size})");
                open_bus(size)
            }
        }
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        // Once the guest asked to exit, the run is over: a REP OUTS still in
        // flight must not keep printing.
        if self.debug.exit_request().is_some() {
            return;
        }
        if self.debug.io_write(port, size, value) {
            return;
        }
        match port {
            SYSTEM_CONTROL_A => self.write_system_control_a(value as u8),
            _ => {
                self.unclaimed_accesses += 1;
                log::trace!("write {value:#x} to unclaimed port {port:#06x} (size {size})");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc() -> Pc {
        Pc::new(PcConfig {
            console: Console::Capture(Vec::new()),
            extra_post_port: None,
        })
    }

    #[test]
    fn unknown_ports_read_all_ones() {
        let mut p = pc();
        assert_eq!(p.io_read(0x3F8, 1), 0xFF);
        assert_eq!(p.io_read(0x1234, 2), 0xFFFF);
        assert_eq!(p.io_read(0xCFC, 4), 0xFFFF_FFFF);
        p.io_write(0x3F8, 1, 0x41);
        assert_eq!(p.unclaimed_accesses(), 4);
    }

    #[test]
    fn port_92_drives_a20_and_reads_back() {
        let mut p = pc();
        assert!(p.a20_enabled());
        assert_eq!(p.io_read(0x92, 1), 0x00, "reads back the last write");
        p.io_write(0x92, 1, 0x00);
        assert!(!p.a20_enabled());
        assert_eq!(p.io_read(0x92, 1), 0x00);
        p.io_write(0x92, 1, 0x02);
        assert!(p.a20_enabled());
        assert!(!p.take_reset_request());
    }

    #[test]
    fn port_92_reset_on_rising_edge_only() {
        let mut p = pc();
        p.io_write(0x92, 1, 0x03);
        assert!(p.take_reset_request());
        assert!(!p.take_reset_request(), "taken once");
        p.io_write(0x92, 1, 0x03);
        assert!(!p.take_reset_request(), "bit already set: no edge");
        p.reset();
        assert!(p.a20_enabled());
        assert_eq!(p.io_read(0x92, 1), 0x02, "reset bit cleared, A20 bit kept");
    }

    #[test]
    fn writes_after_exit_are_dropped() {
        let mut p = pc();
        p.io_write(0xE9, 1, b'a' as u32);
        p.io_write(0xF4, 1, 0);
        p.io_write(0xE9, 1, b'b' as u32);
        assert_eq!(p.exit_request(), Some(0));
        assert_eq!(p.debug.captured(), Some(&b"a"[..]));
    }

    #[test]
    fn nothing_interrupts_yet() {
        let mut p = pc();
        assert!(!p.can_interrupt());
        assert!(!p.interrupt_pending());
        assert_eq!(p.next_event(), None);
    }
}
