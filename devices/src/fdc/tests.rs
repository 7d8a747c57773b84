//! The controller driven through its ports and the DMA controller, the way
//! a BIOS or Linux's floppy driver programs it.

use super::*;
use crate::disk::testutil::TempFile;
use crate::disk::DiskMode;

const DOR: u16 = 0x3F2;
const MSR: u16 = 0x3F4;
const FIFO: u16 = 0x3F5;
const DIR: u16 = 0x3F7;

/// A flat 1 MiB of guest memory.
struct Flat(Vec<u8>);
impl DmaMemory for Flat {
    fn dma_read(&mut self, addr: u32) -> u8 {
        self.0.get(addr as usize).copied().unwrap_or(0xFF)
    }
    fn dma_write(&mut self, addr: u32, v: u8) {
        if let Some(b) = self.0.get_mut(addr as usize) {
            *b = v;
        }
    }
}

/// Each sector starts with its LBA (16 bits) and is filled with a pattern.
fn image(t: FloppyType) -> Vec<u8> {
    let mut v = vec![0u8; t.bytes() as usize];
    for (lba, s) in v.chunks_mut(512).enumerate() {
        for (i, b) in s.iter_mut().enumerate() {
            *b = (i as u32 * 7 + lba as u32) as u8;
        }
        s[0] = lba as u8;
        s[1] = (lba >> 8) as u8;
    }
    v
}

struct Rig {
    fdc: Fdc,
    dma: Dma,
    mem: Flat,
    _file: TempFile,
}

fn rig_with(t: FloppyType, mode: DiskMode, write_protected: bool) -> Rig {
    let f = TempFile::with_contents("fd", &image(t));
    let mut fdc = Fdc::new();
    let disk = Disk::open(f.path(), mode).unwrap();
    assert_eq!(fdc.attach(0, disk, write_protected).unwrap(), t);
    let mut r = Rig {
        fdc,
        dma: Dma::new(),
        mem: Flat(vec![0; 1 << 20]),
        _file: f,
    };
    r.reset_sequence();
    r
}

fn rig() -> Rig {
    rig_with(FloppyType::M1_44, DiskMode::ReadWrite, false)
}

impl Rig {
    fn out(&mut self, port: u16, v: u8) {
        self.fdc.write(port, v);
    }
    fn inb(&mut self, port: u16) -> u8 {
        self.fdc.read(port)
    }

    /// Write a command, each byte when MSR says RQM with DIO clear.
    fn command(&mut self, bytes: &[u8]) {
        for &b in bytes {
            assert_eq!(
                self.inb(MSR) & (MSR_RQM | MSR_DIO),
                MSR_RQM,
                "ready for {b:#x}"
            );
            self.out(FIFO, b);
        }
    }

    /// Read the result phase until the controller wants a command again.
    fn result(&mut self) -> Vec<u8> {
        let mut r = Vec::new();
        while self.inb(MSR) & (MSR_RQM | MSR_DIO) == MSR_RQM | MSR_DIO {
            assert_eq!(self.inb(MSR) & MSR_CB, MSR_CB);
            r.push(self.inb(FIFO));
            assert!(r.len() <= 10);
        }
        assert_eq!(self.inb(MSR), MSR_RQM, "idle after the result");
        r
    }

    fn sense(&mut self) -> Vec<u8> {
        self.command(&[0x08]);
        self.result()
    }

    /// DOR reset and release, then the four SENSE INTERRUPT STATUS.
    fn reset_sequence(&mut self) {
        self.out(DOR, 0x08);
        assert_eq!(self.inb(MSR), 0, "held in reset");
        self.out(DOR, 0x1C);
        assert!(self.fdc.irq_level(), "leaving reset interrupts");
        for d in 0..4u8 {
            assert_eq!(self.sense(), vec![0xC0 | d, 0]);
        }
        assert!(!self.fdc.irq_level());
        assert_eq!(self.sense(), vec![0x80], "nothing more to sense");
        self.command(&[0x03, 0xAF, 0x02]);
        self.out(DIR, 0x00); // 500 kbps
    }

