//! Snapshots of the whole machine (serde + postcard): the processor and
//! memory ([`ringside_cpu::snapshot::CpuState`]), every device of the board
//! (the disks' overlays included, not their image files), our BIOS's host
//! side, and the machine's own counters. What a snapshot leaves out is the
//! host's: consoles and serial ports' host ends, image files, pacing, the
//! debugger's breakpoints and observers, the TLB and the decode cache.
//!
//! A restore onto a machine with a different memory size is refused.
//! Writes a guest made through to an image file (not `--snapshot`) are not
//! undone by a restore.

use ringside_bios::Bios;
use ringside_cpu::snapshot::CpuState;
use ringside_devices::Pc;
use ringside_mmu::snapshot::{MemState, RamRef};
use serde::{Deserialize, Serialize};

use crate::Machine;

/// The postcard format's version tag, first in every snapshot.
const FORMAT: u32 = 2;

#[derive(Serialize)]
struct SavedRef<'a> {
    format: u32,
    cpu: CpuState<MemState<RamRef<'a>>>,
    pc: &'a Pc,
    bios: &'a Option<Bios>,
    resets: u64,
    idle_cycles: u64,
}

#[derive(Deserialize)]
struct Saved<'a> {
    format: u32,
    #[serde(borrow)]
    cpu: CpuState<MemState<RamRef<'a>>>,
    pc: Pc,
    bios: Option<Bios>,
    resets: u64,
    idle_cycles: u64,
}

/// A snapshot could not be taken or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Serializing failed (should not happen).
    #[error("cannot save the machine's state: {0}")]
    Save(String),
    /// The bytes are not a snapshot of ours, or of another version.
    #[error("not a machine snapshot of this version: {0}")]
    Format(String),
    /// The snapshot does not fit this machine (e.g. memory size).
    #[error("the snapshot does not fit this machine: {0}")]
    Mismatch(String),
}

impl Machine {
    /// The machine's state as postcard bytes.
    pub fn save_snapshot(&self) -> Result<Vec<u8>, SnapshotError> {
        let s = SavedRef {
            format: FORMAT,
            cpu: self.cpu.save_state(),
            pc: &self.pc,
            bios: &self.bios,
            resets: self.resets,
            idle_cycles: self.idle_cycles,
        };
        // One copy of RAM: into a buffer sized for it (zeroed pages cost
        // nothing until written), the rest of the state being small.
        let mut buf = vec![0u8; self.cpu.mem.ram_size() + (16 << 20)];
        match postcard::to_slice(&s, &mut buf) {
            Ok(used) => {
                let n = used.len();
                buf.truncate(n);
                Ok(buf)
            }
            // Disk overlays larger than the spare room: the growing way.
            Err(_) => postcard::to_stdvec(&s).map_err(|e| SnapshotError::Save(e.to_string())),
        }
    }

    /// Make the machine what `bytes` ([`Machine::save_snapshot`]) says.
    /// On an error nothing has changed.
    pub fn restore_snapshot(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let s: Saved<'_> =
            postcard::from_bytes(bytes).map_err(|e| SnapshotError::Format(e.to_string()))?;
        if s.format != FORMAT {
            return Err(SnapshotError::Format(format!(
                "format {} (this build reads {FORMAT})",
                s.format
            )));
        }
        if s.bios.is_some() != self.bios.is_some() {
            return Err(SnapshotError::Mismatch(
                "one has our BIOS, the other another ROM".into(),
            ));
        }
        self.cpu
            .restore_state(&s.cpu)
            .map_err(SnapshotError::Mismatch)?;
        self.pc.restore(s.pc);
        ringside_cpu::Bus::sync_time(&mut self.pc, self.cpu.cycles);
        self.bios = s.bios;
        self.resets = s.resets;
        self.idle_cycles = s.idle_cycles;
        self.apply_a20();
        self.apply_vbe();
        self.restart_pacing();
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Console, MachineConfig, RunLimits};

    fn config() -> MachineConfig {
        MachineConfig {
            memory_mib: 16,
            console: Console::Capture(Vec::new()),
            ..MachineConfig::default()
        }
    }

    fn run_to(m: &mut Machine, instructions: u64) {
        let out = m.run(RunLimits {
            max_instructions: Some(instructions),
        });
        assert_eq!(
            out,
            crate::RunOutcome::MaxInstructions,
            "{}",
            out.describe()
        );
    }

