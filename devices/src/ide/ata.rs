//! ATA hard-disk commands (ATA/ATAPI-6 command set, PIO only).

use super::*;

/// Largest READ/WRITE MULTIPLE block we offer (IDENTIFY word 47).
const MAX_MULTIPLE: u16 = 16;

/// Execute command `cmd` on the selected ATA device.
pub(super) fn command(ch: &mut Channel, cmd: u8) {
    match cmd {
        0xEC => identify(ch),
        0x20 | 0x21 => read(ch, false, false),
        0x24 => read(ch, true, false),
        0xC4 => read(ch, false, true),
        0x29 => read(ch, true, true),
        0x30 | 0x31 => write(ch, false, false),
        0x34 => write(ch, true, false),
        0xC5 => write(ch, false, true),
        0x39 => write(ch, true, true),
        0x40 | 0x41 => verify(ch, false),
        0x42 => verify(ch, true),
        0xC6 => set_multiple(ch),
        0xEF => set_features(ch),
        0xE7 | 0xEA => flush(ch),
        0x91 => initialize_device_parameters(ch),
        0x90 => execute_diagnostic(ch),
        // RECALIBRATE, SEEK, the power-management commands (IDLE/STANDBY
        // and their IMMEDIATE forms, SLEEP excluded): nothing to do.
        0x10..=0x1F | 0x70 | 0xE0..=0xE3 => ch.complete(),
        // CHECK POWER MODE: active (count = FFh).
        0xE5 => {
            ch.tf.count[0] = 0xFF;
            ch.complete();
        }
        // NOP, IDENTIFY PACKET DEVICE, PACKET, DEVICE RESET and anything we
        // do not know abort (NOP always does, by definition).
        _ => {
            log::debug!("IDE: unsupported ATA command {cmd:#04x}");
            ch.fail(ER_ABRT);
        }
    }
}

fn identify(ch: &mut Channel) {
    let Some(d) = ch.devices[ch.selected].as_ref() else {
        return;
    };
    let mut b = [0u8; 512];
    let sectors = d.disk.sectors();
    let cyl = d.default_cylinders();
    put_word(&mut b, 0, 0x0040); // fixed device, not removable
    put_word(&mut b, 1, cyl);
    put_word(&mut b, 3, 16);
    put_word(&mut b, 4, 512 * 63); // obsolete: bytes per track
    put_word(&mut b, 5, 512); // obsolete: bytes per sector
    put_word(&mut b, 6, 63);
    put_ata_string(&mut b, 10, 10, d.serial());
    put_word(&mut b, 20, 3); // obsolete: buffer type
    put_word(&mut b, 21, 512); // obsolete: buffer size
    put_ata_string(&mut b, 23, 4, "0.1");
    put_ata_string(&mut b, 27, 20, d.model());
    put_word(&mut b, 47, 0x8000 | MAX_MULTIPLE);
    put_word(&mut b, 49, 0x0200); // LBA supported (no DMA)
    put_word(&mut b, 50, 0x4000);
    put_word(&mut b, 51, 0x0200); // PIO mode 2 timing
    put_word(&mut b, 53, 0x0003); // words 54–58 and 64–70 valid
                                  // Current CHS translation and its capacity.
    let cur_cyl =
        (sectors / (d.heads as u64 * d.sectors_per_track as u64).max(1)).clamp(1, 65535) as u16;
    put_word(&mut b, 54, cur_cyl);
    put_word(&mut b, 55, d.heads as u16);
    put_word(&mut b, 56, d.sectors_per_track as u16);
    let chs_cap = cur_cyl as u32 * d.heads as u32 * d.sectors_per_track as u32;
    put_word(&mut b, 57, chs_cap as u16);
    put_word(&mut b, 58, (chs_cap >> 16) as u16);
    if d.multiple != 0 {
        put_word(&mut b, 59, 0x0100 | d.multiple);
    }
    let lba28 = sectors.min(0x0FFF_FFFF) as u32;
    put_word(&mut b, 60, lba28 as u16);
    put_word(&mut b, 61, (lba28 >> 16) as u16);
    put_word(&mut b, 64, 0x0003); // PIO modes 3 and 4
    for w in 65..=68 {
        put_word(&mut b, w, 120);
    }
    // Major version: ATA-1 .. ATA-6.
    put_word(&mut b, 80, 0x007E);
    // Supported / enabled: NOP (14), write cache (5); 48-bit (10), FLUSH
    // CACHE (12), FLUSH CACHE EXT (13).
    put_word(&mut b, 82, 0x4020);
    put_word(&mut b, 83, 0x7400);
    put_word(&mut b, 84, 0x4000);
    put_word(&mut b, 85, 0x4020);
    put_word(&mut b, 86, 0x3400);
    put_word(&mut b, 87, 0x4000);
    for (i, w) in (100..=103).enumerate() {
        put_word(&mut b, w, (sectors >> (16 * i)) as u16);
    }
    ch.buf[..512].copy_from_slice(&b);
    ch.start_pio_in(512, Transfer::PioInSingle);
}

