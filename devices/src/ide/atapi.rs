//! ATAPI CD-ROM: the PACKET protocol (ATA/ATAPI-6 9.10 / 8.21) and the
//! MMC commands a BIOS, a boot loader and Linux's `sr` driver use.
//!
//! The PACKET protocol: after command A0h the device sets DRQ with the
//! interrupt reason (sector count register) CoD=1, IO=0 and takes 12
//! command bytes. A data-in command then offers chunks of at most the
//! byte-count limit the host wrote to LBA mid/high (the actual count goes
//! back there) with reason IO=1, CoD=0 and an interrupt per chunk; the end
//! of the command is reason IO=1, CoD=1, DRQ clear, and an interrupt.
//! Errors are CHECK CONDITION: ERR in status, sense key in the error
//! register's high nibble, sense kept for REQUEST SENSE.

use super::*;
use crate::disk::CD_BLOCK_SIZE;

// Interrupt reason bits (in the sector count register).
const IR_COD: u8 = 0x01;
const IR_IO: u8 = 0x02;

// Sense keys and additional sense codes (SPC / MMC).
const SK_NOT_READY: u8 = 0x02;
const SK_ILLEGAL_REQUEST: u8 = 0x05;
const SK_UNIT_ATTENTION: u8 = 0x06;
const ASC_INVALID_OPCODE: u8 = 0x20;
const ASC_LBA_OUT_OF_RANGE: u8 = 0x21;
const ASC_INVALID_FIELD: u8 = 0x24;
const ASC_MEDIUM_CHANGED: u8 = 0x28;
const ASC_INCOMPATIBLE_FORMAT: u8 = 0x30;
const ASC_MEDIUM_NOT_PRESENT: u8 = 0x3A;

/// Execute ATA command `cmd` on the selected ATAPI device.
pub(super) fn command(ch: &mut Channel, cmd: u8) {
    match cmd {
        0xA0 => packet(ch),
        0xA1 => identify_packet(ch),
        // DEVICE RESET: the device resets and posts its signature.
        0x08 => {
            if let Some(d) = ch.dev() {
                d.status = 0;
                d.error = 0x01;
            }
            let slot = ch.selected;
            ch.set_signature(slot);
            ch.tf.device = (slot as u8) << 4;
        }
        0x90 => super::ata::execute_diagnostic(ch),
        0xEF | 0xE0..=0xE3 => ch.complete(),
        0xE5 => {
            ch.tf.count[0] = 0xFF;
            ch.complete();
        }
        // IDENTIFY DEVICE (and every other ATA command) aborts with the
        // ATAPI signature in the registers: that is how drivers tell an
        // ATAPI device from a disk (ATA-6 8.15).
        _ => {
            let slot = ch.selected;
            ch.fail(ER_ABRT);
            ch.set_signature(slot);
            ch.tf.device = (slot as u8) << 4;
        }
    }
}

fn identify_packet(ch: &mut Channel) {
    let Some(d) = ch.devices[ch.selected].as_ref() else {
        return;
    };
    let mut b = [0u8; 512];
    // ATAPI, CD-ROM device type 5, removable, DRQ within 50 µs, 12-byte
    // packets.
    put_word(&mut b, 0, 0x85C0);
    put_ata_string(&mut b, 10, 10, d.serial());
    put_ata_string(&mut b, 23, 4, "0.1");
    put_ata_string(&mut b, 27, 20, d.model());
    put_word(&mut b, 49, 0x0200); // LBA (no DMA)
    put_word(&mut b, 53, 0x0002); // words 64–70 valid
    put_word(&mut b, 64, 0x0003);
    for w in 65..=68 {
        put_word(&mut b, w, 120);
    }
    put_word(&mut b, 80, 0x007E);
    put_word(&mut b, 82, 0x4010); // NOP, PACKET feature set
    put_word(&mut b, 83, 0x4000);
    put_word(&mut b, 84, 0x4000);
    put_word(&mut b, 85, 0x4010);
    put_word(&mut b, 86, 0x0000);
    put_word(&mut b, 87, 0x4000);
    ch.buf[..512].copy_from_slice(&b);
    ch.start_pio_in(512, Transfer::PioInSingle);
}

fn packet(ch: &mut Channel) {
    if ch.tf.feature[0] & 0x01 != 0 {
        // DMA requested: we only do PIO.
        ch.fail(ER_ABRT);
        return;
    }
    ch.tf.count[0] = IR_COD;
    ch.start_pio_out(12, Transfer::Packet, false);
}

