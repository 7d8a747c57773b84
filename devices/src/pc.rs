//! The PC board as the CPU sees it: port I/O dispatch, MMIO, the INTR line.
//!
//! The board holds, with their ports (the port map in `pc/ports.rs` is the one
//! list of who answers where):
//!
//! | chip | ports | IRQ / DMA |
//! |---|---|---|
//! | debug console, POST codes, exit device ([`DebugPorts`]) | 0xE9; 0x80 (+ `--post-port`); 0xF4–0xF7 | |
//! | BIOS service port (hypercalls, our ROM only) | 0xE0 | |
//! | System Control Port A (fast A20, fast reset) | 0x92 | |
//! | APM control/status (SMI#) | 0xB2, 0xB3 | |
//! | 8259A pair and the ELCR ([`PicPair`]) | 0x20/21, 0xA0/A1, 0x4D0/4D1 | |
//! | 8254 PIT and Port B ([`Pit`]) | 0x40–0x43, 0x61 | IRQ 0 |
//! | MC146818 RTC/CMOS ([`Cmos`]) | 0x70, 0x71 | IRQ 8 |
//! | 8042 keyboard/mouse controller ([`Ps2`]) | 0x60, 0x64 | IRQ 1, 12 |
//! | two 16550A UARTs ([`Uart`]) | 0x3F8–0x3FF, 0x2F8–0x2FF | IRQ 4, 3 |
//! | IDE controller, ATA disks and an ATAPI CD-ROM ([`Ide`]) | 0x1F0–0x1F7, 0x3F6, 0x170–0x177, 0x376 | IRQ 14, 15 |
//! | VGA with Bochs VBE (DISPI) ([`Vga`]) | 0x3B0–0x3DF, 0x1CE–0x1D0; memory 0xA0000–0xBFFFF | |
//! | PCI configuration mechanism #1, reset control: i440FX host bridge (PAM, SMRAM), PIIX4 ISA/IDE/PM functions, the VGA's BAR ([`Pci`]) | 0xCF8–0xCFF | |
//! | PIIX4 ACPI PM registers ([`Pm`]) | where PMBA puts them (64 ports) | SCI (IRQ 9) |
//! | QEMU fw_cfg, for third-party firmware ([`FwCfg`]) | 0x510, 0x511 | |
//! | the Bochs BIOS's message and shutdown ports ([`BochsPorts`]) | 0x400–0x403, 0x8900 | |
//! | 82077AA floppy controller ([`Fdc`]) | 0x3F0–0x3F5, 0x3F7 | IRQ 6, DMA 2 |
//! | two 8237 DMA controllers and page registers ([`Dma`]) | 0x00–0x0F, 0xC0–0xDF, 0x81–0x8F | |
//! | the x87's FERR# → IRQ 13 latch | 0xF0, 0xF1 | IRQ 13 |
//!
//! Timed devices put their deadlines into one [`Scheduler`]; the machine
//! runs the CPU up to [`Pc::next_event`] and then calls [`Pc::service`].
//!
//! The board's notion of "now" is the cycle count the machine gave it with
//! [`Pc::set_now`] before the current instruction slice. The CPU yields after
//! every port access, so a slice that touches a port starts right after the
//! previous access: what a device sees lags the true cycle count only by the
//! instructions executed since then (a handful in a polling loop).
//!
//! The board never acts on the CPU or memory itself: A20 and reset are
//! *requests* that the machine applies between instruction slices (the CPU
//! yields after every port access, so no guest instruction runs in between).

use ringside_cpu::Bus;

use crate::acpi::Pm;
use crate::bochsports::BochsPorts;
use crate::clock::{Clock, Scheduler, Timer};
use crate::cmos::{Cmos, CmosConfig};
use crate::debugport::{Console, DebugPorts};
use crate::disk::{Disk, DiskError};
use crate::dma::{Dma, DmaMemory};
use crate::fdc::{self, Fdc, FloppyType};
use crate::fwcfg::FwCfg;
use crate::ide::{Ide, CHANNEL_IRQ};
use crate::pci::Pci;
use crate::pic::PicPair;
use crate::pit::Pit;
use crate::ps2::Ps2;

mod ports;
use crate::uart::{SerialBackend, Uart};
use crate::vga::{self, Vga};
use ports::PortMap;

const IRQ_PIT: u8 = 0;
const IRQ_KEYBOARD: u8 = 1;
const IRQ_COM2: u8 = 3;
const IRQ_COM1: u8 = 4;
const IRQ_RTC: u8 = 8;
const IRQ_MOUSE: u8 = 12;

