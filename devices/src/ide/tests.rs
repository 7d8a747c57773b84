//! The controller driven through its ports, the way a driver programs it.

use super::*;
use crate::disk::testutil::TempFile;
use crate::disk::DiskMode;

const DATA: u16 = 0x1F0;
const ERROR: u16 = 0x1F1;
const COUNT: u16 = 0x1F2;
const LBA_LO: u16 = 0x1F3;
const LBA_MID: u16 = 0x1F4;
const LBA_HI: u16 = 0x1F5;
const DEVICE: u16 = 0x1F6;
const CMD: u16 = 0x1F7;
const CTRL: u16 = 0x3F6;

fn pattern(sectors: usize) -> Vec<u8> {
    (0..sectors * 512)
        .map(|i| (i as u32 * 31 + (i as u32 >> 9) * 7) as u8)
        .collect()
}

fn ide_with_disk(bytes: &[u8]) -> (Ide, TempFile) {
    let f = TempFile::with_contents("ide", bytes);
    let mut ide = Ide::new();
    let d = Disk::open(f.path(), DiskMode::ReadWrite).unwrap();
    ide.attach(0, 0, DeviceKind::Disk, d);
    (ide, f)
}

fn out(ide: &mut Ide, port: u16, v: u8) {
    assert!(ide.io_write(port, 1, v as u32));
}

fn inb(ide: &mut Ide, port: u16) -> u8 {
    ide.io_read(port, 1).unwrap() as u8
}

/// Read `n` bytes from the data port with 16-bit accesses.
fn read_data16(ide: &mut Ide, n: usize) -> Vec<u8> {
    (0..n / 2)
        .flat_map(|_| (ide.io_read(DATA, 2).unwrap() as u16).to_le_bytes())
        .collect()
}

/// Read `n` bytes from the data port with 32-bit accesses.
fn read_data32(ide: &mut Ide, n: usize) -> Vec<u8> {
    (0..n / 4)
        .flat_map(|_| ide.io_read(DATA, 4).unwrap().to_le_bytes())
        .collect()
}

