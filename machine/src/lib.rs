//! The PC as one value: CPU and board, the run loop and the virtual clock.
//!
//! [`Machine`] owns the [`Cpu`] (which owns guest memory) and the [`Pc`]
//! board, and is the only place the two meet. [`Machine::run`] executes guest
//! instructions in slices: the CPU runs until its budget, the next device
//! deadline, or an instruction that needs the board's attention (port I/O,
//! a change of IF, HLT, a triple fault); between slices the machine applies
//! what the board asked for (A20, reset) and checks the exit conditions.

#![warn(missing_docs)]

mod bioslog;
pub mod debugger;
mod optionrom;
pub mod png;
mod session;
pub mod snapshot;
pub mod traplog;

pub use bioslog::BiosLog;
pub use optionrom::{load_option_rom, MAX_OPTION_ROM, VGA_ROM_BASE};
pub use session::Status;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Our own BIOS: its ROM, symbols and hypercall services.
pub use ringside_bios as bios;
pub use ringside_cpu::{Cpu, StopReason};
/// The storage and display devices, for frontends that attach disks or
/// show the screen.
pub use ringside_devices::{disk, fdc, ide, vga};
pub use ringside_devices::{
    BootDevice, Clock, CmosConfig, Console, DateTime, Pc, PcConfig, SerialBackend, DEFAULT_CPU_HZ,
};
use ringside_mmu::{MemError, PhysMem};
use thiserror::Error;

/// Instructions per slice when no device deadline is nearer. Only bounds how
/// often the loop checks its limits; with devices, their deadlines cut
/// slices shorter.
const SLICE_INSTRUCTIONS: u64 = 1 << 20;
/// Cycles per slice when no device is scheduled.
const SLICE_CYCLES: u64 = 1 << 22;

/// Triple-fault resets reported as warnings before they go to debug level.
const MAX_RESET_WARNINGS: u64 = 5;

/// ROM sizes the PC memory map accepts.
pub const ROM_SIZES: [usize; 3] = [64 * 1024, 128 * 1024, 256 * 1024];
/// Default RAM size in MiB (QEMU's default too, so a ROM that sizes memory
/// sees the same amount on both).
pub const DEFAULT_MEMORY_MIB: u32 = 128;