/// The BIOS service port: a byte written here asks the machine to run
/// that firmware service (a hypercall). The board only records the request;
/// the machine honours it only for code inside our BIOS ROM (see
/// `ringside_bios`), so for a guest the port is inert.
pub const HYPERCALL_PORT: u16 = 0xE0;

/// System Control Port A (PS/2 "fast A20" port).
pub const SYSTEM_CONTROL_A: u16 = 0x92;
const SCA_RESET: u8 = 1 << 0;
const SCA_A20: u8 = 1 << 1;

/// APM control port (APMC): a write raises SMI# when the PIIX4 PM
/// function's APMC_EN is set; ACPI's SMI_CMD in firmware that has one.
pub const APM_CONTROL: u16 = 0xB2;
/// APM status port (APMS): a scratch byte firmware and its SMI handler
/// talk through.
pub const APM_STATUS: u16 = 0xB3;

/// What the board is built with.
#[derive(Debug)]
pub struct PcConfig {
    /// Where port 0xE9 output goes.
    pub console: Console,
    /// A POST-code port besides 0x80, if any.
    pub extra_post_port: Option<u16>,
    /// The virtual clock (nominal CPU frequency).
    pub clock: Clock,
    /// RTC start time and NVRAM contents.
    pub cmos: CmosConfig,
    /// COM1's back-end.
    pub com1: SerialBackend,
    /// COM2's back-end.
    pub com2: SerialBackend,
}

impl Default for PcConfig {
    fn default() -> Self {
        PcConfig {
            console: Console::Null,
            extra_post_port: None,
            clock: Clock::default(),
            cmos: CmosConfig::default(),
            com1: SerialBackend::Null,
            com2: SerialBackend::Null,
        }
    }
}

/// The board: every device behind the CPU's [`Bus`].
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Pc {
    /// Debug console, POST codes, exit device.
    pub debug: DebugPorts,
    /// The 8259A pair.
    pub pic: PicPair,
    /// The 8254 and Port B.
    pub pit: Pit,
    /// RTC and CMOS RAM.
    pub cmos: Cmos,
    /// 8042 and keyboard.
    pub ps2: Ps2,
    /// COM1 (0x3F8, IRQ4).
    pub com1: Uart,
    /// COM2 (0x2F8, IRQ3).
    pub com2: Uart,
    /// IDE controller (primary IRQ14, secondary IRQ15); attach disks here.
    pub ide: Ide,
    /// VGA (ports 0x3B0–0x3DF, memory 0xA0000–0xBFFFF).
    pub vga: Vga,
    /// PCI configuration space (0xCF8/0xCFC) and reset control (0xCF9).
    pub pci: Pci,
    /// ACPI power-management registers (PM1a event/control, PM timer).
    pub pm: Pm,
    /// QEMU's fw_cfg interface (0x510/0x511), enabled for third-party
    /// firmware only.
    pub fwcfg: FwCfg,
    /// The Bochs BIOS's message ports (0x400–0x403) and shutdown port
    /// (0x8900).
    #[serde(default)]
    pub bochs: BochsPorts,
    /// The floppy disk controller (0x3F0–0x3F7, IRQ6, DMA channel 2);
    /// attach images with [`Pc::attach_floppy`].
    pub fdc: Fdc,
    /// The ISA DMA controllers and page registers.
    pub dma: Dma,
    clock: Clock,
    scheduler: Scheduler,
    /// The cycle count as of the current instruction slice. Not saved in
    /// snapshots: it is bookkeeping of the slicing (every device access
    /// brings it up to the CPU's clock first), set again on restore.
    #[serde(skip)]
    now: u64,
    /// Port 0x92 as last written (the A20 bit is kept in `a20`).
    system_control_a: u8,
    /// The A20 gate as the board drives it.
    a20: bool,
    reset_requested: bool,
    /// A byte written to [`HYPERCALL_PORT`] and not yet taken.
    hypercall: Option<u8>,
    /// Accesses to ports no device claims (for the run summary / debugging).
    unclaimed_accesses: u64,
    /// The x87's FERR# line as last seen, and whether IRQ13 is latched.
    ferr: bool,
    irq13: bool,
    /// APM control and status ports as last written (0xB2, 0xB3).
    apm: [u8; 2],
    /// SMI# asserted (by an APM control write) and not yet taken by the CPU.
    smi_requested: bool,
    /// Which device serves each port (see [`ports`]); derived from the
    /// devices' state, so built again on restore rather than saved.
    #[serde(skip)]
    ports: PortMap,
}