    /// Save at `a`, run on to `b`; restore and run to `b` again: the same
    /// bytes, and the restore itself gives back exactly the saved bytes.
    fn round_trip(mut m: Machine, a: u64, b: u64) -> Machine {
        run_to(&mut m, a);
        let at_a = m.save_snapshot().unwrap();
        run_to(&mut m, b);
        let at_b = m.save_snapshot().unwrap();
        assert_eq!(m.cpu.instructions, b);
        assert_ne!(at_a, at_b);
        m.restore_snapshot(&at_a).unwrap();
        assert_eq!(m.cpu.instructions, a);
        assert!(
            m.save_snapshot().unwrap() == at_a,
            "restore changed the state"
        );
        run_to(&mut m, b);
        assert!(
            m.save_snapshot().unwrap() == at_b,
            "the replay from the snapshot diverged"
        );
        m
    }

    /// A boot sector that loops: INT 13h reads sector 3, bumps a word in
    /// it, writes it back (to the disk's overlay), HLT until the timer.
    pub(crate) fn disk_loop() -> Vec<u8> {
        let code: &[u8] = &[
            0x31, 0xC0, // xor ax, ax
            0x8E, 0xD8, // mov ds, ax
            0x8E, 0xC0, // mov es, ax
            0xFB, // sti
            0xB8, 0x01, 0x02, // loop: mov ax, 0201h
            0xBB, 0x00, 0x80, // mov bx, 8000h
            0xB9, 0x03, 0x00, // mov cx, 3
            0xBA, 0x80, 0x00, // mov dx, 80h
            0xCD, 0x13, // int 13h
            0xFF, 0x06, 0x00, 0x80, // inc word [8000h]
            0xB8, 0x01, 0x03, // mov ax, 0301h
            0xB9, 0x03, 0x00, // mov cx, 3
            0xCD, 0x13, // int 13h
            0xF4, // hlt
            0xEB, 0xE3, // jmp loop
        ];
        let mut img = vec![0u8; 64 * 512];
        img[..code.len()].copy_from_slice(code);
        img[510] = 0x55;
        img[511] = 0xAA;
        img
    }

    /// Our BIOS booting [`disk_loop`] from a copy-on-write disk.
    pub(crate) fn disk_loop_machine(tag: &str) -> Machine {
        use crate::disk::{Disk, DiskMode};
        use crate::ide::DeviceKind;
        let path =
            std::env::temp_dir().join(format!("ringside-snap-{}-{tag}.img", std::process::id()));
        std::fs::write(&path, disk_loop()).unwrap();
        let mut m = Machine::with_our_bios(config()).unwrap();
        m.pc.ide.attach(
            0,
            0,
            DeviceKind::Disk,
            Disk::open(&path, DiskMode::Snapshot).unwrap(),
        );
        let _ = std::fs::remove_file(&path);
        m
    }

    #[test]
    fn our_bios_timer_and_disk_writes_replay_bit_for_bit_from_a_snapshot() {
        let m = disk_loop_machine("replay");
        // Some loops done at the snapshot, many more after it.
        let m = round_trip(m, 400_000, 1_500_000);
        // The loop ran many times, and through the timer.
        let count = u16::from_le_bytes([m.cpu.mem.ram()[0x8000], m.cpu.mem.ram()[0x8001]]);
        assert!(count > 20, "{count} loops; {:?}", m.cpu);
        assert!(m.cpu.interrupts_delivered > 20);
    }

    #[test]
    fn floppy_dma_and_irq6_replay_bit_for_bit_from_a_snapshot() {
        use crate::disk::{Disk, DiskMode};
        // The same loop on diskette drive 00h: our BIOS drives the floppy
        // controller and DMA channel 2 for it.
        let mut img = disk_loop();
        img[17] = 0x00; // mov dx, 0000h
        img.resize(1_474_560, 0);
        let path =
            std::env::temp_dir().join(format!("ringside-snap-{}-floppy.img", std::process::id()));
        std::fs::write(&path, &img).unwrap();
        let mut m = Machine::with_our_bios(MachineConfig {
            boot_order: vec![crate::BootDevice::Floppy],
            ..config()
        })
        .unwrap();
        m.pc.attach_floppy(0, Disk::open(&path, DiskMode::Snapshot).unwrap(), false)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let m = round_trip(m, 400_000, 1_500_000);
        let count = u16::from_le_bytes([m.cpu.mem.ram()[0x8000], m.cpu.mem.ram()[0x8001]]);
        assert!(count > 20, "{count} loops");
        // INT 0Eh ran for the controller's interrupts (40:3E bit 7).
        assert_eq!(m.cpu.mem.ram()[0x43E] & 0x80, 0x80);
    }