/// The starting sector and count of a read/write/verify command, or `None`
/// after failing the command (CHS address outside the geometry).
fn address(ch: &mut Channel, ext: bool) -> Option<(u64, u32)> {
    let tf = ch.tf;
    let count = if ext {
        match u16::from_le_bytes([tf.count[0], tf.count[1]]) {
            0 => 65536,
            n => n as u32,
        }
    } else {
        match tf.count[0] {
            0 => 256,
            n => n as u32,
        }
    };
    let lba = if ext {
        tf.lba48()
    } else if tf.device & 0x40 != 0 {
        tf.lba28()
    } else {
        // CHS: cylinder in LBA mid/high, head in device[3:0], sector
        // (1-based) in LBA low, translated with the current geometry.
        let d = ch.devices[ch.selected].as_ref()?;
        let cyl = u16::from_le_bytes([tf.lba_mid[0], tf.lba_high[0]]) as u64;
        let head = (tf.device & 0x0F) as u64;
        let sect = tf.lba_low[0] as u64;
        let (h, s) = (d.heads as u64, d.sectors_per_track as u64);
        if sect == 0 || sect > s || head >= h {
            ch.fail(ER_IDNF | ER_ABRT);
            return None;
        }
        (cyl * h + head) * s + sect - 1
    };
    Some((lba, count))
}

/// Whether `[lba, lba+count)` lies on the disk; fails the command if not.
fn in_range(ch: &mut Channel, lba: u64, count: u32, ext: bool) -> bool {
    let sectors = ch.devices[ch.selected]
        .as_ref()
        .map_or(0, |d| d.disk.sectors());
    if lba.checked_add(count as u64).is_some_and(|e| e <= sectors) {
        return true;
    }
    ch.tf.set_lba(lba.min(sectors), ext);
    ch.fail(ER_IDNF);
    false
}

fn block_size(ch: &mut Channel, multiple: bool) -> Option<u16> {
    if !multiple {
        return Some(1);
    }
    match ch.dev().map(|d| d.multiple) {
        Some(0) | None => {
            // READ/WRITE MULTIPLE before SET MULTIPLE MODE: aborted.
            ch.fail(ER_ABRT);
            None
        }
        Some(m) => Some(m),
    }
}

fn read(ch: &mut Channel, ext: bool, multiple: bool) {
    let Some(block) = block_size(ch, multiple) else {
        return;
    };
    let Some((lba, count)) = address(ch, ext) else {
        return;
    };
    if !in_range(ch, lba, count, ext) {
        return;
    }
    load_read_block(ch, lba, count, block);
}

/// Read the next block (up to `block` sectors of the `count` left) into the
/// buffer and offer it to the host.
fn load_read_block(ch: &mut Channel, lba: u64, count: u32, block: u16) {
    let n = count.min(block as u32) as usize;
    let Some(d) = ch.devices[ch.selected].as_ref() else {
        return;
    };
    if let Err(e) = d.disk.read_sectors(lba, &mut ch.buf[..n * 512]) {
        log::warn!("{}: read at LBA {lba} failed: {e}", d.disk.path().display());
        ch.tf.set_lba(lba, false);
        ch.fail(ER_UNC | ER_ABRT);
        return;
    }
    ch.start_pio_in(
        n * 512,
        Transfer::AtaRead {
            next_lba: lba + n as u64,
            remaining: count - n as u32,
            block,
        },
    );
}