impl Pc {
    /// Make `saved` (a snapshot of this board, deserialized) the board:
    /// every device's state comes from it, the host resources it could not
    /// carry (debug console and serial ports' host ends, disk image files)
    /// stay those of the live board. A disk absent on either side is taken
    /// as the snapshot has it.
    pub fn restore(&mut self, mut saved: Pc) {
        saved.debug.swap_console(&mut self.debug);
        saved.com1.swap_backend(&mut self.com1);
        saved.com2.swap_backend(&mut self.com2);
        for (c, live) in saved.ide.channels.iter_mut().zip(&mut self.ide.channels) {
            for (d, l) in c.devices.iter_mut().zip(&mut live.devices) {
                if let (Some(d), Some(l)) = (d, l) {
                    d.disk.adopt_host(&mut l.disk);
                }
            }
        }
        for (d, l) in saved.fdc.drives.iter_mut().zip(&mut self.fdc.drives) {
            if let (Some(d), Some(l)) = (&mut d.disk, &mut l.disk) {
                d.adopt_host(l);
            }
        }
        *self = saved;
        self.ports = PortMap::build(self);
    }

    /// A board in its power-on state.
    pub fn new(config: PcConfig) -> Pc {
        let clock = config.clock;
        let mut pc = Pc {
            debug: DebugPorts::new(config.console, config.extra_post_port),
            pic: PicPair::new(),
            pit: Pit::new(clock),
            cmos: Cmos::new(clock, &config.cmos),
            ps2: Ps2::new(),
            com1: Uart::new(clock, config.com1),
            com2: Uart::new(clock, config.com2),
            ide: Ide::new(),
            vga: Vga::new(clock.cpu_hz()),
            pci: Pci::new(Some(vga::dispi::VIDEO_MEMORY_BYTES)),
            pm: Pm::new(clock),
            fwcfg: FwCfg::new(),
            bochs: BochsPorts::new(),
            fdc: Fdc::new(),
            dma: Dma::new(),
            clock,
            scheduler: Scheduler::default(),
            now: 0,
            system_control_a: 0,
            // A20 starts enabled, as the memory map starts it (QEMU and
            // Bochs do the same; the firmware closes it if it wants wrap).
            a20: true,
            reset_requested: false,
            hypercall: None,
            unclaimed_accesses: 0,
            ferr: false,
            irq13: false,
            apm: [0; 2],
            smi_requested: false,
            ports: PortMap::default(),
        };
        pc.ports = PortMap::build(&pc);
        // The interrupt lines start at the chips' output levels.
        pc.update_pit(0);
        pc.update_rtc();
        pc.update_ps2(false);
        pc.update_uarts(0);
        // Lining the inputs up is not a request.
        pc.pic.reset();
        pc
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
        self.hypercall = None;
        self.pic.reset();
        self.pit.reset();
        self.cmos.reset();
        self.ps2.reset();
        self.com1.reset();
        self.com2.reset();
        self.ide.reset();
        self.update_ide();
        self.vga.reset();
        self.pci.reset();
        self.pm.reset();
        self.pm.set_base(self.pci.pm_base());
        self.ports = PortMap::build(self);
        self.apm = [0; 2];
        self.smi_requested = false;
        self.fwcfg.reset();
        self.bochs.reset();
        self.fdc.reset();
        self.dma.reset();
        self.pic.set_irq(fdc::IRQ, false);
        self.pic.set_irq(self.pci.sci_irq(), false);
        self.scheduler = Scheduler::default();
        let now = self.now;
        self.update_pit(now);
        self.update_rtc();
        self.update_ps2(false);
        self.update_uarts(now);
    }

    /// The virtual clock's rates.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Tell the board the current cycle count (before each slice).
    #[inline]
    pub fn set_now(&mut self, cycles: u64) {
        self.now = self.now.max(cycles);
    }

    /// Do the timed work that is due at the current cycle (see
    /// [`Pc::set_now`]): PIT edges, RTC updates, UART timeouts and host
    /// input. Returns whether an interrupt line may have changed.
    pub fn service(&mut self) -> bool {
        let now = self.now;
        let mut any = false;
        if self.scheduler.due(Timer::Pit, now) {
            if self.pit.take_irq0_edge(now) {
                self.pic.pulse_irq(IRQ_PIT);
            }
            self.update_pit(now);
            any = true;
        }
        if self.scheduler.due(Timer::Rtc, now) {
            self.cmos.advance(now);
            self.update_rtc();
            any = true;
        }
        if self.scheduler.due(Timer::Com1, now) || self.scheduler.due(Timer::Com2, now) {
            self.com1.service(now);
            self.com2.service(now);
            self.update_uarts(now);
            any = true;
        }
        any
    }