    fn program_dma(&mut self, addr: u32, len: u32, mode: u8) {
        let count = len - 1;
        for (p, v) in [
            (0x0A, 0x06),
            (0x0C, 0),
            (0x04, addr as u8),
            (0x04, (addr >> 8) as u8),
            (0x0C, 0),
            (0x05, count as u8),
            (0x05, (count >> 8) as u8),
            (0x0B, mode),
            (0x81, (addr >> 16) as u8),
            (0x0A, 0x02),
        ] {
            self.dma.write(p, v);
        }
    }

    fn seek(&mut self, head: u8, cyl: u8) {
        self.command(&[0x0F, head << 2, cyl]);
        assert!(self.fdc.irq_level());
        assert_eq!(self.sense(), vec![0x20 | head << 2, cyl]);
    }

    /// READ/WRITE DATA (MT, MFM) of `n` sectors from (c, h, r) at `addr`.
    fn rw(&mut self, write: bool, c: u8, h: u8, r: u8, n: u32, addr: u32) -> Vec<u8> {
        self.program_dma(addr, n * 512, if write { 0x4A } else { 0x46 });
        let cmd = if write { 0xC5 } else { 0xE6 };
        self.command(&[cmd, h << 2, c, h, r, 2, 18, 0x1B, 0xFF]);
        assert!(self.fdc.wants_dma());
        assert_eq!(self.inb(MSR), MSR_CB, "execution phase: busy, no RQM");
        assert!(!self.fdc.irq_level());
        self.fdc.run_dma(&mut self.dma, &mut self.mem);
        assert!(self.fdc.irq_level(), "the result interrupts");
        let res = self.result();
        assert!(!self.fdc.irq_level(), "reading the result acknowledges");
        res
    }
}

fn lba_of(c: u32, h: u32, r: u32) -> u32 {
    (c * 2 + h) * 18 + r - 1
}

#[test]
fn formats_by_size() {
    assert_eq!(FloppyType::from_size(1_474_560), Some(FloppyType::M1_44));
    assert_eq!(FloppyType::from_size(368_640), Some(FloppyType::K360));
    assert_eq!(FloppyType::from_size(737_280), Some(FloppyType::K720));
    assert_eq!(FloppyType::from_size(1_228_800), Some(FloppyType::M1_2));
    assert_eq!(FloppyType::from_size(2_949_120), Some(FloppyType::M2_88));
    assert_eq!(FloppyType::from_size(1_000_000), None);
    let f = TempFile::with_contents("fd-bad", &[0u8; 4096]);
    let e = Fdc::new()
        .attach(0, Disk::open(f.path(), DiskMode::Snapshot).unwrap(), false)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("4096 bytes") && msg.contains("1474560"),
        "{msg}"
    );
    assert!(msg.starts_with(&f.path().display().to_string()));
}

#[test]
fn version_dumpreg_configure_lock_perpendicular() {
    let mut r = rig();
    r.command(&[0x10]);
    assert_eq!(r.result(), vec![0x90]);
    r.command(&[0x13, 0x00, 0x5A, 0x07]);
    r.command(&[0x12, 0x80 | 0x0C]);
    r.command(&[0x94]);
    assert_eq!(r.result(), vec![0x10], "locked");
    r.command(&[0x0E]);
    assert_eq!(
        r.result(),
        vec![0, 0, 0, 0, 0xAF, 0x02, 0, 0x80 | 0x0C, 0x5A, 0x07]
    );
    // A reset keeps a LOCKed configuration.
    r.reset_sequence();
    r.command(&[0x0E]);
    assert_eq!(r.result()[8..], [0x5A, 0x07]);
    r.command(&[0x14]);
    assert_eq!(r.result(), vec![0x00], "unlocked");
    r.reset_sequence();
    r.command(&[0x0E]);
    assert_eq!(r.result()[8..], [0x20, 0x00], "defaults again");
    // PARTID (82078) and garbage are invalid on an 82077AA.
    r.command(&[0x18]);
    assert_eq!(r.result(), vec![0x80]);
    r.command(&[0xFF]);
    assert_eq!(r.result(), vec![0x80]);
}