/// A host-side problem building a machine. Each names the file involved.
#[derive(Debug, Error)]
pub enum MachineError {
    /// The ROM file could not be read.
    #[error("{}: cannot read ROM image: {source}", path.display())]
    RomRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The ROM file has a size the PC map cannot hold.
    #[error("{}: ROM image is {size} bytes; it must be exactly 64, 128 or 256 KiB (65536, 131072 or 262144 bytes)", path.display())]
    RomSize {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// An option ROM file (`--vga-bios`) is not one the expansion ROM
    /// area can hold.
    #[error("{}: {problem}", path.display())]
    OptionRom {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The debug console file could not be created.
    #[error("{}: cannot create debug console file: {source}", path.display())]
    Console {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The BIOS log file (`--bios-log`) could not be created.
    #[error("{}: cannot create the BIOS log file (--bios-log): {source}", path.display())]
    BiosLog {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The serial port's output file could not be created.
    #[error("{}: cannot create serial port file (--serial): {source}", path.display())]
    Serial {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The memory configuration is impossible.
    #[error("{0}")]
    Memory(#[from] MemError),
}

/// How a machine is built.
#[derive(Debug)]
pub struct MachineConfig {
    /// RAM in MiB.
    pub memory_mib: u32,
    /// Where port 0xE9 output goes.
    pub console: Console,
    /// Where our BIOS's own log goes (never port 0xE9).
    pub bios_log: BiosLog,
    /// A POST-code port besides 0x80.
    pub extra_post_port: Option<u16>,
    /// Nominal CPU frequency: how many virtual cycles make a second for
    /// the timers.
    pub cpu_hz: u64,
    /// The RTC's date and time at power-on.
    pub rtc_start: DateTime,
    /// Boot order written to CMOS for the firmware.
    pub boot_order: Vec<BootDevice>,
    /// COM1's back-end.
    pub com1: SerialBackend,
    /// Slow the guest down to wall-clock speed.
    pub pace: Pace,
    /// End the run on a triple fault instead of resetting the guest (QEMU's
    /// `-no-reboot`), so the fault can be looked at.
    pub no_reboot: bool,
    /// A VGA BIOS (option ROM image, see [`load_option_rom`]) at 0xC0000,
    /// as a VGA card's ROM appears there. Our BIOS runs it when it scans
    /// for option ROMs; third-party firmware also finds it through fw_cfg
    /// as `pci1234,1111.rom`, the PCI VGA function's ROM (SeaBIOS runs it
    /// with that function's address, as on QEMU's `pc` machine).
    pub vga_rom: Option<Vec<u8>>,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            memory_mib: DEFAULT_MEMORY_MIB,
            console: Console::Null,
            bios_log: BiosLog::Null,
            extra_post_port: None,
            cpu_hz: DEFAULT_CPU_HZ,
            rtc_start: DateTime::default(),
            boot_order: CmosConfig::default().boot_order,
            com1: SerialBackend::Null,
            pace: Pace::Off,
            no_reboot: false,
            vga_rom: None,
        }
    }
}

/// Whether virtual time is tied to the host's clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the host can go (virtual time races ahead while the
    /// guest halts). Reproducible.
    #[default]
    Off,
    /// Never let virtual time run ahead of the host's clock: the loop
    /// sleeps when the guest gets ahead. For interactive use; the guest's
    /// behaviour stays the same, only its speed changes.
    Realtime,
}

/// How far virtual time may run ahead of the host under [`Pace::Realtime`]
/// before the loop sleeps.
const PACE_SLACK: Duration = Duration::from_millis(2);

/// Limits on one call of [`Machine::run`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RunLimits {
    /// Stop once this many instructions have retired since power-on.
    pub max_instructions: Option<u64>,
}

/// Why [`Machine::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunOutcome {
    /// The guest wrote this value to the exit device (port 0xF4).
    Exit(u32),
    /// The instruction limit was reached.
    MaxInstructions,
    /// HLT with IF=0: nothing can wake the CPU.
    HaltedForever {
        /// CS selector of the instruction after the HLT.
        cs: u16,
        /// Its offset.
        eip: u32,
    },
    /// HLT with IF=1, but every IRQ is masked at the PIC or no device has
    /// anything scheduled, so nothing will ever wake the CPU either.
    HaltedNoInterruptSource {
        /// CS selector of the instruction after the HLT.
        cs: u16,
        /// Its offset.
        eip: u32,
    },
    /// The guest turned the machine off through ACPI (SLP_TYP of `\_S5`
    /// with SLP_EN written to PM1a_CNT), as `poweroff` does.
    PowerOff,
    /// The guest asked for a reset (8042 command 0xFE, port 0x92 bit 0, or
    /// port 0xCF9) with `no_reboot` set: the run ends instead,
    /// as QEMU's process does under `-no-reboot` (Linux's `reboot -f`).
    GuestReset,
    /// A triple fault with `no_reboot` set: the processor shut down.
    TripleFault {
        /// The last exception the CPU tried to deliver.
        vector: u8,
        /// CS selector when it shut down.
        cs: u16,
        /// EIP when it shut down.
        eip: u32,
    },
}

impl RunOutcome {
    /// The process exit status the `ringside` binary uses for this outcome:
    /// `(v << 1) | 1` for an exit-port write of `v` (as QEMU's
    /// isa-debug-exit, truncated to 8 bits by the OS), 124 for the
    /// instruction limit (as `timeout` does), 3 for a CPU halted for good,
    /// 4 for a triple fault under `no_reboot`, 5 for a reset the guest asked
    /// for under `no_reboot`, 0 for an ACPI power-off (as QEMU's process ends
    /// when its guest powers off). A guest reboot is not a power-off, so it
    /// gets its own status: a script can tell `reboot` from `poweroff`.
    pub fn exit_status(self) -> i32 {
        match self {
            RunOutcome::PowerOff => 0,
            RunOutcome::Exit(v) => (((v << 1) | 1) & 0xFF) as i32,
            RunOutcome::MaxInstructions => 124,
            RunOutcome::HaltedForever { .. } | RunOutcome::HaltedNoInterruptSource { .. } => 3,
            RunOutcome::TripleFault { .. } => 4,
            RunOutcome::GuestReset => 5,
        }
    }