/// The byte-count limit the host programmed (even; 0 means the largest).
fn byte_count_limit(ch: &Channel) -> usize {
    let l = u16::from_le_bytes([ch.tf.lba_mid[0], ch.tf.lba_high[0]]) as usize;
    let l = if l == 0 { 0xFFFE } else { l & !1 };
    l.clamp(2, BUF_SIZE & !1)
}

/// The 12-byte packet has arrived: execute it.
pub(super) fn packet_received(ch: &mut Channel) {
    let mut p = [0u8; 12];
    p.copy_from_slice(&ch.buf[..12]);
    let Some(d) = ch.dev() else {
        return;
    };
    let op = p[0];
    // The first command after reset or a medium change reports UNIT
    // ATTENTION, except INQUIRY and REQUEST SENSE (SPC).
    if d.unit_attention && op != 0x12 && op != 0x03 {
        d.unit_attention = false;
        check_condition(ch, SK_UNIT_ATTENTION, ASC_MEDIUM_CHANGED, 0);
        return;
    }
    let alloc16 = u16::from_be_bytes([p[7], p[8]]) as usize;
    // TEST UNIT READY, READ CAPACITY, READ(10/12), READ TOC need a disc.
    if !d.disk.has_medium() && matches!(op, 0x00 | 0x25 | 0x28 | 0xA8 | 0x43) {
        check_condition(ch, SK_NOT_READY, ASC_MEDIUM_NOT_PRESENT, 0);
        return;
    }
    match op {
        0x00 => good(ch), // TEST UNIT READY: a disc is in
        0x03 => request_sense(ch, p[4] as usize),
        0x12 => inquiry(ch, u16::from_be_bytes([p[3], p[4]]) as usize),
        0x1B | 0x1E | 0x2B => good(ch), // START STOP UNIT, PREVENT/ALLOW, SEEK
        0x25 => read_capacity(ch),
        0x28 => {
            let lba = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            read(ch, lba, alloc16 as u32);
        }
        0xA8 => {
            let lba = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            let n = u32::from_be_bytes([p[6], p[7], p[8], p[9]]);
            read(ch, lba, n);
        }
        0x43 => read_toc(ch, &p, alloc16),
        0x5A => mode_sense(ch, p[2], alloc16),
        0x46 => get_configuration(ch, alloc16),
        0x4A => get_event_status(ch, &p, alloc16),
        _ => {
            log::debug!("ATAPI: unsupported packet command {op:#04x}");
            check_condition(ch, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE, 0);
        }
    }
}

/// Command done, no (more) data: reason IO|CoD, interrupt.
fn good(ch: &mut Channel) {
    if let Some(d) = ch.dev() {
        d.sense = (0, 0, 0);
    }
    ch.tf.count[0] = IR_IO | IR_COD;
    ch.complete();
}

fn check_condition(ch: &mut Channel, key: u8, asc: u8, ascq: u8) {
    if let Some(d) = ch.dev() {
        d.sense = (key, asc, ascq);
    }
    ch.fail((key << 4) | ER_ABRT);
    ch.tf.count[0] = IR_IO | IR_COD;
}

/// Offer the first `len` bytes of the buffer (clipped to `alloc`, the
/// allocation length of the command) as the command's data.
fn reply(ch: &mut Channel, len: usize, alloc: usize) {
    let mut len = len.min(alloc);
    if len == 0 {
        good(ch);
        return;
    }
    if len % 2 == 1 {
        // The data register moves words: pad an odd reply.
        ch.buf[len] = 0;
        len += 1;
    }
    // The whole reply is in the buffer; chunks of it go out within the
    // byte-count limit. `buf_len` marks the end of the current chunk and
    // the rest waits behind it.
    ch.transfer = Transfer::AtapiReply;
    ch.buf_pos = 0;
    ch.atapi_reply_end = len;
    next_reply_chunk(ch);
}

fn next_reply_chunk(ch: &mut Channel) {
    let limit = byte_count_limit(ch);
    let start = ch.buf_pos;
    let n = (ch.atapi_reply_end - start).min(limit);
    ch.buf_len = start + n;
    data_in_chunk(ch, n);
}

/// Announce a data-in chunk of `n` bytes: byte count, reason IO, DRQ, IRQ.
fn data_in_chunk(ch: &mut Channel, n: usize) {
    ch.tf.lba_mid[0] = n as u8;
    ch.tf.lba_high[0] = (n >> 8) as u8;
    ch.tf.count[0] = IR_IO;
    if let Some(d) = ch.dev() {
        d.status = ST_DRDY | ST_DSC | ST_DRQ;
        d.error = 0;
    }
    ch.raise_irq();
}