fn identify(ide: &mut Ide) -> Vec<u16> {
    out(ide, DEVICE, 0xA0);
    out(ide, CMD, 0xEC);
    assert!(ide.irq_level(0), "IDENTIFY interrupts");
    let st = inb(ide, CMD);
    assert!(!ide.irq_level(0), "reading status acknowledges");
    assert_eq!(st & (ST_BSY | ST_DRQ | ST_ERR), ST_DRQ, "status {st:#x}");
    let b = read_data16(ide, 512);
    assert_eq!(inb(ide, CMD) & ST_DRQ, 0, "DRQ drops after the block");
    b.chunks(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect()
}

/// Decode an ATA string (first character in the high byte of each word).
fn ata_string(words: &[u16]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
    String::from_utf8_lossy(&bytes).trim_end().to_string()
}

fn lba28_command(ide: &mut Ide, cmd: u8, lba: u32, count: u8) {
    out(ide, DEVICE, 0xE0 | ((lba >> 24) as u8 & 0x0F));
    out(ide, COUNT, count);
    out(ide, LBA_LO, lba as u8);
    out(ide, LBA_MID, (lba >> 8) as u8);
    out(ide, LBA_HI, (lba >> 16) as u8);
    out(ide, CMD, cmd);
}

fn lba48_command(ide: &mut Ide, cmd: u8, lba: u64, count: u16) {
    out(ide, DEVICE, 0x40);
    out(ide, COUNT, (count >> 8) as u8);
    out(ide, LBA_LO, (lba >> 24) as u8);
    out(ide, LBA_MID, (lba >> 32) as u8);
    out(ide, LBA_HI, (lba >> 40) as u8);
    out(ide, COUNT, count as u8);
    out(ide, LBA_LO, lba as u8);
    out(ide, LBA_MID, (lba >> 8) as u8);
    out(ide, LBA_HI, (lba >> 16) as u8);
    out(ide, CMD, cmd);
}

fn write_data16(ide: &mut Ide, bytes: &[u8]) {
    for w in bytes.chunks(2) {
        ide.io_write(DATA, 2, u16::from_le_bytes([w[0], w[1]]) as u32);
    }
}

#[test]
fn identify_reports_capacity_geometry_and_strings() {
    let (mut ide, _f) = ide_with_disk(&pattern(20 * 1008));
    let w = identify(&mut ide);
    assert_eq!(w[0], 0x0040);
    assert_eq!((w[1], w[3], w[6]), (20, 16, 63));
    assert_eq!(w[60] as u32 | (w[61] as u32) << 16, 20 * 1008);
    let lba48 = (0..4).fold(0u64, |a, i| a | (w[100 + i] as u64) << (16 * i));
    assert_eq!(lba48, 20 * 1008);
    assert_eq!(ata_string(&w[27..47]), "RINGSIDE HARDDISK");
    assert_eq!(ata_string(&w[10..20]), "RS-HD0000");
    assert_eq!(ata_string(&w[23..27]), "0.1");
    assert_ne!(w[83] & (1 << 10), 0, "48-bit feature set");
    assert_ne!(w[49] & (1 << 9), 0, "LBA");
}

#[test]
fn write_then_read_back_with_16_and_32_bit_pio() {
    let (mut ide, f) = ide_with_disk(&pattern(64));
    let data: Vec<u8> = (0..3 * 512).map(|i| (i * 13 + 5) as u8).collect();
    lba28_command(&mut ide, 0x30, 10, 3);
    assert_eq!(inb(&mut ide, CTRL) & (ST_DRQ | ST_BSY), ST_DRQ);
    assert!(!ide.irq_level(0), "no interrupt before the first block");
    for (i, s) in data.chunks(512).enumerate() {
        write_data16(&mut ide, s);
        assert!(ide.irq_level(0), "interrupt after block {i}");
        let st = inb(&mut ide, CMD);
        assert!(!ide.irq_level(0), "status read acknowledges");
        assert_eq!(st & ST_DRQ != 0, i < 2, "DRQ for the next block");
    }
    assert_eq!(inb(&mut ide, CMD), ST_DRDY | ST_DSC);
    lba28_command(&mut ide, 0x20, 9, 5);
    let got = read_data32(&mut ide, 5 * 512);
    assert_eq!(&got[..512], &pattern(64)[9 * 512..10 * 512]);
    assert_eq!(&got[512..4 * 512], &data[..]);
    assert_eq!(&got[4 * 512..], &pattern(64)[13 * 512..14 * 512]);
    // FLUSH CACHE, and the data is in the file.
    out(&mut ide, CMD, 0xE7);
    assert_eq!(inb(&mut ide, CMD) & ST_ERR, 0);
    let on_disk = std::fs::read(f.path()).unwrap();
    assert_eq!(&on_disk[10 * 512..13 * 512], &data[..]);
}

#[test]
fn read_multiple_moves_blocks_of_n_sectors() {
    let (mut ide, _f) = ide_with_disk(&pattern(64));
    lba28_command(&mut ide, 0xC4, 0, 4);
    assert_ne!(
        inb(&mut ide, CMD) & ST_ERR,
        0,
        "aborted before SET MULTIPLE"
    );
    assert_eq!(inb(&mut ide, ERROR), ER_ABRT);
    out(&mut ide, COUNT, 3);
    out(&mut ide, CMD, 0xC6);
    assert_ne!(inb(&mut ide, CMD) & ST_ERR, 0, "3 is not a power of two");
    out(&mut ide, COUNT, 4);
    out(&mut ide, CMD, 0xC6);
    assert_eq!(inb(&mut ide, CMD) & ST_ERR, 0);
    lba28_command(&mut ide, 0xC4, 2, 6);
    let mut irqs = 0;
    let mut got = Vec::new();
    while inb(&mut ide, CTRL) & ST_DRQ != 0 {
        irqs += ide.irq_level(0) as u32;
        inb(&mut ide, CMD);
        got.extend(read_data16(&mut ide, 2));
    }
    assert_eq!(got, pattern(64)[2 * 512..8 * 512]);
    assert_eq!(irqs, 2, "one interrupt per block: 4 + 2 sectors");
    assert_eq!(identify(&mut ide)[59], 0x0104);
}

#[test]
fn lba48_reaches_beyond_28_bits() {
    // A sparse 160 GiB image: LBA48 addresses past 2^28 sectors.
    let f = TempFile::with_contents("big", &[]);
    let sectors: u64 = 160 << 21;
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.path())
        .unwrap()
        .set_len(sectors * 512)
        .unwrap();
    let mut ide = Ide::new();
    ide.attach(
        0,
        0,
        DeviceKind::Disk,
        Disk::open(f.path(), DiskMode::Snapshot).unwrap(),
    );
    let w = identify(&mut ide);
    assert_eq!(w[60] as u32 | (w[61] as u32) << 16, 0x0FFF_FFFF);
    let lba48 = (0..4).fold(0u64, |a, i| a | (w[100 + i] as u64) << (16 * i));
    assert_eq!(lba48, sectors);
    assert_eq!(w[1], 16383);
    let lba = (1u64 << 28) + 0x123;
    let data: Vec<u8> = (0..2 * 512).map(|i| (i / 3) as u8).collect();
    lba48_command(&mut ide, 0x34, lba, 2);
    write_data16(&mut ide, &data);
    assert_eq!(inb(&mut ide, CMD) & (ST_ERR | ST_DRQ), 0);
    lba48_command(&mut ide, 0x24, lba - 1, 3);
    let got = read_data16(&mut ide, 3 * 512);
    assert_eq!(&got[..512], &[0u8; 512][..]);
    assert_eq!(&got[512..], &data[..]);
    // HOB reads back the high bytes of the address.
    lba48_command(&mut ide, 0x42, lba, 1);
    out(&mut ide, CTRL, 0x80);
    assert_eq!(inb(&mut ide, LBA_LO), (lba >> 24) as u8);
    out(&mut ide, CTRL, 0x00);
    assert_eq!(inb(&mut ide, LBA_LO), lba as u8);
}