    /// One line saying what happened, for the end-of-run summary.
    pub fn describe(self) -> String {
        match self {
            RunOutcome::Exit(v) => format!(
                "guest wrote {v:#x} to the exit port 0xF4 (exit status {})",
                self.exit_status()
            ),
            RunOutcome::MaxInstructions => "instruction limit reached (--max-instructions)".to_string(),
            RunOutcome::PowerOff => {
                "guest powered the machine off (ACPI S5 through PM1a_CNT; exit status 0)".to_string()
            }
            RunOutcome::HaltedForever { cs, eip } => format!(
                "CPU halted with interrupts disabled at {cs:04X}:{:04X}: nothing can wake it",
                eip.wrapping_sub(1)
            ),
            RunOutcome::HaltedNoInterruptSource { cs, eip } => format!(
                "CPU halted at {cs:04X}:{:04X} with interrupts enabled, but no device on this board \
                 will interrupt (every IRQ masked or no timer running): nothing can wake it",
                eip.wrapping_sub(1)
            ),
            RunOutcome::GuestReset => "guest asked for a reset (8042 0xFE, port 0x92 or 0xCF9); \
                 the machine was not reset (--no-reboot; exit status 5)"
                .to_string(),
            RunOutcome::TripleFault { vector, cs, eip } => format!(
                "triple fault at {cs:04X}:{eip:08X} (last exception: vector {vector}); \
                 the guest was not reset (--no-reboot)"
            ),
        }
    }
}

/// Counters of one machine since power-on.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Instructions retired.
    pub instructions: u64,
    /// Virtual clock, in cycles.
    pub cycles: u64,
    /// Cycles skipped while the CPU waited in HLT for a device event.
    pub idle_cycles: u64,
    /// External interrupts the CPU took.
    pub interrupts: u64,
    /// Resets (triple faults and guest-requested resets).
    pub resets: u64,
    /// Host time spent inside [`Machine::run`].
    pub host_time: Duration,
    /// Decoded-instruction cache hits.
    pub decode_hits: u64,
    /// Decoded-instruction cache misses.
    pub decode_misses: u64,
}

impl Stats {
    /// Guest instructions per host second, in millions.
    pub fn mips(&self) -> f64 {
        let s = self.host_time.as_secs_f64();
        if s > 0.0 {
            self.instructions as f64 / s / 1e6
        } else {
            0.0
        }
    }

    /// Host nanoseconds per guest instruction.
    pub fn ns_per_instruction(&self) -> f64 {
        if self.instructions > 0 {
            self.host_time.as_secs_f64() * 1e9 / self.instructions as f64
        } else {
            0.0
        }
    }
}