/// The host has read a whole chunk.
pub(super) fn end_of_chunk(ch: &mut Channel) {
    match ch.transfer {
        Transfer::AtapiReply => {
            if ch.buf_pos < ch.atapi_reply_end {
                next_reply_chunk(ch);
            } else {
                good(ch);
            }
        }
        Transfer::AtapiRead { next, remaining } => {
            if remaining == 0 {
                good(ch);
            } else {
                read_chunk(ch, next, remaining);
            }
        }
        _ => {}
    }
}

fn request_sense(ch: &mut Channel, alloc: usize) {
    let (key, asc, ascq) = ch.dev().map_or((0, 0, 0), |d| d.sense);
    let mut r = [0u8; 18];
    r[0] = 0x70; // current error, fixed format
    r[2] = key;
    r[7] = 10; // additional sense length
    r[12] = asc;
    r[13] = ascq;
    ch.buf[..18].copy_from_slice(&r);
    if let Some(d) = ch.dev() {
        d.sense = (0, 0, 0);
    }
    reply(ch, 18, alloc);
}

fn inquiry(ch: &mut Channel, alloc: usize) {
    let mut r = [0u8; 36];
    r[0] = 0x05; // CD/DVD device
    r[1] = 0x80; // removable
    r[2] = 0x00; // no claim to a SCSI version (as ATAPI drives report)
    r[3] = 0x21; // ATAPI version 2, response data format 1
    r[4] = 31; // additional length
    r[8..16].copy_from_slice(b"RINGSIDE");
    r[16..32].copy_from_slice(b"CD-ROM          ");
    r[32..36].copy_from_slice(b"0.1 ");
    ch.buf[..36].copy_from_slice(&r);
    reply(ch, 36, alloc);
}

fn blocks(ch: &Channel) -> u64 {
    ch.devices[ch.selected]
        .as_ref()
        .map_or(0, |d| d.disk.len() / CD_BLOCK_SIZE as u64)
}

fn read_capacity(ch: &mut Channel) {
    let last = blocks(ch).saturating_sub(1).min(u32::MAX as u64) as u32;
    ch.buf[..4].copy_from_slice(&last.to_be_bytes());
    ch.buf[4..8].copy_from_slice(&(CD_BLOCK_SIZE as u32).to_be_bytes());
    reply(ch, 8, 8);
}

fn read(ch: &mut Channel, lba: u32, count: u32) {
    let total = blocks(ch);
    if lba as u64 + count as u64 > total {
        check_condition(ch, SK_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE, 0);
        return;
    }
    if count == 0 {
        good(ch);
        return;
    }
    read_chunk(
        ch,
        lba as u64 * CD_BLOCK_SIZE as u64,
        count as u64 * CD_BLOCK_SIZE as u64,
    );
}

/// Read the next chunk of a READ (at most the byte-count limit, whole
/// blocks when the limit allows) and offer it.
fn read_chunk(ch: &mut Channel, offset: u64, remaining: u64) {
    let limit = byte_count_limit(ch);
    let limit = if limit >= CD_BLOCK_SIZE {
        limit / CD_BLOCK_SIZE * CD_BLOCK_SIZE
    } else {
        limit
    };
    let n = remaining.min(limit as u64) as usize;
    let Some(d) = ch.devices[ch.selected].as_ref() else {
        return;
    };
    if let Err(e) = d.disk.read_at(offset, &mut ch.buf[..n]) {
        log::warn!("{}: read failed: {e}", d.disk.path().display());
        check_condition(ch, SK_NOT_READY, ASC_INCOMPATIBLE_FORMAT, 0);
        return;
    }
    ch.transfer = Transfer::AtapiRead {
        next: offset + n as u64,
        remaining: remaining - n as u64,
    };
    ch.buf_pos = 0;
    ch.buf_len = n;
    data_in_chunk(ch, n);
}

/// Logical block address → minutes/seconds/frames (75 frames a second,
/// two seconds of lead-in before LBA 0).
fn msf(lba: u32) -> [u8; 4] {
    let f = lba + 150;
    [
        0,
        (f / (75 * 60)) as u8,
        ((f / 75) % 60) as u8,
        (f % 75) as u8,
    ]
}