#[test]
fn out_of_range_lba_is_idnf() {
    let (mut ide, _f) = ide_with_disk(&pattern(16));
    lba28_command(&mut ide, 0x20, 15, 2);
    let st = inb(&mut ide, CMD);
    assert_eq!(st & (ST_ERR | ST_DRQ), ST_ERR);
    assert_eq!(inb(&mut ide, ERROR), ER_IDNF);
    lba28_command(&mut ide, 0x30, 0x0FFF_FFFF, 0);
    assert_eq!(inb(&mut ide, CMD) & (ST_ERR | ST_DRQ), ST_ERR);
    lba48_command(&mut ide, 0x24, u64::MAX >> 16, 0);
    assert_eq!(inb(&mut ide, CMD) & (ST_ERR | ST_DRQ), ST_ERR);
    lba28_command(&mut ide, 0x40, 0, 16);
    assert_eq!(inb(&mut ide, CMD) & ST_ERR, 0, "verify of the whole disk");
    out(&mut ide, CMD, 0x00);
    assert_eq!(inb(&mut ide, ERROR), ER_ABRT, "NOP aborts");
}

#[test]
fn chs_addressing_uses_the_current_geometry() {
    let (mut ide, _f) = ide_with_disk(&pattern(2 * 16 * 63));
    // C=1 H=2 S=5 with 16 heads, 63 sectors: LBA (1*16+2)*63+4.
    let lba = (16 + 2) * 63 + 4;
    out(&mut ide, DEVICE, 0xA2);
    out(&mut ide, COUNT, 1);
    out(&mut ide, LBA_LO, 5);
    out(&mut ide, LBA_MID, 1);
    out(&mut ide, LBA_HI, 0);
    out(&mut ide, CMD, 0x20);
    assert_eq!(
        read_data16(&mut ide, 512),
        pattern(2 * 16 * 63)[lba * 512..(lba + 1) * 512]
    );
    // INITIALIZE DEVICE PARAMETERS: 4 heads, 17 sectors per track.
    out(&mut ide, DEVICE, 0xA3);
    out(&mut ide, COUNT, 17);
    out(&mut ide, CMD, 0x91);
    assert_eq!(inb(&mut ide, CMD) & ST_ERR, 0);
    let w = identify(&mut ide);
    assert_eq!((w[55], w[56]), (4, 17));
    out(&mut ide, DEVICE, 0xA3);
    out(&mut ide, COUNT, 1);
    out(&mut ide, LBA_LO, 2);
    out(&mut ide, LBA_MID, 0);
    out(&mut ide, CMD, 0x20);
    let lba = 3 * 17 + 1;
    assert_eq!(
        read_data16(&mut ide, 512),
        pattern(2 * 16 * 63)[lba * 512..(lba + 1) * 512]
    );
}