/// A PC: CPU, memory and board.
pub struct Machine {
    /// The processor (owns guest memory as `cpu.mem`).
    pub cpu: Cpu,
    /// The board.
    pub pc: Pc,
    resets: u64,
    host_time: Duration,
    pace: Pace,
    /// Host instant and cycle count at which pacing started.
    pace_origin: Option<(Instant, u64)>,
    /// Virtual cycles skipped while halted.
    idle_cycles: u64,
    /// End the run on a triple fault instead of resetting.
    no_reboot: bool,
    /// The host side of our BIOS, when the ROM is ours: it services the
    /// ROM's hypercalls (port 0xE0). `None` with any other firmware, whose
    /// writes to that port are then ignored.
    pub bios: Option<ringside_bios::Bios>,
    /// Where our BIOS's log goes (a host resource: not in snapshots).
    pub bios_log: BiosLog,
    /// The chipset's PAM registers as last applied to memory (shadow RAM
    /// over the ROM).
    pam: [u8; 7],
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("cpu", &self.cpu)
            .field("pc", &self.pc)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// A machine with `rom` as its system ROM (64, 128 or 256 KiB).
    pub fn new(rom: Vec<u8>, config: MachineConfig) -> Result<Machine, MachineError> {
        let bios = ringside_bios::is_ours(&rom).then(ringside_bios::Bios::new);
        let mut mem = PhysMem::pc(config.memory_mib, rom)?;
        if let Some(vga_rom) = &config.vga_rom {
            mem.add_option_rom(VGA_ROM_BASE, vga_rom.clone())?;
        }
        // The VGA's memory window goes to the board (devices::vga).
        mem.add_mmio(
            ringside_devices::vga::WINDOW_BASE,
            ringside_devices::vga::WINDOW_LAST,
        );
        // The standard VGA's video memory (its frame buffer and VBE bank
        // window are mapped by `apply_vbe`).
        mem.set_video_memory_size(ringside_devices::vga::dispi::VIDEO_MEMORY_BYTES as usize);
        let clock = Clock::new(config.cpu_hz);
        let pc = Pc::new(PcConfig {
            console: config.console,
            extra_post_port: config.extra_post_port,
            clock,
            cmos: CmosConfig {
                memory_bytes: config.memory_mib as u64 * 1024 * 1024,
                boot_order: config.boot_order,
                start: config.rtc_start,
                fpu: true,
            },
            com1: config.com1,
            ..PcConfig::default()
        });
        let mut pc = pc;
        if bios.is_none() {
            // Third-party firmware (SeaBIOS) finds our ACPI tables through
            // QEMU's fw_cfg interface; our own BIOS builds them itself.
            pc.fwcfg.enable();
            for (name, data) in ringside_bios::acpi::fw_cfg_files() {
                pc.fwcfg.add_file(name, data);
            }
            // The VGA BIOS as the PCI VGA function's ROM: SeaBIOS deploys a
            // fw_cfg file named "pciVVVV,DDDD.rom" as that device's option
            // ROM (instead of reading a ROM BAR) and runs its init with the
            // device's bus/device/function in AX, so a PCI-aware VGA BIOS
            // (vgabios-stdvga) finds the frame buffer where SeaBIOS put
            // BAR0. It copies the image to 0xC0000.
            if let Some(vga_rom) = config.vga_rom {
                pc.fwcfg.add_file("pci1234,1111.rom", vga_rom);
            }
        }
        let mut m = Machine {
            cpu: Cpu::new(mem),
            pc,
            resets: 0,
            host_time: Duration::ZERO,
            pace: config.pace,
            pace_origin: None,
            idle_cycles: 0,
            no_reboot: config.no_reboot,
            bios,
            bios_log: config.bios_log,
            pam: [0; 7],
        };
        m.apply_a20();
        m.apply_vbe();
        Ok(m)
    }

    /// A machine with our own BIOS ([`ringside_bios::rom`]) as its ROM.
    pub fn with_our_bios(config: MachineConfig) -> Result<Machine, MachineError> {
        Machine::new(ringside_bios::rom(), config)
    }

    /// A machine whose system ROM is read from `path`.
    pub fn from_rom_file(path: &Path, config: MachineConfig) -> Result<Machine, MachineError> {
        let rom = load_rom(path)?;
        Machine::new(rom, config)
    }

    /// Run until the guest exits, halts for good, or a limit is reached.
    ///
    /// A triple fault resets the machine and carries on, as a PC (and QEMU
    /// without `-no-reboot`) does; so does a reset through port 0x92.
    pub fn run(&mut self, limits: RunLimits) -> RunOutcome {
        let start = Instant::now();
        self.pace_origin = None;
        let outcome = self.run_inner(limits);
        self.host_time += start.elapsed();
        if let Err(e) = self.pc.flush() {
            log::warn!("debug console or serial port: {e}");
        }
        if let Err(e) = self.bios_log.flush() {
            log::warn!("BIOS log: {e}");
        }
        outcome
    }

    fn run_inner(&mut self, limits: RunLimits) -> RunOutcome {
        loop {
            if let Some(v) = self.pc.exit_request() {
                return RunOutcome::Exit(v);
            }
            let budget = match limits.max_instructions {
                Some(max) if self.cpu.instructions >= max => return RunOutcome::MaxInstructions,
                Some(max) => (max - self.cpu.instructions).min(SLICE_INSTRUCTIONS),
                None => SLICE_INSTRUCTIONS,
            };
            if let Some(outcome) = self.slice(budget, None, false) {
                return outcome;
            }
        }
    }