fn read_toc(ch: &mut Channel, p: &[u8; 12], alloc: usize) {
    let use_msf = p[1] & 0x02 != 0;
    // The format is in byte 2 (MMC) or, from older drivers, byte 9 bits 7–6.
    let format = match p[2] & 0x0F {
        0 => p[9] >> 6,
        f => f,
    };
    let addr = |lba: u32| {
        if use_msf {
            msf(lba)
        } else {
            lba.to_be_bytes()
        }
    };
    let leadout = blocks(ch).min(u32::MAX as u64 - 150) as u32;
    let mut r = [0u8; 20];
    let len = match format {
        0 => {
            let start_track = p[6];
            if start_track > 1 && start_track != 0xAA {
                check_condition(ch, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
                return;
            }
            let mut n = 4;
            r[2] = 1; // first track
            r[3] = 1; // last track
            if start_track <= 1 {
                // Track 1: data track (control 4), ADR 1, at LBA 0.
                r[n + 1] = 0x14;
                r[n + 2] = 1;
                r[n + 4..n + 8].copy_from_slice(&addr(0));
                n += 8;
            }
            r[n + 1] = 0x14;
            r[n + 2] = 0xAA; // lead-out
            r[n + 4..n + 8].copy_from_slice(&addr(leadout));
            n + 8
        }
        1 => {
            // Session information: one session starting with track 1.
            r[2] = 1;
            r[3] = 1;
            r[5] = 0x14;
            r[6] = 1;
            r[8..12].copy_from_slice(&addr(0));
            12
        }
        _ => {
            check_condition(ch, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
            return;
        }
    };
    r[..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    ch.buf[..len].copy_from_slice(&r[..len]);
    reply(ch, len, alloc);
}

fn mode_sense(ch: &mut Channel, page_byte: u8, alloc: usize) {
    let page = page_byte & 0x3F;
    let mut r = [0u8; 64];
    // Mode parameter header (10): medium type 01h (120 mm CD-ROM, data
    // only), no block descriptors.
    r[2] = 0x01;
    let mut n = 8;
    if page == 0x01 || page == 0x3F {
        // Read/write error recovery page.
        r[n] = 0x01;
        r[n + 1] = 0x06;
        n += 8;
    }
    if page == 0x2A || page == 0x3F {
        // CD capabilities and mechanical status page (MMC-2): reads CD-R/RW
        // media, a tray that locks and ejects, 8× speed.
        let pg = &mut r[n..n + 20];
        pg[0] = 0x2A;
        pg[1] = 0x12;
        pg[2] = 0x03; // reads CD-R, CD-RW
        pg[4] = 0x71; // multi-session, mode 2 form 1/2, audio play
        pg[5] = 0x00;
        pg[6] = 0x29; // tray, eject supported, lock supported
        pg[8..10].copy_from_slice(&1378u16.to_be_bytes()); // max speed, kB/s
        pg[10..12].copy_from_slice(&256u16.to_be_bytes()); // volume levels
        pg[12..14].copy_from_slice(&64u16.to_be_bytes()); // buffer, KiB
        pg[14..16].copy_from_slice(&1378u16.to_be_bytes()); // current speed
        n += 20;
    }
    if n == 8 {
        check_condition(ch, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
        return;
    }
    r[..2].copy_from_slice(&((n - 2) as u16).to_be_bytes());
    ch.buf[..n].copy_from_slice(&r[..n]);
    reply(ch, n, alloc);
}

fn get_configuration(ch: &mut Channel, alloc: usize) {
    // Feature header with current profile CD-ROM (0008h) and the Profile
    // List feature (0000h) listing that one profile as current.
    let mut r = [0u8; 16];
    r[..4].copy_from_slice(&12u32.to_be_bytes());
    r[6..8].copy_from_slice(&0x0008u16.to_be_bytes());
    r[8..10].copy_from_slice(&0u16.to_be_bytes());
    r[10] = 0x03; // persistent, current
    r[11] = 4;
    r[12..14].copy_from_slice(&0x0008u16.to_be_bytes());
    r[14] = 0x01; // current
    ch.buf[..16].copy_from_slice(&r);
    reply(ch, 16, alloc);
}

fn get_event_status(ch: &mut Channel, p: &[u8; 12], alloc: usize) {
    if p[1] & 0x01 == 0 {
        // Only polled operation is supported (MMC).
        check_condition(ch, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD, 0);
        return;
    }
    // Header only: no event class supported (NEA set).
    let r = [0u8, 2, 0x80, 0x00];
    ch.buf[..4].copy_from_slice(&r);
    reply(ch, 4, alloc);
}