#[test]
fn soft_reset_posts_signatures_and_nien_masks_the_interrupt() {
    let cd = TempFile::with_contents("sig", &[0u8; 4 * 2048]);
    let (mut ide, _f) = ide_with_disk(&pattern(8));
    ide.attach(
        0,
        1,
        DeviceKind::CdRom,
        Disk::open(cd.path(), DiskMode::CdRom).unwrap(),
    );
    lba28_command(&mut ide, 0x20, 0, 1);
    out(&mut ide, CTRL, 0x04 | 0x02);
    assert_eq!(inb(&mut ide, CTRL), ST_BSY);
    out(&mut ide, CTRL, 0x02);
    assert_eq!(inb(&mut ide, CMD), ST_DRDY | ST_DSC);
    assert_eq!(
        [COUNT, LBA_LO, LBA_MID, LBA_HI].map(|p| inb(&mut ide, p)),
        [1, 1, 0, 0]
    );
    assert_eq!(inb(&mut ide, ERROR), 0x01);
    assert_eq!(ide.io_read(DATA, 2), Some(0), "data phase cancelled");
    // With nIEN set, a command completes but INTRQ stays low.
    lba28_command(&mut ide, 0x20, 0, 1);
    assert!(!ide.irq_level(0));
    out(&mut ide, CTRL, 0x00);
    assert!(ide.irq_level(0), "pending interrupt shows once nIEN clears");
    // The slave is ATAPI: IDENTIFY DEVICE aborts with its signature.
    out(&mut ide, DEVICE, 0xB0);
    out(&mut ide, CMD, 0xEC);
    assert_ne!(inb(&mut ide, CMD) & ST_ERR, 0);
    assert_eq!(
        (inb(&mut ide, LBA_MID), inb(&mut ide, LBA_HI)),
        (0x14, 0xEB)
    );
}

#[test]
fn empty_channel_floats_and_absent_slave_reads_zero() {
    let (mut ide, _f) = ide_with_disk(&pattern(8));
    assert_eq!(ide.io_read(0x177, 1), Some(0xFF));
    assert_eq!(ide.io_read(0x376, 1), Some(0xFF));
    out(&mut ide, DEVICE, 0xB0);
    assert_eq!(inb(&mut ide, CMD), 0);
    out(&mut ide, CMD, 0xEC);
    assert_eq!(inb(&mut ide, CMD), 0, "absent device ignores commands");
    assert!(!ide.irq_level(0));
}

#[test]
fn guest_garbage_never_panics() {
    let cd = TempFile::with_contents("junk", &[0u8; 2 * 2048]);
    let (mut ide, _f) = ide_with_disk(&pattern(4));
    ide.attach(
        1,
        0,
        DeviceKind::CdRom,
        Disk::open(cd.path(), DiskMode::CdRom).unwrap(),
    );
    let mut x = 0x1234_5678u32;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let ports = [
            0x1F0, 0x1F1, 0x1F2, 0x1F3, 0x1F4, 0x1F5, 0x1F6, 0x1F7, 0x3F6, 0x170, 0x171, 0x172,
            0x173, 0x174, 0x175, 0x176, 0x177, 0x376,
        ];
        let port = ports[(x % ports.len() as u32) as usize];
        let size = [1, 2, 4][(x >> 8) as usize % 3];
        if x & 0x8000_0000 != 0 {
            ide.io_read(port, size);
        } else {
            // Favour the data ports so transfers actually run.
            let v = x >> 11;
            ide.io_write(port, size, v);
        }
    }
}

// ---- ATAPI ----

/// A fake ISO: block i starts with its own number.
fn iso(blocks: u32) -> Vec<u8> {
    let mut v = vec![0u8; blocks as usize * 2048];
    for b in 0..blocks {
        let o = b as usize * 2048;
        v[o..o + 4].copy_from_slice(&b.to_le_bytes());
        v[o + 2047] = 0xA5;
    }
    v
}

fn ide_with_cd(blocks: u32) -> (Ide, TempFile) {
    let f = TempFile::with_contents("cd", &iso(blocks));
    let mut ide = Ide::new();
    ide.attach(
        1,
        0,
        DeviceKind::CdRom,
        Disk::open(f.path(), DiskMode::CdRom).unwrap(),
    );
    (ide, f)
}

const S: u16 = 0x170u16.wrapping_sub(0x1F0);