    /// One slice of the run loop: service the devices, run the CPU for at
    /// most `budget` instructions (one instruction with `single`, for the
    /// debugger's stepping) up to the next device deadline, then apply what
    /// the board asked for. `Some` when the run is over. With `ports` the
    /// CPU's port accesses go through the debugger's port catch.
    pub(crate) fn slice(
        &mut self,
        budget: u64,
        ports: Option<&mut debugger::PortCatch>,
        single: bool,
    ) -> Option<RunOutcome> {
        if self.pc.power_off_requested() {
            return Some(RunOutcome::PowerOff);
        }
        // Devices first: whatever fell due during the last slice (or the
        // skipped idle time) happens before the next instruction.
        self.pc.set_now(self.cpu.cycles);
        if self.pc.service() {
            self.cpu.poll_interrupts();
        }
        let mut deadline = self.cpu.cycles.saturating_add(SLICE_CYCLES);
        if let Some(at) = self.pc.next_event() {
            deadline = deadline.min(at);
        }
        if self.pace == Pace::Realtime {
            deadline = deadline.min(self.pace());
        }
        let stop = match ports {
            Some(catch) => {
                let mut bus = catch.bus(&mut self.pc);
                if single {
                    self.cpu.step(&mut bus)
                } else {
                    self.cpu.run(&mut bus, deadline, budget)
                }
            }
            None if single => self.cpu.step(&mut self.pc),
            None => self.cpu.run(&mut self.pc, deadline, budget),
        };
        // FERR# from the x87 (CR0.NE=0 error reporting) is IRQ13 on a PC.
        self.pc.set_ferr(self.cpu.fpu.ferr());
        match stop {
            // A single step leaves port and A20 requests for the board too.
            StopReason::Budget if single => {
                if let Some(o) = self.service_board() {
                    return Some(o);
                }
            }
            StopReason::Budget => {}
            StopReason::Yield => {
                if let Some(o) = self.service_board() {
                    return Some(o);
                }
                if self.pc.power_off_requested() {
                    return Some(RunOutcome::PowerOff);
                }
            }
            StopReason::Halted => {
                if let Some(o) = self.service_board() {
                    return Some(o);
                }
                if self.pc.power_off_requested() {
                    return Some(RunOutcome::PowerOff);
                }
                if self.pc.exit_request().is_some() || !self.cpu.is_halted() {
                    return None;
                }
                let cs = self.cpu.segs[ringside_cpu::SegReg::Cs as usize].selector;
                let eip = self.cpu.eip;
                if self.cpu.eflags() & IF_FLAG == 0 {
                    return Some(RunOutcome::HaltedForever { cs, eip });
                }
                // IF=1: only a device event can wake the CPU, so the clock
                // skips straight to the next one. With every IRQ masked or
                // nothing scheduled, nothing ever will, and waiting would
                // hang the host.
                match self.pc.next_event() {
                    Some(at) if self.pc.can_interrupt() => {
                        if at > self.cpu.cycles {
                            self.idle_cycles += at - self.cpu.cycles;
                            self.cpu.cycles = at;
                        }
                    }
                    _ => return Some(RunOutcome::HaltedNoInterruptSource { cs, eip }),
                }
            }
            StopReason::Shutdown if self.no_reboot => {
                let vector = self.cpu.last_exception.map_or(0xFF, |f| f.vector);
                let cs = self.cpu.segs[ringside_cpu::SegReg::Cs as usize].selector;
                return Some(RunOutcome::TripleFault {
                    vector,
                    cs,
                    eip: self.cpu.eip,
                });
            }
            StopReason::Shutdown => {
                let what = self
                    .cpu
                    .last_exception
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "?".into());
                // A guest that faults at every boot resets forever (as on
                // QEMU); say so a few times, not a million.
                let level = if self.resets < MAX_RESET_WARNINGS {
                    log::Level::Warn
                } else {
                    log::Level::Debug
                };
                log::log!(
                    level,
                    "triple fault (last exception {what}) at instruction {}: resetting the machine{}",
                    self.cpu.instructions,
                    if self.resets + 1 == MAX_RESET_WARNINGS { " (further resets are logged at debug level)" } else { "" }
                );
                self.reset();
            }
        }
        None
    }

    /// Under [`Pace::Realtime`]: sleep while virtual time is ahead of the
    /// host's; returns the cycle the next slice may run to.
    fn pace(&mut self) -> u64 {
        let hz = self.pc.clock().cpu_hz();
        let now = self.cpu.cycles;
        let (origin, base) = *self.pace_origin.get_or_insert((Instant::now(), now));
        let virtual_ns = self.pc.clock().cycles_to_ns(now - base);
        let host = origin.elapsed();
        let ahead = Duration::from_nanos(virtual_ns).saturating_sub(host);
        if ahead > PACE_SLACK {
            std::thread::sleep(ahead);
        }
        // Slices of at most a millisecond keep the pacing smooth.
        now.saturating_add(hz / 1000)
    }

    /// Apply what the board asked for since the last slice. `Some` when a
    /// guest-requested reset ends the run (`no_reboot`).
    fn service_board(&mut self) -> Option<RunOutcome> {
        if let Some(service) = self.pc.take_hypercall() {
            self.hypercall(service);
        }
        // A floppy command waiting for ISA DMA (the CPU yields after every
        // port access, so it runs right after the OUT that started it or
        // unmasked its channel).
        if self.pc.dma_pending() {
            self.pc.run_dma(&mut self.cpu.mem);
            self.cpu.poll_interrupts();
        }
        if self.pc.take_reset_request() {
            if self.no_reboot {
                log::info!("guest requested a reset (port 0x92, 0xCF9 or 8042): ending the run (--no-reboot)");
                return Some(RunOutcome::GuestReset);
            }
            let cs = self.cpu.segs[ringside_cpu::SegReg::Cs as usize];
            log::info!(
                "guest requested a reset (port 0x92, 0xCF9 or 8042) at {:04X}:{:08X} (linear {:08X}): resetting the machine",
                cs.selector,
                self.cpu.eip,
                cs.base.wrapping_add(self.cpu.eip)
            );
            self.reset();
            return None;
        }
        self.apply_a20();
        self.apply_pam();
        self.apply_smram();
        self.apply_vbe();
        None
    }

    /// The VGA's video memory as the guest programmed it: the linear frame
    /// buffer where PCI BAR0 points (while memory decoding is on), the VBE
    /// bank in the 0xA0000 window while a packed-pixel VBE mode is on, and
    /// the clear an enable asked for. Runs after every port write (the CPU
    /// yields after each), so the next instruction sees the new mapping.
    fn apply_vbe(&mut self) {
        if let Some(n) = self.pc.vga.dispi_mut().take_clear() {
            let vram = self.cpu.mem.video_memory_mut();
            let n = (n as usize).min(vram.len());
            vram[..n].fill(0);
        }
        let lfb = self.pc.pci.vga_lfb_base();
        if self.cpu.mem.lfb_base() != lfb {
            self.cpu.mem.map_lfb(lfb);
        }
        let window = self.pc.vga.dispi().window_offset();
        if self.cpu.mem.vram_window() != window {
            self.cpu.mem.map_vram_window(window);
        }
    }

    /// The screen as the monitor shows it now (legacy VGA modes and VBE
    /// modes alike).
    pub fn frame(&self) -> ringside_devices::vga::Frame {
        self.pc.vga.render_with(self.cpu.mem.video_memory())
    }

    /// A byte was written to the BIOS service port: run that service if
    /// our BIOS's own code asked (the CPU stopped right after the `OUT`).
    fn hypercall(&mut self, service: u8) {
        match self.bios.as_mut() {
            Some(bios) => {
                let at = self.cpu.segs[ringside_cpu::SegReg::Cs as usize]
                    .base
                    .wrapping_add(self.cpu.eip);
                let routine = ringside_bios::symbolize(at).map_or("?", |(name, _)| name);
                let honoured = bios.hypercall(service, &mut self.cpu, &mut self.pc)
                    != ringside_bios::HypercallOutcome::Refused;
                let said = bios.take_log();
                if !said.is_empty() {
                    self.bios_log.write(&said);
                }
                if !honoured {
                    log::debug!("write to the BIOS service port refused (not from the BIOS ROM)");
                }
                self.cpu.notify(ringside_cpu::Event::Hypercall {
                    service,
                    routine,
                    honoured,
                });
            }
            None => log::trace!("write to port 0xE0 ignored: the ROM is not our BIOS"),
        }
    }

    /// Shadow RAM: a PAM region whose write-enable bit (WE, bit 1 of its
    /// nibble) is set takes writes into the ROM's RAM copy; without it the
    /// copy is read-only, as the ROM. (Reads always see the copy: firmware
    /// that shadows itself copies the ROM there first, and until it writes,
    /// the copy is the ROM image.)
    fn apply_pam(&mut self) {
        let pam = self.pc.pci.pam();
        if pam == self.pam {
            return;
        }
        self.pam = pam;
        let we = |nibble: u8| nibble & 0x2 != 0;
        self.cpu
            .mem
            .set_rom_writable(0xF_0000, 0xF_FFFF, we(pam[0] >> 4));
        for i in 0..12u32 {
            let reg = pam[1 + i as usize / 2];
            let nibble = if i % 2 == 0 { reg & 0xF } else { reg >> 4 };
            let base = 0xC_0000 + i * 0x4000;
            self.cpu
                .mem
                .set_rom_writable(base, base + 0x3FFF, we(nibble));
        }
    }

    /// SMRAM: the host bridge's SMRAM register decides, with the CPU's
    /// SMM state (which the CPU gives the memory map itself on SMI and
    /// RSM), whether 0xA0000-0xBFFFF is the VGA or the RAM beneath.
    fn apply_smram(&mut self) {
        self.cpu.mem.set_smram_control(self.pc.pci.smram_control());
    }

    fn apply_a20(&mut self) {
        let want = self.pc.a20_enabled();
        if self.cpu.mem.a20_enabled() != want {
            self.cpu.mem.set_a20(want);
        }
    }

    /// System reset: CPU and board back to their reset state; RAM keeps its
    /// contents (a warm reset, as the reset line does on a PC).
    pub fn reset(&mut self) {
        self.resets += 1;
        if let Some(bios) = self.bios.as_mut() {
            *bios = ringside_bios::Bios::new();
        }
        self.pc.reset();
        self.apply_a20();
        self.apply_vbe();
        // The PAM registers are clear again: the ROM reads as the ROM.
        self.cpu.mem.restore_rom();
        self.pam = [0; 7];
        self.cpu.reset();
        self.apply_smram();
    }

    /// The last POST code the guest wrote, if any.
    pub fn last_post_code(&self) -> Option<u8> {
        self.pc.debug.last_post_code()
    }

    /// Counters since power-on.
    pub fn stats(&self) -> Stats {
        Stats {
            instructions: self.cpu.instructions,
            cycles: self.cpu.cycles,
            idle_cycles: self.idle_cycles,
            interrupts: self.cpu.interrupts_delivered,
            resets: self.resets,
            host_time: self.host_time,
            decode_hits: self.cpu.decode_cache.hits,
            decode_misses: self.cpu.decode_cache.misses,
        }
    }

    /// The end-of-run summary lines every run prints to stderr.
    pub fn summary_lines(&self) -> [String; 2] {
        let post = match self.last_post_code() {
            Some(c) => format!("{c:02X}"),
            None => "none".to_string(),
        };
        [
            format!("last POST code: {post}"),
            format!("instructions executed: {}", self.cpu.instructions),
        ]
    }
}