/// The host has taken a whole block of a read.
pub(super) fn end_of_block_in(ch: &mut Channel) {
    let Transfer::AtaRead {
        next_lba,
        remaining,
        block,
    } = ch.transfer
    else {
        return;
    };
    if remaining == 0 {
        // Last block: DRQ drops, no further interrupt (ATA-6 PIO data-in).
        ch.transfer = Transfer::None;
        if let Some(d) = ch.dev() {
            d.status = ST_DRDY | ST_DSC;
        }
    } else {
        load_read_block(ch, next_lba, remaining, block);
    }
}

fn write(ch: &mut Channel, ext: bool, multiple: bool) {
    let Some(block) = block_size(ch, multiple) else {
        return;
    };
    let Some((lba, count)) = address(ch, ext) else {
        return;
    };
    if !in_range(ch, lba, count, ext) {
        return;
    }
    let n = count.min(block as u32);
    ch.start_pio_out(
        n as usize * 512,
        Transfer::AtaWrite {
            lba,
            remaining: count - n,
            block,
            ext,
        },
        false,
    );
}

/// The host has written a whole block: store it, then ask for the next one
/// or finish, with an interrupt either way.
pub(super) fn end_of_block_out(ch: &mut Channel) {
    let Transfer::AtaWrite {
        lba,
        remaining,
        block,
        ext,
    } = ch.transfer
    else {
        return;
    };
    let len = ch.buf_len;
    let Some(d) = ch.devices[ch.selected].as_mut() else {
        return;
    };
    if let Err(e) = d.disk.write_sectors(lba, &ch.buf[..len]) {
        log::warn!(
            "{}: write at LBA {lba} failed: {e}",
            d.disk.path().display()
        );
        ch.tf.set_lba(lba, ext);
        ch.fail(ER_ABRT);
        return;
    }
    let next = lba + (len / 512) as u64;
    if remaining == 0 {
        ch.complete();
    } else {
        let n = remaining.min(block as u32);
        ch.start_pio_out(
            n as usize * 512,
            Transfer::AtaWrite {
                lba: next,
                remaining: remaining - n,
                block,
                ext,
            },
            true,
        );
    }
}

fn verify(ch: &mut Channel, ext: bool) {
    let Some((lba, count)) = address(ch, ext) else {
        return;
    };
    if in_range(ch, lba, count, ext) {
        ch.complete();
    }
}

fn set_multiple(ch: &mut Channel) {
    let n = ch.tf.count[0] as u16;
    // Powers of two up to our maximum; 0 disables multiple mode.
    if n > MAX_MULTIPLE || (n != 0 && !n.is_power_of_two()) {
        ch.fail(ER_ABRT);
        return;
    }
    if let Some(d) = ch.dev() {
        d.multiple = n;
    }
    ch.complete();
}

fn set_features(ch: &mut Channel) {
    match ch.tf.feature[0] {
        // Enable/disable write cache, set transfer mode, enable/disable
        // reverting to power-on defaults, enable/disable read look-ahead:
        // accepted (we have no cache; PIO modes are all the same to us).
        0x02 | 0x82 | 0x03 | 0x66 | 0xCC | 0x55 | 0xAA => ch.complete(),
        f => {
            log::debug!("IDE: SET FEATURES {f:#04x} not supported");
            ch.fail(ER_ABRT);
        }
    }
}

fn flush(ch: &mut Channel) {
    let Some(d) = ch.dev() else {
        return;
    };
    if let Err(e) = d.disk.flush() {
        log::warn!("{}: flush failed: {e}", d.disk.path().display());
        ch.fail(ER_ABRT);
        return;
    }
    ch.complete();
}

fn initialize_device_parameters(ch: &mut Channel) {
    let heads = (ch.tf.device & 0x0F) + 1;
    let spt = ch.tf.count[0];
    if spt == 0 {
        ch.fail(ER_ABRT);
        return;
    }
    if let Some(d) = ch.dev() {
        d.heads = heads;
        d.sectors_per_track = spt;
    }
    ch.complete();
}

/// EXECUTE DEVICE DIAGNOSTIC: both devices post their signatures; device 0
/// reports code 01h (passed).
pub(super) fn execute_diagnostic(ch: &mut Channel) {
    for d in ch.devices.iter_mut().flatten() {
        d.error = 0x01;
        d.status = if d.is_atapi() { 0 } else { ST_DRDY | ST_DSC };
    }
    ch.selected = 0;
    ch.set_signature(0);
    ch.raise_irq();
}
