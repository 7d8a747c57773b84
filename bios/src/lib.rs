//! Ringside's own PC BIOS.
//!
//! The ROM ([`rom`]) is assembled at build time from Rust with iced-x86's
//! `code_asm` (see `build.rs`): the POST and the small interrupt handlers
//! are x86 code a student can step through, named by [`SYMBOLS`]. The big
//! services (INT 10h, 13h, 14h, 15h, 16h, 17h, 1Ah, and the POST's device
//! detection and boot loader) are **hypercalls**: the ROM's stub executes
//! `OUT 0xE0, AL` with AL = the service number, and the machine, seeing
//! the port write, calls [`Bios::hypercall`] with the CPU (registers and
//! memory) and the board before the next instruction. That is
//! paravirtualization in one instruction: the guest-visible interface is
//! still the PC BIOS's, the implementation is the host's.
//!
//! # The hypercall port
//!
//! Port [`HYPERCALL_PORT`] (0xE0), byte writes only. It is honoured only
//! when the `OUT` is inside this ROM (F000:0000–F000:FFFF) and the CPU is in
//! real mode ([`Bios::hypercall`] checks CS:EIP); a guest's own write there
//! does nothing but count as refused. Conventions:
//!
//! - interrupt services (vector number as the service): the stub pushed the
//!   caller's AX, so the caller's AX is at SS:SP, the IRET frame
//!   (IP, CS, FLAGS) above it; results go into the registers, AX on the
//!   stack, CF/ZF into the frame's FLAGS;
//! - the host leaves the live ZF clear when the service is done, or sets
//!   it to ask the stub to `STI; HLT` and call again (waiting for a key or
//!   for time to pass);
//! - POST services (0xF0 and up) use the live registers and flags.
//!
//! Disk services reach the disks the way firmware does, through the IDE
//! controller's registers (polling, with the drive's interrupt off), so the
//! emulated controller stays the only owner of the images.

#![warn(missing_docs)]

pub mod acpi;
mod call;
mod disk;
mod floppy;
mod keyboard;
pub mod layout;
mod post;
mod serial;
mod system;
mod time;
mod vbe;
mod video;

use ringside_cpu::{Cpu, CpuMode, SegReg};
use ringside_devices::Pc;

pub use layout::HYPERCALL_PORT;
pub use video::text_screen;

use call::Call;

/// The assembled ROM, before the font is filled in.
static ROM_IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bios.bin"));

/// Linear addresses and names of the ROM's routines: each POST phase
/// (`post_pic`, `post_pit`, ...), each interrupt entry point
/// (`int13_disk`, ...), sorted by address, for the debugger.
pub static SYMBOLS: &[(u32, &str)] = include!(concat!(env!("OUT_DIR"), "/symbols.rs"));

/// The name of the routine `linear` is in (the nearest symbol at or below
/// it, within the ROM), and the offset from its start.
pub fn symbolize(linear: u32) -> Option<(&'static str, u32)> {
    if !(layout::ROM_BASE..layout::ROM_BASE + layout::ROM_SIZE as u32).contains(&linear) {
        return None;
    }
    let i = SYMBOLS.partition_point(|&(a, _)| a <= linear);
    let (a, name) = *SYMBOLS.get(i.checked_sub(1)?)?;
    Some((name, linear - a))
}

/// The BIOS ROM image (64 KiB), with our 8x16 font (the VGA's own) at
/// F000:A000 where INT 10h AX=1130h and INT 43h point, and the VBE data
/// at F000:B000.
pub fn rom() -> Vec<u8> {
    let mut rom = ROM_IMAGE.to_vec();
    let font = ringside_devices::vga::font_8x16();
    let at = layout::FONT_OFFSET as usize;
    rom[at..at + layout::FONT_BYTES].copy_from_slice(&font[..]);
    let vbe = vbe::rom_data();
    let at = layout::VBE_OFFSET as usize;
    rom[at..at + vbe.len()].copy_from_slice(&vbe);
    rom
}