/// EFLAGS.IF.
const IF_FLAG: u32 = 1 << 9;

/// Read a ROM image and check its size, naming the file in any error.
pub fn load_rom(path: &Path) -> Result<Vec<u8>, MachineError> {
    let err = |source| MachineError::RomRead {
        path: path.to_path_buf(),
        source,
    };
    // Check the size before reading, so a huge file is not read whole.
    let meta = std::fs::metadata(path).map_err(err)?;
    if meta.is_dir() {
        return Err(err(std::io::Error::other("is a directory")));
    }
    if !ROM_SIZES.contains(&(meta.len() as usize)) || meta.len() > u32::MAX as u64 {
        return Err(MachineError::RomSize {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let rom = std::fs::read(path).map_err(err)?;
    if !ROM_SIZES.contains(&rom.len()) {
        // The file changed between the two looks.
        return Err(MachineError::RomSize {
            path: path.to_path_buf(),
            size: rom.len() as u64,
        });
    }
    Ok(rom)
}

/// Open the debug console named on a command line: `stdio`, `null`, or a
/// file path.
pub fn console_from_arg(arg: &str) -> Result<Console, MachineError> {
    match arg {
        "stdio" => Ok(Console::Stdout),
        "null" => Ok(Console::Null),
        path => Console::create_file(Path::new(path)).map_err(|source| MachineError::Console {
            path: PathBuf::from(path),
            source,
        }),
    }
}

/// Open the serial back-end named on a command line (as QEMU's
/// `-serial`): `stdio`, `null`, or `file:PATH`.
pub fn serial_from_arg(arg: &str) -> Result<SerialBackend, MachineError> {
    match arg {
        "stdio" => Ok(SerialBackend::stdio()),
        "null" | "none" => Ok(SerialBackend::Null),
        _ => {
            let path = arg.strip_prefix("file:").unwrap_or(arg);
            SerialBackend::create_file(Path::new(path)).map_err(|source| MachineError::Serial {
                path: PathBuf::from(path),
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests;
