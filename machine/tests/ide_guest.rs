//! The disk guest (roms: `IDETEST`) on a whole machine: it drives the IDE
//! controller through the ATA registers and reports on port 0xE9; the test
//! checks its report and the image file afterwards.

use std::path::PathBuf;

use ringside_machine::disk::{Disk, DiskMode};
use ringside_machine::ide::DeviceKind;
use ringside_machine::{Console, Machine, MachineConfig, RunLimits, RunOutcome};

const SECTORS: usize = 64;

/// A temporary image file, removed on drop.
struct TempImage(PathBuf);

impl TempImage {
    fn new(tag: &str, bytes: &[u8]) -> TempImage {
        let p = std::env::temp_dir().join(format!(
            "ringside-ide-guest-{}-{tag}.img",
            std::process::id()
        ));
        std::fs::write(&p, bytes).unwrap();
        TempImage(p)
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn image() -> Vec<u8> {
    (0..SECTORS * 512)
        .map(|i| ((i / 512) * 37 + i * 3) as u8)
        .collect()
}

fn expected_output(img: &[u8]) -> String {
    let sum = img[4 * 512..5 * 512]
        .chunks(4)
        .map(|d| u32::from_le_bytes([d[0], d[1], d[2], d[3]]))
        .fold(0u32, u32::wrapping_add);
    format!(
        "Ringside disk guest: ATA PIO on the primary master\n\
         IDENTIFY model: {:<40}\n\
         LBA28 sectors: {SECTORS}\n\
         wrote LBA 5 (REP OUTSW), flushed\n\
         read LBA 4-5 (REP INSD): LBA 5 matches, LBA 4 sum {sum:08X}\n\
         read past the end: error register 0010\n\
         disk guest done\n",
        "RINGSIDE HARDDISK"
    )
}

fn run_guest(path: &std::path::Path, mode: DiskMode) -> (RunOutcome, String) {
    let config = MachineConfig {
        memory_mib: 2,
        console: Console::Capture(Vec::new()),
        ..MachineConfig::default()
    };
    let mut m = Machine::new(ringside_roms::IDETEST.to_vec(), config).unwrap();
    m.pc.ide
        .attach(0, 0, DeviceKind::Disk, Disk::open(path, mode).unwrap());
    let out = m.run(RunLimits {
        max_instructions: Some(2_000_000),
    });
    m.pc.ide.flush().unwrap();
    let text = String::from_utf8_lossy(m.pc.debug.captured().unwrap_or_default()).into_owned();
    (out, text)
}

#[test]
fn disk_guest_writes_and_reads_through_the_ata_registers() {
    let img = image();
    let f = TempImage::new("rw", &img);
    let (out, text) = run_guest(&f.0, DiskMode::ReadWrite);
    assert_eq!(text, expected_output(&img));
    assert_eq!(out, RunOutcome::Exit(0));
    let after = std::fs::read(&f.0).unwrap();
    assert_eq!(after.len(), img.len());
    let pattern: Vec<u8> = (0..512).map(|i| i as u8 ^ 0x5A).collect();
    assert_eq!(&after[5 * 512..6 * 512], &pattern[..], "the guest's sector");
    assert_eq!(&after[..5 * 512], &img[..5 * 512]);
    assert_eq!(&after[6 * 512..], &img[6 * 512..]);
}

#[test]
fn disk_guest_in_snapshot_mode_leaves_the_image_alone() {
    let img = image();
    let f = TempImage::new("snap", &img);
    let (out, text) = run_guest(&f.0, DiskMode::Snapshot);
    assert_eq!(text, expected_output(&img));
    assert_eq!(out, RunOutcome::Exit(0));
    assert_eq!(std::fs::read(&f.0).unwrap(), img, "base image unchanged");
}