    fn update_pit(&mut self, now: u64) {
        // An edge already due (a count written just now) is seen by
        // `service` at once.
        self.pic.set_irq(IRQ_PIT, self.pit.out0(now));
        self.scheduler.set(Timer::Pit, self.pit.next_irq0(now));
    }

    fn update_rtc(&mut self) {
        self.pic.set_irq(IRQ_RTC, self.cmos.irq());
        self.scheduler.set(Timer::Rtc, self.cmos.next_event());
    }

    /// `consumed`: the guest just read a byte, so a following byte needs a
    /// fresh edge.
    fn update_ps2(&mut self, consumed: bool) {
        if consumed {
            self.pic.set_irq(IRQ_KEYBOARD, false);
            self.pic.set_irq(IRQ_MOUSE, false);
        }
        self.pic.set_irq(IRQ_KEYBOARD, self.ps2.irq1());
        self.pic.set_irq(IRQ_MOUSE, self.ps2.irq12());
        if self.ps2.take_reset_request() {
            self.reset_requested = true;
        }
        if self.ps2.take_a20_change() {
            // The last writer of either A20 source drives the gate, as
            // QEMU wires the 8042 output port and port 0x92 to one line.
            self.a20 = self.ps2.a20();
        }
    }

    fn update_uarts(&mut self, now: u64) {
        for (uart, irq, timer) in [
            (&mut self.com1, IRQ_COM1, Timer::Com1),
            (&mut self.com2, IRQ_COM2, Timer::Com2),
        ] {
            if uart.take_retrigger() {
                self.pic.set_irq(irq, false);
            }
            self.pic.set_irq(irq, uart.irq());
            self.scheduler.set(timer, uart.next_event(now));
        }
    }

    /// A key event from the host (set-1 make code, `0xE0xx` for extended
    /// keys); see [`Ps2::key_event`].
    pub fn key_event(&mut self, set1: u16, pressed: bool) {
        self.ps2.key_event(set1, pressed);
        self.update_ps2(false);
    }

    /// Type ASCII text on the keyboard; see [`Ps2::type_text`].
    pub fn type_text(&mut self, text: &str) {
        self.ps2.type_text(text);
        self.update_ps2(false);
    }

    /// Bytes arriving on COM1's line from the host.
    pub fn com1_input(&mut self, bytes: &[u8]) {
        let now = self.now;
        self.com1.push_input(bytes, now);
        self.update_uarts(now);
    }