/// Whether `rom` is our BIOS (by its signature): the machine enables
/// hypercalls only then.
pub fn is_ours(rom: &[u8]) -> bool {
    let at = layout::SIGNATURE_OFFSET as usize;
    rom.len() == layout::ROM_SIZE
        && rom.get(at..at + layout::SIGNATURE.len()) == Some(layout::SIGNATURE)
}

/// What became of one hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HypercallOutcome {
    /// The service ran.
    Serviced,
    /// The `OUT` did not come from the ROM in real mode: ignored.
    Refused,
}

/// One hypercall, as the trap log and the debugger show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HypercallRecord {
    /// Service number (the interrupt vector for the INT services).
    pub service: u8,
    /// AH of the caller (the function), for interrupt services.
    pub function: u8,
    /// CS of the `OUT`.
    pub cs: u16,
    /// IP of the `OUT`.
    pub ip: u32,
    /// Whether it ran.
    pub outcome: HypercallOutcome,
}

/// The drive an INT 13h number stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Drive {
    /// IDE channel (0 primary, 1 secondary).
    pub channel: u8,
    /// 0 master, 1 slave.
    pub slot: u8,
    /// ATAPI CD-ROM (2048-byte blocks) rather than an ATA disk.
    pub atapi: bool,
    /// Blocks on the medium.
    pub sectors: u64,
    /// Whether LBA48 commands are needed and supported.
    pub lba48: bool,
    /// BIOS (translated) geometry for CHS calls.
    pub cylinders: u16,
    /// Heads of the translated geometry.
    pub heads: u16,
    /// Sectors per track of the translated geometry.
    pub spt: u16,
}

/// The host side of our BIOS: the state its services keep between calls.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Bios {
    /// INT 13h hard disks 80h, 81h, ...
    pub(crate) disks: Vec<Drive>,
    /// CD-ROM drives E0h, E1h, ...
    pub(crate) cdroms: Vec<Drive>,
    /// Diskette drives 00h and 01h (from CMOS 10h), by their media.
    #[serde(default)]
    pub(crate) floppies: [Option<ringside_devices::fdc::FloppyType>; 2],
    /// The drive number we booted from.
    pub(crate) boot_drive: Option<u8>,
    /// RAM from 1 MiB up to the 4 GiB hole, in bytes (from CMOS).
    pub(crate) ram_below_4g: u64,
    /// Where the POST put the ACPI tables (RSDT, FADT, FACS, DSDT), if
    /// RAM was large enough.
    pub(crate) acpi_base: Option<u32>,
    /// RAM above 4 GiB, in bytes (from CMOS).
    pub(crate) ram_above_4g: u64,
    /// INT 15h AH=86h: the cycle the current wait ends at.
    pub(crate) wait_until: Option<u64>,
    /// Hypercalls serviced.
    pub serviced: u64,
    /// Hypercalls refused (not from the ROM, or not in real mode).
    pub refused: u64,
    /// The last hypercall (for the debugger and the trap log).
    pub last: Option<HypercallRecord>,
    /// The firmware's log written by the last services, until the machine
    /// takes it ([`Bios::take_log`]).
    #[serde(skip)]
    log: String,
}

impl Bios {
    /// A BIOS with no drives known yet (the POST finds them).
    pub fn new() -> Bios {
        Bios::default()
    }

    /// The firmware's log lines written since the last call (the POST
    /// banner, the drives found, the boot's progress and why it failed),
    /// for the machine's BIOS log channel.
    pub fn take_log(&mut self) -> String {
        std::mem::take(&mut self.log)
    }