    #[test]
    fn protected_mode_tasks_and_v86_replay_bit_for_bit() {
        let m = Machine::new(ringside_roms::PMTEST.to_vec(), config()).unwrap();
        round_trip(m, 300, 3_000);
    }

    #[test]
    fn bad_bytes_and_other_machines_are_errors_not_panics() {
        let mut m = Machine::with_our_bios(config()).unwrap();
        run_to(&mut m, 1000);
        let good = m.save_snapshot().unwrap();
        let before = m.save_snapshot().unwrap();
        for bad in [&[][..], &[1, 2, 3][..], &good[..good.len() / 2]] {
            assert!(m.restore_snapshot(bad).is_err());
        }
        let mut wrong = good.clone();
        wrong[0] = 9;
        assert!(matches!(
            m.restore_snapshot(&wrong),
            Err(SnapshotError::Format(_))
        ));
        assert!(m.save_snapshot().unwrap() == before);
        let mut bigger = Machine::with_our_bios(MachineConfig {
            memory_mib: 32,
            ..config()
        })
        .unwrap();
        assert!(matches!(
            bigger.restore_snapshot(&good),
            Err(SnapshotError::Mismatch(_))
        ));
        let mut other_rom = Machine::new(ringside_roms::PMTEST.to_vec(), config()).unwrap();
        assert!(other_rom.restore_snapshot(&good).is_err());
    }
}

#[cfg(test)]
mod vbe {
    use crate::{Console, Machine, MachineConfig};
    use ringside_cpu::Bus;
    use ringside_devices::vga::dispi::{enable, reg};

    fn dispi(m: &mut Machine, index: u16, v: u16) {
        m.pc.io_write(0x1CE, 2, index as u32);
        m.pc.io_write(0x1CF, 2, v as u32);
    }

    /// A VBE mode, its bank and frame buffer contents and their mapping
    /// come back with a snapshot: the frame and the guest's view of both
    /// windows are the saved ones.
    #[test]
    fn vbe_state_and_video_memory_round_trip() {
        let mut m = Machine::with_our_bios(MachineConfig {
            memory_mib: 16,
            console: Console::Capture(Vec::new()),
            ..MachineConfig::default()
        })
        .unwrap();
        dispi(&mut m, reg::XRES, 800);
        dispi(&mut m, reg::YRES, 600);
        dispi(&mut m, reg::BPP, 32);
        dispi(&mut m, reg::ENABLE, enable::ENABLED | enable::LFB);
        dispi(&mut m, reg::BANK, 2);
        m.service_board();
        let lfb = m.pc.pci.vga_lfb_base().unwrap();
        assert!(m.cpu.mem.write_u32(lfb + 4 * 801, 0x00AB_CDEF));
        assert!(m.cpu.mem.write_u32(0xA0010, 0x0012_3456));
        let saved = m.save_snapshot().unwrap();
        let frame = m.frame();
        assert_eq!(frame.pixel(1, 1), [0xAB, 0xCD, 0xEF, 0xFF]);

        dispi(&mut m, reg::ENABLE, 0);
        m.service_board();
        assert!(m.cpu.mem.write_u32(lfb + 4 * 801, 0));
        assert_eq!(m.cpu.mem.read_u8(0xA0010), None, "window back to the VGA");
        assert_ne!(m.frame(), frame);

        m.restore_snapshot(&saved).unwrap();
        assert_eq!(m.frame(), frame);
        assert_eq!(
            m.cpu.mem.read_u32(0xA0010),
            Some(0x0012_3456),
            "bank 2 again"
        );
        assert_eq!(m.cpu.mem.read_u32(lfb + 0x2_0010), Some(0x0012_3456));
        assert_eq!(m.pc.vga.dispi().geometry(), (800, 600, 32));
    }
}

#[cfg(test)]
mod timing {
    #[test]
    #[ignore = "timing, run by hand"]
    fn snapshot_of_128_mib() {
        let m = crate::Machine::with_our_bios(crate::MachineConfig::default()).unwrap();
        let t = std::time::Instant::now();
        let b = m.save_snapshot().unwrap();
        eprintln!("save: {:?} for {} bytes", t.elapsed(), b.len());
        let mut m2 = crate::Machine::with_our_bios(crate::MachineConfig::default()).unwrap();
        let t = std::time::Instant::now();
        m2.restore_snapshot(&b).unwrap();
        eprintln!("restore: {:?}", t.elapsed());
    }
}