    /// Flush the debug console, serial back-ends and disk images.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.debug.flush()?;
        self.ide.flush()?;
        self.fdc.flush()?;
        self.com1.flush()?;
        self.com2.flush()
    }

    /// Put a floppy image into drive `drive` (0 = A:, 1 = B:) and record
    /// the drive in CMOS (type register 10h, equipment byte 14h), as the
    /// machine's setup would. The image's size picks the format.
    pub fn attach_floppy(
        &mut self,
        drive: usize,
        disk: Disk,
        write_protected: bool,
    ) -> Result<FloppyType, DiskError> {
        let t = self.fdc.attach(drive, disk, write_protected)?;
        self.cmos.set_floppy_types(self.fdc.cmos_types());
        Ok(t)
    }

    /// Whether the floppy controller waits for a DMA transfer that the
    /// DMA controller would serve now: the machine then calls
    /// [`Pc::run_dma`] with guest memory.
    #[inline]
    pub fn dma_pending(&self) -> bool {
        self.fdc.wants_dma() && self.dma.channel_ready(fdc::DMA_CHANNEL)
    }

    /// Run the pending DMA transfer (if any) against `mem`; the controller
    /// then posts its result and raises IRQ6.
    pub fn run_dma(&mut self, mem: &mut dyn DmaMemory) {
        if self.dma_pending() {
            self.fdc.run_dma(&mut self.dma, mem);
            self.update_fdc();
        }
    }

    fn update_fdc(&mut self) {
        self.pic.set_irq(fdc::IRQ, self.fdc.irq_level());
    }

    /// Whether the board drives the A20 gate open.
    pub fn a20_enabled(&self) -> bool {
        self.a20
    }

    /// Whether the guest asked for a system reset since the last call.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_requested)
    }

    /// The service number last written to [`HYPERCALL_PORT`], if any, for
    /// the machine to check and run (the CPU yields after the `OUT`).
    pub fn take_hypercall(&mut self) -> Option<u8> {
        self.hypercall.take()
    }

    /// The value the guest wrote to the exit device, if it did.
    pub fn exit_request(&self) -> Option<u32> {
        self.debug.exit_request()
    }

    /// Our BIOS's POST set-up of the PIIX4 PM function: its registers at
    /// `base` (PMBA, PMREGMISC on) and ACPI mode on (SCI_EN), since our
    /// FADT declares no SMI command port (ACPI: such a platform is always
    /// in ACPI mode). Third-party firmware programs the function itself.
    pub fn setup_acpi_pm(&mut self, base: u16) {
        self.pci.enable_pm(base);
        self.place_pm(self.pci.pm_base());
        let cnt = self.pm.read(base + 4, 2, self.now);
        self.pm.write(base + 4, 2, cnt | 1, self.now);
    }

    /// Whether the guest turned the machine off (ACPI S5 through
    /// PM1a_CNT, or `Shutdown` written to Bochs' port 0x8900).
    pub fn power_off_requested(&self) -> bool {
        self.pm.power_off_requested() || self.bochs.power_off_requested()
    }

    /// Whether a CPU halted with IF=1 can still be woken: some interrupt
    /// input is unmasked at the PIC and some device has a timed event to
    /// come (only timed events, or host input, which is polled by timed
    /// events, can raise a request while the CPU waits).
    pub fn can_interrupt(&self) -> bool {
        self.pic.any_unmasked() && self.scheduler.next().is_some()
    }

    /// The virtual-clock cycle at which a device next needs service, if any
    /// device is scheduled. The machine ends its instruction slices there.
    #[inline]
    pub fn next_event(&self) -> Option<u64> {
        self.scheduler.next()
    }

    /// The x87's FERR# output: a rising edge latches IRQ13 (the AT's
    /// legacy floating-point error reporting, used when CR0.NE=0) until the
    /// handler writes port 0xF0.
    pub fn set_ferr(&mut self, level: bool) {
        if level && !self.ferr {
            self.irq13 = true;
            self.pic.set_irq(13, true);
        }
        self.ferr = level;
    }

    /// The IDE channels' INTRQ lines to the PIC (level, edge-triggered
    /// there unless the ELCR says otherwise).
    fn update_ide(&mut self) {
        for (ch, &irq) in CHANNEL_IRQ.iter().enumerate() {
            self.pic.set_irq(irq, self.ide.irq_level(ch));
        }
    }

    /// Decode the PIIX4 PM register block at `base` (as PMBA and
    /// PMREGMISC say), and remap the ports if it moved.
    fn place_pm(&mut self, base: Option<u16>) {
        if base != self.pm.base() {
            log::debug!("PIIX4 PM: register block at {base:x?}");
            self.pm.set_base(base);
            self.ports = PortMap::build(self);
        }
    }

    /// The names of the devices that serve a read and a write at `port`
    /// (`None`: the bus floats), from the board's port map.
    pub fn port_owner(&self, port: u16) -> (Option<&'static str>, Option<&'static str>) {
        (
            self.ports.reader(port).map(|d| d.name),
            self.ports.writer(port).map(|d| d.name),
        )
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
    fn sync_time(&mut self, cycles: u64) {
        self.set_now(cycles);
    }

    fn io_read(&mut self, port: u16, size: u8) -> u32 {
        if let Some(read) = self.ports.reader(port).and_then(|d| d.read) {
            if let Some(v) = read(self, port, size) {
                return v;
            }
        }
        self.unclaimed_accesses += 1;
        log::trace!("read from unclaimed port {port:#06x} (size {size})");
        open_bus(size)
    }

    fn io_write(&mut self, port: u16, size: u8, value: u32) {
        // Once the guest asked to exit, the run is over: a REP OUTS still in
        // flight must not keep printing.
        if self.debug.exit_request().is_some() || self.power_off_requested() {
            return;
        }
        if let Some(write) = self.ports.writer(port).and_then(|d| d.write) {
            if write(self, port, size, value) {
                return;
            }
        }
        self.unclaimed_accesses += 1;
        log::trace!("write {value:#x} to unclaimed port {port:#06x} (size {size})");
    }

    fn mmio_read(&mut self, addr: u32, size: u8) -> u32 {
        if (vga::WINDOW_BASE..=vga::WINDOW_LAST).contains(&addr) {
            let mut v = 0;
            for i in 0..size.min(4) as u32 {
                v |= (self.vga.mem_read(addr.wrapping_add(i)) as u32) << (8 * i);
            }
            return v;
        }
        open_bus(size)
    }

    fn mmio_write(&mut self, addr: u32, size: u8, value: u32) {
        if (vga::WINDOW_BASE..=vga::WINDOW_LAST).contains(&addr) {
            for i in 0..size.min(4) as u32 {
                self.vga
                    .mem_write(addr.wrapping_add(i), (value >> (8 * i)) as u8);
            }
        }
    }

    fn take_smi(&mut self) -> bool {
        std::mem::take(&mut self.smi_requested)
    }

    fn interrupt_pending(&mut self) -> bool {
        self.pic.intr()
    }

    fn acknowledge_interrupt(&mut self) -> u8 {
        self.pic.acknowledge()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc() -> Pc {
        Pc::new(PcConfig {
            console: Console::Capture(Vec::new()),
            ..PcConfig::default()
        })
    }

    #[test]
    fn unknown_ports_read_all_ones() {
        let mut p = pc();
        assert_eq!(p.io_read(0x3E8, 1), 0xFF);
        assert_eq!(p.io_read(0x1234, 2), 0xFFFF);
        assert_eq!(p.io_read(0x2EC, 4), 0xFFFF_FFFF);
        p.io_write(0x3E8, 1, 0x41);
        assert_eq!(p.unclaimed_accesses(), 4);
    }

    #[test]
    fn storage_display_and_pci_are_on_the_bus() {
        let mut p = pc();
        // PCI host bridge ID through 0xCF8/0xCFC.
        p.io_write(0xCF8, 4, 0x8000_0000);
        assert_eq!(p.io_read(0xCFC, 4), 0x1237_8086);
        // VGA: memory window through MMIO, in mode 13h.
        assert!(p.vga.set_mode(0x13));
        p.mmio_write(0xA0010, 2, 0x0201);
        assert_eq!(p.mmio_read(0xA0010, 2), 0x0201);
        assert_eq!(p.vga.plane_byte(1, 0x10), 0x02);
        // No disks: both IDE channels float.
        assert_eq!(p.io_read(0x1F7, 1), 0xFF);
        assert_eq!(p.unclaimed_accesses(), 0);
        // 0xCF9 reset control.
        p.io_write(0xCF9, 1, 0x06);
        assert!(p.take_reset_request());
    }

    #[test]
    fn apm_control_raises_smi_only_with_apmc_en() {
        let mut p = pc();
        p.io_write(APM_STATUS, 1, 0x01);
        p.io_write(APM_CONTROL, 1, 0xF1);
        assert!(!p.take_smi(), "APMC_EN clear: no SMI");
        assert_eq!(p.io_read(APM_CONTROL, 1), 0xF1);
        assert_eq!(p.io_read(APM_STATUS, 1), 0x01);
        // PIIX4 PM (01.3): DEVACTB bit 25.
        p.io_write(0xCF8, 4, 0x8000_0B58);
        p.io_write(0xCFC, 4, 1 << 25);
        p.io_write(APM_CONTROL, 1, 0x00);
        assert!(p.take_smi());
        assert!(!p.take_smi(), "taken once");
        assert_eq!(p.unclaimed_accesses(), 0);
    }

    #[test]
    fn pm_block_appears_where_pmba_says() {
        let mut p = pc();
        assert_eq!(p.io_read(0xB004, 2), 0xFFFF, "not decoded at power-on");
        p.io_write(0xCF8, 4, 0x8000_0B40);
        p.io_write(0xCFC, 4, 0x0601);
        p.io_write(0xCF8, 4, 0x8000_0B80);
        p.io_write(0xCFC, 1, 1);
        p.io_write(0x604, 2, 1);
        assert_eq!(p.io_read(0x604, 2), 1, "SCI_EN at PMBA+4");
        assert_eq!(p.io_read(0xB004, 2), 0xFFFF);
        p.reset();
        assert_eq!(p.io_read(0x604, 2), 0xFFFF, "a reset clears PMBA");
    }

    #[test]
    fn a_port_two_devices_decode_goes_to_the_same_one_for_reads_and_writes() {
        let mut p = pc();
        p.fwcfg.enable();
        assert_eq!(p.port_owner(0x510), (Some("fw_cfg"), Some("fw_cfg")));
        // PMBA at 0x500: the PM block (64 ports) now covers fw_cfg's pair.
        p.io_write(0xCF8, 4, 0x8000_0B40);
        p.io_write(0xCFC, 4, 0x0501);
        p.io_write(0xCF8, 4, 0x8000_0B80);
        p.io_write(0xCFC, 1, 1);
        for port in [0x500, 0x510, 0x511, 0x53F] {
            assert_eq!(p.port_owner(port), (Some("ACPI PM"), Some("ACPI PM")));
        }
        assert_eq!(p.port_owner(0x540), (None, None));
        // Moved away, fw_cfg answers again.
        p.io_write(0xCF8, 4, 0x8000_0B40);
        p.io_write(0xCFC, 4, 0x0601);
        assert_eq!(p.port_owner(0x510), (Some("fw_cfg"), Some("fw_cfg")));
        assert_eq!(p.port_owner(0x604), (Some("ACPI PM"), Some("ACPI PM")));
    }

    #[test]
    fn a_post_card_only_listens() {
        let mut p = Pc::new(PcConfig {
            extra_post_port: Some(0x84),
            ..PcConfig::default()
        });
        // 0x84 is also a DMA page register: writes go to the POST card
        // (first in the map), reads to the only device that answers them.
        assert_eq!(
            p.port_owner(0x84),
            (Some("DMA controllers"), Some("POST codes"))
        );
        assert_eq!(p.port_owner(0x80), (None, Some("POST codes")));
        p.io_write(0x84, 1, 0x5A);
        assert_eq!(p.debug.last_post_code(), Some(0x5A));
        assert_eq!(p.io_read(0x80, 1), 0xFF);
        assert_eq!(p.unclaimed_accesses(), 1);
    }

    #[test]
    fn no_two_devices_share_a_port_on_the_default_board() {
        let p = pc();
        for (i, a) in ports::DEVICES.iter().enumerate() {
            for b in &ports::DEVICES[i + 1..] {
                for ra in (a.ports)(&p) {
                    for rb in (b.ports)(&p) {
                        assert!(
                            ra.end() < rb.start() || rb.end() < ra.start(),
                            "{} {ra:x?} and {} {rb:x?} overlap",
                            a.name,
                            b.name
                        );
                    }
                }
            }
        }
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
    fn nothing_is_scheduled_at_power_on() {
        let mut p = pc();
        assert!(!p.can_interrupt());
        assert!(!p.interrupt_pending());
        assert_eq!(p.next_event(), None);
    }

    /// The BIOS's PIC set-up: vectors 8 and 0x70, cascade on IR2.
    fn init_pics(p: &mut Pc) {
        for (port, v) in crate::pic::PC_PIC_INIT {
            p.io_write(port, 1, v as u32);
        }
    }

    #[test]
    fn pit_channel0_drives_irq0_through_the_pic() {
        let mut p = pc();
        init_pics(&mut p);
        p.io_write(0x21, 1, 0xFE);
        p.io_write(0x43, 1, 0x34);
        p.io_write(0x40, 1, 0x00);
        p.io_write(0x40, 1, 0x01); // N = 256
        let at = p.next_event().expect("IRQ0 scheduled");
        assert!(p.can_interrupt());
        p.set_now(at - 1);
        p.service();
        assert!(!p.interrupt_pending());
        p.set_now(at);
        p.service();
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x08);
        assert!(!p.interrupt_pending());
        p.io_write(0x20, 1, 0x20);
        let next = p.next_event().unwrap();
        let ticks = |c| p.clock().ticks(c, crate::clock::PIT_RATE);
        assert_eq!(ticks(next) - ticks(at), 256);
    }

    #[test]
    fn keyboard_bytes_raise_irq1() {
        let mut p = pc();
        init_pics(&mut p);
        p.key_event(0x1E, true);
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x09);
        assert_eq!(p.io_read(0x64, 1) & 1, 1);
        assert_eq!(p.io_read(0x60, 1), 0x1E, "translated to set 1 by default");
        p.io_write(0x20, 1, 0x20);
        assert!(!p.interrupt_pending());
    }

    #[test]
    fn a20_and_reset_through_the_8042() {
        let mut p = pc();
        p.io_write(0x64, 1, 0xD1);
        p.io_write(0x60, 1, 0xDD);
        assert!(!p.a20_enabled());
        p.io_write(0x92, 1, 0x02);
        assert!(p.a20_enabled(), "port 0x92 wrote last");
        p.io_write(0x64, 1, 0xDD);
        assert!(!p.a20_enabled());
        p.io_write(0x64, 1, 0xFE);
        assert!(p.take_reset_request());
    }

    #[test]
    fn rtc_periodic_interrupt_on_irq8() {
        let mut p = pc();
        init_pics(&mut p);
        p.io_write(0x70, 1, 0x0B);
        p.io_write(0x71, 1, 0x42); // PIE, 24 h
        let at = p.next_event().unwrap();
        // 1024 Hz by default.
        assert_eq!(at, crate::clock::DEFAULT_CPU_HZ.div_ceil(1024));
        p.set_now(at);
        p.service();
        assert_eq!(p.acknowledge_interrupt(), 0x70);
        p.io_write(0x70, 1, 0x0C);
        assert_eq!(p.io_read(0x71, 1), 0xC0);
    }

    #[test]
    fn floppy_controller_on_irq6_dma_channel_2_and_cmos() {
        use crate::disk::{testutil::TempFile, DiskMode};
        let mut img = vec![0u8; 1_474_560];
        img[512..1024].fill(0xA7); // sector 2
        let f = TempFile::with_contents("pc-fd", &img);
        let mut p = pc();
        init_pics(&mut p);
        p.io_write(0x21, 1, 0xBF); // IRQ6 only
        let disk = Disk::open(f.path(), DiskMode::Snapshot).unwrap();
        assert_eq!(p.attach_floppy(0, disk, false).unwrap(), FloppyType::M1_44);
        p.io_write(0x70, 1, 0x10);
        assert_eq!(p.io_read(0x71, 1), 0x40, "CMOS 10h: drive 0 is a 1.44M");
        // Leave reset: IRQ6 → vector 0Eh.
        p.io_write(0x3F2, 1, 0x1C);
        assert_eq!(p.acknowledge_interrupt(), 0x0E);
        for _ in 0..4 {
            p.io_write(0x3F5, 1, 0x08);
            p.io_read(0x3F5, 1);
            p.io_read(0x3F5, 1);
        }
        p.io_write(0x20, 1, 0x20);
        assert!(!p.interrupt_pending());
        // DMA channel 2 → 0x2000, 512 bytes; READ DATA C0 H0 S2.
        for (port, v) in [
            (0x0A, 0x06),
            (0x0C, 0),
            (0x04, 0x00),
            (0x04, 0x20),
            (0x0C, 0),
            (0x05, 0xFF),
            (0x05, 0x01),
            (0x0B, 0x46),
            (0x81, 0x00),
            (0x0A, 0x02),
        ] {
            p.io_write(port, 1, v);
        }
        p.io_write(0x3F7, 1, 0x00);
        for b in [0xE6, 0x00, 0, 0, 2, 2, 18, 0x1B, 0xFF] {
            p.io_write(0x3F5, 1, b);
        }
        assert!(p.dma_pending());
        let mut mem = ringside_cpu::PhysMem::new(1 << 20);
        p.run_dma(&mut mem);
        assert!(!p.dma_pending());
        assert!(p.interrupt_pending());
        assert_eq!(p.acknowledge_interrupt(), 0x0E);
        assert_eq!(p.io_read(0x3F5, 1), 0x00, "ST0: normal termination");
        assert_eq!(mem.peek(0x2000), 0xA7);
        assert_eq!(mem.peek(0x21FF), 0xA7);
        assert_eq!(mem.peek(0x2200), 0x00);
        assert_eq!(p.unclaimed_accesses(), 0);
    }

    #[test]
    fn com1_interrupts_on_irq4() {
        let mut p = Pc::new(PcConfig {
            com1: SerialBackend::Capture(Vec::new()),
            ..PcConfig::default()
        });
        init_pics(&mut p);
        p.io_write(0x3FC, 1, 0x08); // OUT2
        p.io_write(0x3F9, 1, 0x01); // RDA
        p.com1_input(b"k");
        assert_eq!(p.acknowledge_interrupt(), 0x0C);
        assert_eq!(p.io_read(0x3FA, 1), 0x04);
        assert_eq!(p.io_read(0x3F8, 1), b'k' as u32);
        p.io_write(0x20, 1, 0x20);
        p.io_write(0x3F8, 1, b'o' as u32);
        assert_eq!(p.com1.captured(), Some(&b"o"[..]));
        assert!(!p.interrupt_pending());
    }
}