    /// The guest wrote `service` to [`HYPERCALL_PORT`] and the CPU stopped
    /// right after that `OUT`. Run the service if the `OUT` came from our
    /// ROM in real mode; otherwise ignore it.
    pub fn hypercall(&mut self, service: u8, cpu: &mut Cpu, pc: &mut Pc) -> HypercallOutcome {
        let cs = cpu.segs[SegReg::Cs as usize];
        // `OUT imm8, AL` is two bytes; EIP is already past it.
        let ip = cpu.eip.wrapping_sub(2) & 0xFFFF;
        let linear = cs.base.wrapping_add(ip);
        let in_rom =
            (layout::ROM_BASE..layout::ROM_BASE + layout::ROM_SIZE as u32).contains(&linear);
        let from_rom = in_rom && cpu.mode() == CpuMode::Real;
        let mut record = HypercallRecord {
            service,
            function: 0,
            cs: cs.selector,
            ip,
            outcome: HypercallOutcome::Refused,
        };
        if !from_rom {
            self.refused += 1;
            log::debug!(
                "hypercall {service:#04x} refused: OUT at {:04X}:{ip:04X} is not in the BIOS ROM in real mode",
                cs.selector
            );
            self.last = Some(record);
            return HypercallOutcome::Refused;
        }
        let stub = service < svc_first_post();
        let mut c = Call::new(cpu, pc, stub);
        record.function = if stub { c.ah() } else { 0 };
        record.outcome = HypercallOutcome::Serviced;
        // The trap log's view of the paravirtual call (RUST_LOG=ringside_bios=debug).
        if log::log_enabled!(log::Level::Debug) {
            let routine = symbolize(linear).map_or("?", |(name, _)| name);
            log::debug!(
                "hypercall: service {service:02X}h AH={:02X}h from {:04X}:{ip:04X} ({routine})",
                record.function,
                cs.selector
            );
        }
        let again = match service {
            layout::svc::KEYBOARD_IRQ => {
                keyboard::irq(&mut c);
                false
            }
            layout::svc::VIDEO => {
                video::int10(&mut c);
                false
            }
            layout::svc::DISK => {
                disk::int13(self, &mut c);
                false
            }
            layout::svc::SERIAL => {
                serial::int14(&mut c);
                false
            }
            layout::svc::SYSTEM => system::int15(self, &mut c),
            layout::svc::KEYBOARD => keyboard::int16(&mut c),
            layout::svc::PRINTER => {
                serial::int17(&mut c);
                false
            }
            layout::svc::TIME => {
                time::int1a(&mut c);
                false
            }
            layout::svc::POST_INIT => {
                post::init(self, &mut c);
                false
            }
            layout::svc::POST_DISKS => {
                post::detect_disks(self, &mut c);
                false
            }
            layout::svc::BOOT => {
                post::boot(self, &mut c);
                false
            }
            layout::svc::NO_BOOT => {
                post::no_boot(&mut c);
                false
            }
            _ => {
                log::warn!("BIOS: unknown hypercall service {service:#04x}");
                false
            }
        };
        c.set_live_zf(again);
        self.log.push_str(&c.log);
        self.serviced += 1;
        self.last = Some(record);
        HypercallOutcome::Serviced
    }
}

/// The first POST-private service number: below it, services are called
/// through an interrupt stub (AX on the stack).
const fn svc_first_post() -> u8 {
    layout::svc::POST_INIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rom_has_reset_vector_signature_and_font() {
        let r = rom();
        assert_eq!(r.len(), 0x10000);
        assert_eq!(r[0xFFF0], 0xEA, "JMP FAR at the reset vector");
        assert!(is_ours(&r));
        let font = ringside_devices::vga::font_8x16();
        assert_eq!(
            &r[0xA000 + 16 * 65..0xA000 + 16 * 66],
            &font[16 * 65..16 * 66]
        );
    }

    #[test]
    fn the_port_matches_the_board() {
        assert_eq!(HYPERCALL_PORT, ringside_devices::pc::HYPERCALL_PORT);
    }

    #[test]
    fn symbols_name_post_phases_and_services() {
        for want in [
            "post_reset",
            "post_pic",
            "post_pit",
            "post_boot",
            "int13_disk",
            "int19_bootstrap",
        ] {
            assert!(SYMBOLS.iter().any(|(_, n)| *n == want), "{want} missing");
        }
        let (addr, _) = SYMBOLS.iter().find(|(_, n)| *n == "post_pic").unwrap();
        assert_eq!(symbolize(*addr + 1), Some(("post_pic", 1)));
        assert!(SYMBOLS.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(symbolize(0x7C00), None);
    }
}