/// Send a packet with byte-count limit `limit`; returns the data read (all
/// chunks) and the final status.
fn packet(ide: &mut Ide, cmd: &[u8], limit: u16) -> (Vec<u8>, u8, usize) {
    out(ide, DEVICE.wrapping_add(S), 0x00);
    out(ide, ERROR.wrapping_add(S), 0x00);
    out(ide, LBA_MID.wrapping_add(S), limit as u8);
    out(ide, LBA_HI.wrapping_add(S), (limit >> 8) as u8);
    out(ide, CMD.wrapping_add(S), 0xA0);
    assert_eq!(inb(ide, 0x376) & ST_DRQ, ST_DRQ);
    assert_eq!(
        inb(ide, COUNT.wrapping_add(S)) & 3,
        IR_COD_TEST,
        "CoD=1 IO=0"
    );
    let mut p = [0u8; 12];
    p[..cmd.len()].copy_from_slice(cmd);
    for w in p.chunks(2) {
        ide.io_write(
            DATA.wrapping_add(S),
            2,
            u16::from_le_bytes([w[0], w[1]]) as u32,
        );
    }
    let mut data = Vec::new();
    let mut chunks = 0;
    loop {
        assert!(ide.irq_level(1), "every phase interrupts");
        let st = inb(ide, CMD.wrapping_add(S));
        if st & ST_DRQ == 0 {
            assert_eq!(
                inb(ide, COUNT.wrapping_add(S)) & 3,
                3,
                "IO=1 CoD=1 at the end"
            );
            return (data, st, chunks);
        }
        assert_eq!(
            inb(ide, COUNT.wrapping_add(S)) & 3,
            2,
            "IO=1 CoD=0 for data"
        );
        let n = inb(ide, LBA_MID.wrapping_add(S)) as usize
            | (inb(ide, LBA_HI.wrapping_add(S)) as usize) << 8;
        assert!(n <= limit as usize && n > 0);
        for _ in 0..n / 2 {
            data.extend((ide.io_read(DATA.wrapping_add(S), 2).unwrap() as u16).to_le_bytes());
        }
        chunks += 1;
    }
}

const IR_COD_TEST: u8 = 1;

fn sense(ide: &mut Ide) -> (u8, u8) {
    let (d, st, _) = packet(ide, &[0x03, 0, 0, 0, 18], 0xFFFE);
    assert_eq!(st & ST_ERR, 0);
    (d[2] & 0x0F, d[12])
}

#[test]
fn atapi_identify_packet_and_signature() {
    let (mut ide, _f) = ide_with_cd(8);
    assert_eq!(
        (
            inb(&mut ide, LBA_MID.wrapping_add(S)),
            inb(&mut ide, LBA_HI.wrapping_add(S))
        ),
        (0x14, 0xEB)
    );
    out(&mut ide, DEVICE.wrapping_add(S), 0x00);
    out(&mut ide, CMD.wrapping_add(S), 0xA1);
    let b = (0..256)
        .map(|_| ide.io_read(DATA.wrapping_add(S), 2).unwrap() as u16)
        .collect::<Vec<_>>();
    assert_eq!(b[0], 0x85C0);
    assert_eq!(ata_string(&b[27..47]), "RINGSIDE CD-ROM");
}

#[test]
fn atapi_unit_attention_then_inquiry_capacity_and_reads() {
    let (mut ide, _f) = ide_with_cd(40);
    let (_, st, _) = packet(&mut ide, &[0x00], 0xFFFE);
    assert_ne!(st & ST_ERR, 0, "first TEST UNIT READY: unit attention");
    assert_eq!(
        inb(&mut ide, ERROR.wrapping_add(S)) >> 4,
        SK_UNIT_ATTENTION_TEST
    );
    assert_eq!(sense(&mut ide), (6, 0x28));
    let (_, st, _) = packet(&mut ide, &[0x00], 0xFFFE);
    assert_eq!(st & ST_ERR, 0);

    let (inq, _, _) = packet(&mut ide, &[0x12, 0, 0, 0, 36], 0xFFFE);
    assert_eq!(inq.len(), 36);
    assert_eq!(inq[0], 0x05);
    assert_eq!(&inq[8..16], b"RINGSIDE");
    let (short, _, _) = packet(&mut ide, &[0x12, 0, 0, 0, 5], 0xFFFE);
    assert_eq!(short.len(), 6, "allocation length 5, padded to a word");

    let (cap, _, _) = packet(&mut ide, &[0x25], 0xFFFE);
    assert_eq!(cap, [0, 0, 0, 39, 0, 0, 8, 0]);

    // READ(10) of 5 blocks from 3 with a 4 KiB byte-count limit: chunks of
    // two blocks, two, one.
    let (d, st, chunks) = packet(&mut ide, &[0x28, 0, 0, 0, 0, 3, 0, 0, 5], 4096);
    assert_eq!(st & ST_ERR, 0);
    assert_eq!(chunks, 3);
    assert_eq!(d, iso(40)[3 * 2048..8 * 2048]);
    // READ(12), one chunk.
    let (d, _, chunks) = packet(&mut ide, &[0xA8, 0, 0, 0, 0, 38, 0, 0, 0, 2], 0xFFFE);
    assert_eq!((chunks, &d[..]), (1, &iso(40)[38 * 2048..]));
    // Past the end: ILLEGAL REQUEST, LBA out of range.
    let (d, st, _) = packet(&mut ide, &[0x28, 0, 0, 0, 0, 39, 0, 0, 2], 0xFFFE);
    assert!(d.is_empty());
    assert_ne!(st & ST_ERR, 0);
    assert_eq!(sense(&mut ide), (5, 0x21));
    // Unknown opcode.
    let (_, st, _) = packet(&mut ide, &[0xFF], 0xFFFE);
    assert_ne!(st & ST_ERR, 0);
    assert_eq!(sense(&mut ide), (5, 0x20));
}