#[test]
fn recalibrate_seek_and_sense_drive_status() {
    let mut r = rig();
    r.command(&[0x04, 0x00]);
    assert_eq!(r.result(), vec![0x38], "ready, track 0, two-sided");
    r.seek(1, 40);
    r.command(&[0x04, 0x04]);
    assert_eq!(r.result(), vec![0x2C], "head 1, not track 0");
    // Relative seeks (RS, DIR).
    r.command(&[0xCF, 0x00, 5]);
    assert_eq!(r.sense(), vec![0x20, 45]);
    r.command(&[0x8F, 0x00, 50]);
    assert_eq!(r.sense(), vec![0x20, 0]);
    r.seek(0, 10);
    r.command(&[0x07, 0x00]);
    assert!(r.fdc.irq_level());
    assert_eq!(r.sense(), vec![0x20, 0]);
    // No drive 1: recalibrate fails with equipment check.
    r.command(&[0x07, 0x01]);
    assert_eq!(r.sense(), vec![0x71, 0]);
    r.command(&[0x04, 0x01]);
    assert_eq!(r.result(), vec![0x01], "drive 1 not ready");
}

#[test]
fn read_data_by_dma_with_multitrack() {
    let mut r = rig();
    r.seek(0, 3);
    // Sectors 17, 18 of head 0 and 1, 2 of head 1 (MT).
    let res = r.rw(false, 3, 0, 17, 4, 0x1_0000);
    assert_eq!(
        res,
        vec![0x04, 0, 0, 3, 1, 3, 2],
        "ended on head 1 sector 2"
    );
    for (i, lba) in [
        lba_of(3, 0, 17),
        lba_of(3, 0, 18),
        lba_of(3, 1, 1),
        lba_of(3, 1, 2),
    ]
    .into_iter()
    .enumerate()
    {
        let s = &r.mem.0[0x1_0000 + i * 512..][..512];
        assert_eq!(u16::from_le_bytes([s[0], s[1]]) as u32, lba, "sector {i}");
        assert_eq!(s[2], (14 + lba) as u8);
    }
    assert_eq!(r.mem.0[0x1_0800], 0, "nothing past the count");
    assert!(!r.dma.channel_ready(2), "terminal count masked channel 2");
    // The last sector of the cylinder: the result names the next one.
    let res = r.rw(false, 3, 1, 18, 1, 0x2_0000);
    assert_eq!(res, vec![0x04, 0, 0, 4, 0, 1, 2]);
}

#[test]
fn write_then_read_back_and_format() {
    let mut r = rig();
    r.seek(0, 79);
    for (i, b) in r.mem.0[0x8000..0x8400].iter_mut().enumerate() {
        *b = (i * 3) as u8;
    }
    let res = r.rw(true, 79, 1, 5, 2, 0x8000);
    assert_eq!(res[..3], [0x04, 0, 0]);
    assert_eq!(res[3..], [79, 1, 7, 2]);
    let res = r.rw(false, 79, 1, 5, 2, 0x9000);
    assert_eq!(res[0], 0x04);
    assert_eq!(r.mem.0[0x9000..0x9400], r.mem.0[0x8000..0x8400]);

    // FORMAT TRACK: cylinder 79 head 0, 18 sectors, filler 0xE5.
    for s in 0..18u8 {
        let at = 0xA000 + s as usize * 4;
        r.mem.0[at..at + 4].copy_from_slice(&[79, 0, s + 1, 2]);
    }
    r.program_dma(0xA000, 18 * 4, 0x4A);
    r.command(&[0x4D, 0x00, 2, 18, 0x54, 0xE5]);
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert!(r.fdc.irq_level());
    assert_eq!(r.result()[..3], [0x00, 0, 0]);
    r.rw(false, 79, 0, 1, 18, 0xC000);
    assert!(r.mem.0[0xC000..0xC000 + 18 * 512]
        .iter()
        .all(|&b| b == 0xE5));
    // Head 1 was not touched.
    r.rw(false, 79, 1, 5, 1, 0xC000);
    assert_eq!(r.mem.0[0xC000..0xC200], r.mem.0[0x8000..0x8200]);
}

#[test]
fn write_protected_media_refuse_writes() {
    let mut r = rig_with(FloppyType::M1_44, DiskMode::Snapshot, true);
    r.command(&[0x04, 0x00]);
    assert_eq!(r.result()[0] & 0x40, 0x40, "ST3 WP");
    r.program_dma(0x8000, 512, 0x4A);
    r.command(&[0xC5, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
    assert!(r.fdc.irq_level(), "refused at once");
    assert!(!r.fdc.wants_dma());
    let res = r.result();
    assert_eq!(res[..3], [0x40, 0x02, 0x00], "abnormal, NW");
    r.program_dma(0x8000, 8, 0x4A);
    r.command(&[0x4D, 0x00, 2, 2, 0x54, 0xE5]);
    assert_eq!(r.result()[..2], [0x40, 0x02]);
}

#[test]
fn wrong_rate_cylinder_or_sector_fail_like_hardware() {
    let mut r = rig();
    // 250 kbps: a 1.44M medium has no readable IDs.
    r.out(DIR, 0x02);
    r.command(&[0x4A, 0x00]);
    assert!(r.fdc.irq_level());
    assert_eq!(r.result()[..2], [0x40, 0x01], "missing address mark");
    r.out(0x3F4, 0x00); // DSR: 500 kbps
    r.command(&[0x4A, 0x04]);
    let id = r.result();
    assert_eq!(id[..4], [0x04, 0, 0, 0]);
    assert_eq!(id[4], 1);
    assert_eq!(id[6], 2);
    // Head on cylinder 0, command says 5: wrong cylinder.
    r.program_dma(0x8000, 512, 0x46);
    r.command(&[0xE6, 0x00, 5, 0, 1, 2, 18, 0x1B, 0xFF]);
    assert_eq!(r.result()[..3], [0x40, 0x04, 0x10]);
    // Sector 19 does not exist.
    r.command(&[0xE6, 0x00, 0, 0, 19, 2, 19, 0x1B, 0xFF]);
    assert_eq!(r.result()[..2], [0x40, 0x04]);
    // Implied seek (CONFIGURE EIS) moves the head first.
    r.command(&[0x13, 0x00, 0x40, 0x00]);
    r.program_dma(0x8000, 512, 0x46);
    r.command(&[0xE6, 0x00, 5, 0, 1, 2, 18, 0x1B, 0xFF]);
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert_eq!(r.result()[..4], [0x00, 0, 0, 5]);
    assert_eq!(r.mem.0[0x8000] as u32, lba_of(5, 0, 1) & 0xFF);
}

#[test]
fn reading_to_the_end_of_track_without_terminal_count() {
    let mut r = rig();
    // DMA set for more than the track holds: EN after EOT (no MT).
    r.program_dma(0x4_0000, 4 * 512, 0x46);
    r.command(&[0x46, 0x00, 0, 0, 17, 2, 18, 0x1B, 0xFF]);
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert_eq!(r.result(), vec![0x40, 0x80, 0, 1, 0, 1, 2]);
    // VERIFY (no DMA): EC=1 with a count of 3 from sector 1.
    r.command(&[0x56, 0x80, 0, 0, 1, 2, 18, 0x1B, 3]);
    assert!(r.fdc.irq_level());
    assert_eq!(r.result(), vec![0x00, 0, 0, 0, 0, 4, 2]);
}

#[test]
fn dma_waits_for_the_channel_and_the_gate() {
    let mut r = rig();
    r.command(&[0xE6, 0x00, 0, 0, 1, 2, 18, 0x1B, 0xFF]);
    assert!(r.fdc.wants_dma());
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert_eq!(r.inb(MSR), MSR_CB, "channel 2 masked: still waiting");
    r.out(DOR, 0x14); // DMA gate off
    assert!(!r.fdc.wants_dma());
    r.out(DOR, 0x1C);
    r.program_dma(0x7C00, 512, 0x46);
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert_eq!(r.result()[0], 0x00);
    assert_eq!(r.mem.0[0x7C00..0x7C02], [0, 0]);
    assert_eq!(r.mem.0[0x7C02], 2 * 7);
}

#[test]
fn disk_change_line_clears_on_seek() {
    let mut r = rig();
    assert_eq!(r.inb(DIR) & 0x80, 0x80, "changed since insertion");
    r.seek(0, 1);
    assert_eq!(r.inb(DIR) & 0x80, 0);
    r.out(DOR, 0x1D); // select drive 1: nothing there
    assert_eq!(r.inb(DIR) & 0x80, 0x80);
}

#[test]
fn software_reset_through_dsr_and_board_reset() {
    let mut r = rig();
    r.command(&[0x03]); // a command in progress
    r.out(0x3F4, 0x80);
    assert!(r.fdc.irq_level());
    for d in 0..4u8 {
        assert_eq!(r.sense(), vec![0xC0 | d, 0]);
    }
    r.fdc.reset();
    assert_eq!(r.inb(DOR), 0);
    assert_eq!(r.inb(MSR), 0);
    r.reset_sequence();
}

#[test]
fn other_formats_answer_at_their_rates() {
    for (t, rate, spt) in [
        (FloppyType::K360, 0x01, 9),
        (FloppyType::K360, 0x02, 9),
        (FloppyType::K720, 0x02, 9),
        (FloppyType::M1_2, 0x00, 15),
        (FloppyType::M2_88, 0x03, 36),
    ] {
        let mut r = rig_with(t, DiskMode::Snapshot, false);
        r.out(DIR, rate);
        r.command(&[0x4A, 0x00]);
        assert_eq!(r.result()[0], 0x00, "{t:?} at rate {rate}");
        r.program_dma(0x1000, 512, 0x46);
        r.command(&[0x46, 0x04, 0, 1, spt, 2, spt, 0x1B, 0xFF]);
        r.fdc.run_dma(&mut r.dma, &mut r.mem);
        assert_eq!(r.result()[0], 0x04, "{t:?}");
        assert_eq!(
            u16::from_le_bytes([r.mem.0[0x1000], r.mem.0[0x1001]]),
            2 * spt as u16 - 1
        );
    }
}

#[test]
fn guest_garbage_never_panics() {
    let mut r = rig();
    let mut x = 0x9E37_79B9u32;
    for i in 0..300_000u32 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let ports = [
            0x3F0, 0x3F1, 0x3F2, 0x3F3, 0x3F4, 0x3F5, 0x3F5, 0x3F5, 0x3F7,
        ];
        let port = ports[(x % ports.len() as u32) as usize];
        if x & 0x8000_0000 != 0 {
            r.fdc.read(port);
        } else {
            // Keep the controller out of reset most of the time.
            let mut v = (x >> 11) as u8;
            if port == DOR {
                v |= 0x0C;
            }
            r.fdc.write(port, v);
        }
        if i % 7 == 0 {
            let p = [0x00, 0x04, 0x05, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x81]
                [(x >> 3) as usize % 10];
            r.dma.write(p, (x >> 19) as u8);
        }
        r.fdc.run_dma(&mut r.dma, &mut r.mem);
    }
}

#[test]
fn multitrack_goes_on_to_head_1_after_the_last_sector_even_past_eot() {
    let mut r = rig();
    // SeaBIOS's way: EOT = first sector + count - 1 = 20 on an 18-sector
    // track; MT takes the read on to head 1.
    r.program_dma(0x3_0000, 19 * 512, 0x46);
    r.command(&[0xE6, 0x00, 0, 0, 2, 2, 20, 0x1B, 0xFF]);
    r.fdc.run_dma(&mut r.dma, &mut r.mem);
    assert_eq!(r.result(), vec![0x04, 0, 0, 0, 1, 3, 2]);
    let last = &r.mem.0[0x3_0000 + 18 * 512..][..2];
    assert_eq!(
        u16::from_le_bytes([last[0], last[1]]) as u32,
        lba_of(0, 1, 2)
    );
}