#[test]
fn atapi_toc_mode_sense_configuration() {
    let (mut ide, _f) = ide_with_cd(100);
    packet(&mut ide, &[0x00], 0xFFFE); // clear unit attention
    let (toc, st, _) = packet(&mut ide, &[0x43, 0, 0, 0, 0, 0, 0, 0, 100], 0xFFFE);
    assert_eq!(st & ST_ERR, 0);
    assert_eq!(toc.len(), 20);
    assert_eq!(&toc[..4], &[0, 18, 1, 1]);
    assert_eq!(&toc[12 + 2..12 + 3], &[0xAA]);
    assert_eq!(&toc[16..20], &100u32.to_be_bytes());
    // MSF lead-out: 100 + 150 frames = 0:03:25.
    let (toc, _, _) = packet(&mut ide, &[0x43, 2, 0, 0, 0, 0, 0, 0, 100], 0xFFFE);
    assert_eq!(&toc[16..20], &[0, 0, 3, 25]);
    let (ms, _, _) = packet(&mut ide, &[0x5A, 0, 0x2A, 0, 0, 0, 0, 0, 64], 0xFFFE);
    assert_eq!(ms.len(), 28);
    assert_eq!((ms[8], ms[9]), (0x2A, 0x12));
    let (cfg, _, _) = packet(&mut ide, &[0x46, 0, 0, 0, 0, 0, 0, 0, 8], 0xFFFE);
    assert_eq!(&cfg[6..8], &[0, 8], "current profile CD-ROM");
}

const SK_UNIT_ATTENTION_TEST: u8 = 6;

#[test]
fn atapi_empty_tray_is_not_ready_medium_not_present() {
    let mut ide = Ide::new();
    ide.attach(1, 0, DeviceKind::CdRom, Disk::empty_tray());
    // The drive is there (ATAPI signature, INQUIRY answers)...
    let (d, st, _) = packet(&mut ide, &[0x12, 0, 0, 0, 36], 0xFFFE);
    assert_eq!(st & ST_ERR, 0);
    assert_eq!(d[0] & 0x1F, 5, "a CD-ROM device");
    // ...but every media command fails NOT READY / 3Ah, after the usual
    // first UNIT ATTENTION.
    let _ = packet(&mut ide, &[0x00], 0xFFFE);
    for cmd in [
        &[0x00][..],                            // TEST UNIT READY
        &[0x25][..],                            // READ CAPACITY
        &[0x28, 0, 0, 0, 0, 16, 0, 0, 1][..],   // READ(10) block 16
        &[0xA8, 0, 0, 0, 0, 0, 0, 0, 0, 1][..], // READ(12)
        &[0x43, 0, 0, 0, 0, 0, 0, 0, 12][..],   // READ TOC
    ] {
        let (d, st, _) = packet(&mut ide, cmd, 0xFFFE);
        assert_ne!(st & ST_ERR, 0, "{cmd:02X?}");
        assert!(d.is_empty(), "{cmd:02X?}: no data");
        assert_eq!(inb(&mut ide, ERROR.wrapping_add(S)) >> 4, 2, "{cmd:02X?}");
        assert_eq!(sense(&mut ide), (2, 0x3A), "{cmd:02X?}");
    }
}
