//! IDE/ATA controller: two channels (primary 0x1F0–0x1F7 + 0x3F6, IRQ14;
//! secondary 0x170–0x177 + 0x376, IRQ15), each with a master and a slave
//! device that is a hard disk ([`ata`]) or an ATAPI CD-ROM ([`atapi`]).
//!
//! Commands complete at once, in virtual time zero: the status register
//! never shows BSY after a command was written (it does while SRST is
//! held). A driver that polls BSY, DRQ or waits for the interrupt works the
//! same; a run stays reproducible.
//!
//! Interrupts: INTRQ is a level signal. The device sets its interrupt
//! pending flag when it wants service; reading the status register clears
//! it; nIEN in the device control register gates it. The board's PIC owner
//! reads [`Ide::irq_level`] for channel 0 (IRQ14) and 1 (IRQ15).
//!
//! Register facts follow the ATA/ATAPI-6 standard (T13/1410D): the
//! taskfile registers are written to both devices of a channel at once;
//! with LBA48 each register is a two-deep FIFO whose older byte reads back
//! with HOB set in device control; an absent device 1 reads status 0 when
//! device 0 exists.

use std::ops::RangeInclusive;

mod ata;
mod atapi;

use crate::disk::Disk;

/// Primary channel command block base.
pub const PRIMARY_BASE: u16 = 0x1F0;
/// Primary channel control block (alternate status / device control).
pub const PRIMARY_CTRL: u16 = 0x3F6;
/// Secondary channel command block base.
pub const SECONDARY_BASE: u16 = 0x170;
/// Secondary channel control block.
pub const SECONDARY_CTRL: u16 = 0x376;
/// ISA IRQ of each channel.
pub const CHANNEL_IRQ: [u8; 2] = [14, 15];

// Status register bits.
pub(crate) const ST_ERR: u8 = 0x01;
pub(crate) const ST_DRQ: u8 = 0x08;
pub(crate) const ST_DSC: u8 = 0x10;
pub(crate) const ST_DF: u8 = 0x20;
pub(crate) const ST_DRDY: u8 = 0x40;
pub(crate) const ST_BSY: u8 = 0x80;

// Error register bits.
pub(crate) const ER_ABRT: u8 = 0x04;
pub(crate) const ER_IDNF: u8 = 0x10;
pub(crate) const ER_UNC: u8 = 0x40;

// Device control register bits.
const DC_NIEN: u8 = 0x02;
const DC_SRST: u8 = 0x04;
const DC_HOB: u8 = 0x80;

/// The PIO buffer of a channel: the largest block one DRQ phase moves
/// (128 sectors of READ MULTIPLE, or one ATAPI chunk, at most 0xFFFE bytes).
const BUF_SIZE: usize = 128 * 512;

/// What kind of device sits on a channel.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub enum DeviceKind {
    /// A hard disk.
    Disk,
    /// An ATAPI CD-ROM drive (with its image loaded).
    CdRom,
}

/// One device (master or slave).
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub(crate) struct Device {
    pub(crate) kind: DeviceKind,
    pub(crate) disk: Disk,
    pub(crate) status: u8,
    pub(crate) error: u8,
    /// Current CHS translation (INITIALIZE DEVICE PARAMETERS changes it).
    pub(crate) heads: u8,
    pub(crate) sectors_per_track: u8,
    /// Sectors per DRQ block of READ/WRITE MULTIPLE (0: not set).
    pub(crate) multiple: u16,
    /// ATAPI sense data of the last command (key, ASC, ASCQ).
    pub(crate) sense: (u8, u8, u8),
    /// ATAPI: the medium changed since the host last looked (first
    /// command after reset reports UNIT ATTENTION, as real drives do).
    pub(crate) unit_attention: bool,
    model: String,
    serial: String,
}

/// The taskfile registers a channel's devices share. Each holds the last
/// and previous byte written (the LBA48 FIFO).
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, Default)]
pub(crate) struct Taskfile {
    pub(crate) feature: [u8; 2],
    pub(crate) count: [u8; 2],
    pub(crate) lba_low: [u8; 2],
    pub(crate) lba_mid: [u8; 2],
    pub(crate) lba_high: [u8; 2],
    pub(crate) device: u8,
}

impl Taskfile {
    fn push(r: &mut [u8; 2], v: u8) {
        r[1] = r[0];
        r[0] = v;
    }

    /// The 28-bit LBA of an LBA-mode command.
    pub(crate) fn lba28(&self) -> u64 {
        (self.lba_low[0] as u64)
            | (self.lba_mid[0] as u64) << 8
            | (self.lba_high[0] as u64) << 16
            | ((self.device & 0x0F) as u64) << 24
    }

    /// The 48-bit LBA of an EXT command.
    pub(crate) fn lba48(&self) -> u64 {
        (self.lba_low[0] as u64)
            | (self.lba_mid[0] as u64) << 8
            | (self.lba_high[0] as u64) << 16
            | (self.lba_low[1] as u64) << 24
            | (self.lba_mid[1] as u64) << 32
            | (self.lba_high[1] as u64) << 40
    }

    /// Write an LBA back into the registers (after an error, the address of
    /// the failing sector; LBA48 fills both FIFO levels).
    pub(crate) fn set_lba(&mut self, lba: u64, ext: bool) {
        self.lba_low[0] = lba as u8;
        self.lba_mid[0] = (lba >> 8) as u8;
        self.lba_high[0] = (lba >> 16) as u8;
        if ext {
            self.lba_low[1] = (lba >> 24) as u8;
            self.lba_mid[1] = (lba >> 32) as u8;
            self.lba_high[1] = (lba >> 40) as u8;
        } else {
            self.device = (self.device & 0xF0) | ((lba >> 24) as u8 & 0x0F);
        }
    }
}

/// What the data register is moving, and what happens at the end of a
/// block.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    /// No data phase.
    None,
    /// Device → host: one block of IDENTIFY, no further blocks.
    PioInSingle,
    /// READ SECTORS / MULTIPLE: `remaining` sectors after this block,
    /// starting at `next_lba`, in blocks of `block` sectors.
    AtaRead {
        next_lba: u64,
        remaining: u32,
        block: u16,
    },
    /// WRITE SECTORS / MULTIPLE: the buffer block goes to `lba`; `remaining`
    /// sectors follow it.
    AtaWrite {
        lba: u64,
        remaining: u32,
        block: u16,
        ext: bool,
    },
    /// ATAPI: receiving the 12-byte command packet.
    Packet,
    /// ATAPI data-in from a prepared response (the buffer holds it all).
    AtapiReply,
    /// ATAPI READ: bytes from offset `next` of the image, `remaining` more
    /// after this chunk.
    AtapiRead { next: u64, remaining: u64 },
}

/// One IDE channel: two device slots and the shared registers.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Channel {
    pub(crate) devices: [Option<Device>; 2],
    /// Device selected by bit 4 of the device register.
    pub(crate) selected: usize,
    pub(crate) tf: Taskfile,
    device_control: u8,
    /// INTRQ wanted by the device (before nIEN).
    pub(crate) irq_pending: bool,
    pub(crate) buf: Box<[u8]>,
    pub(crate) buf_pos: usize,
    pub(crate) buf_len: usize,
    /// End of an ATAPI reply held whole in `buf` (`buf_len` ends the
    /// current chunk of it).
    pub(crate) atapi_reply_end: usize,
    pub(crate) transfer: Transfer,
}

/// The two-channel IDE controller.
#[derive(serde::Serialize, serde::Deserialize, Debug)]
pub struct Ide {
    /// Primary (0) and secondary (1) channels.
    pub channels: [Channel; 2],
}

impl Default for Ide {
    fn default() -> Self {
        Ide::new()
    }
}

/// ATA strings: two characters per word, the first in the high byte, padded
/// with spaces. Writes `s` into `words` of an IDENTIFY block.
pub(crate) fn put_ata_string(block: &mut [u8], first_word: usize, words: usize, s: &str) {
    let bytes = s.as_bytes();
    for i in 0..words * 2 {
        let c = bytes.get(i).copied().unwrap_or(b' ');
        // Byte i of the string goes to the high byte of its word when i is
        // even: swap within each word.
        block[first_word * 2 + (i ^ 1)] = c;
    }
}

/// Store a 16-bit word of an IDENTIFY block (little-endian on the wire).
pub(crate) fn put_word(block: &mut [u8], word: usize, v: u16) {
    block[word * 2..word * 2 + 2].copy_from_slice(&v.to_le_bytes());
}

impl Device {
    fn new(kind: DeviceKind, disk: Disk, index: usize) -> Device {
        let (model, serial) = match kind {
            DeviceKind::Disk => ("RINGSIDE HARDDISK", format!("RS-HD{index:04}")),
            DeviceKind::CdRom => ("RINGSIDE CD-ROM", format!("RS-CD{index:04}")),
        };
        let mut d = Device {
            kind,
            disk,
            status: 0,
            error: 0,
            heads: 16,
            sectors_per_track: 63,
            multiple: 0,
            sense: (0, 0, 0),
            unit_attention: false,
            model: model.to_string(),
            serial,
        };
        d.reset();
        d
    }

    pub(crate) fn is_atapi(&self) -> bool {
        matches!(self.kind, DeviceKind::CdRom)
    }

    /// Power-on / reset state: status and the diagnostic code.
    fn reset(&mut self) {
        self.error = 0x01; // diagnostic: no error
        self.status = if self.is_atapi() { 0 } else { ST_DRDY | ST_DSC };
        if self.is_atapi() {
            self.unit_attention = true;
            self.sense = (0, 0, 0);
        } else {
            self.heads = 16;
            self.sectors_per_track = 63;
        }
    }

    /// Cylinders of the default geometry (16 heads × 63 sectors), at most
    /// 16383 as ATA caps it for disks beyond 8.4 GB.
    pub(crate) fn default_cylinders(&self) -> u16 {
        (self.disk.sectors() / (16 * 63)).clamp(1, 16383) as u16
    }

    pub(crate) fn model(&self) -> &str {
        &self.model
    }
    pub(crate) fn serial(&self) -> &str {
        &self.serial
    }
}

impl Channel {
    fn new() -> Channel {
        Channel {
            devices: [None, None],
            selected: 0,
            tf: Taskfile::default(),
            device_control: 0,
            irq_pending: false,
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            buf_pos: 0,
            buf_len: 0,
            atapi_reply_end: 0,
            transfer: Transfer::None,
        }
    }

    pub(crate) fn dev(&mut self) -> Option<&mut Device> {
        self.devices[self.selected].as_mut()
    }

    /// Signatures after reset or EXECUTE DEVICE DIAGNOSTIC (ATA-6 9.12):
    /// count = lba_low = 1; ATAPI devices put 14h/EBh in LBA mid/high.
    fn set_signature(&mut self, slot: usize) {
        let atapi = self.devices[slot].as_ref().is_some_and(|d| d.is_atapi());
        self.tf.count[0] = 1;
        self.tf.lba_low[0] = 1;
        self.tf.lba_mid[0] = if atapi { 0x14 } else { 0 };
        self.tf.lba_high[0] = if atapi { 0xEB } else { 0 };
        self.tf.device = 0;
    }

    /// Software / hardware reset of both devices.
    fn reset_devices(&mut self) {
        for d in self.devices.iter_mut().flatten() {
            d.reset();
        }
        self.selected = 0;
        self.transfer = Transfer::None;
        self.buf_pos = 0;
        self.buf_len = 0;
        self.irq_pending = false;
        self.set_signature(0);
    }

    /// Raise INTRQ (if the guest did not mask it with nIEN, the line goes up).
    pub(crate) fn raise_irq(&mut self) {
        self.irq_pending = true;
    }

    /// End a command successfully with no data: DRDY, interrupt.
    pub(crate) fn complete(&mut self) {
        self.transfer = Transfer::None;
        if let Some(d) = self.dev() {
            d.status = ST_DRDY | ST_DSC;
            d.error = 0;
        }
        self.raise_irq();
    }

    /// End a command with an error: ERR, error register `err`, interrupt.
    pub(crate) fn fail(&mut self, err: u8) {
        self.transfer = Transfer::None;
        self.buf_pos = 0;
        self.buf_len = 0;
        if let Some(d) = self.dev() {
            d.status = ST_DRDY | ST_ERR;
            d.error = err;
        }
        self.raise_irq();
    }

    /// Offer `len` bytes of the buffer to the host: DRQ.
    pub(crate) fn start_pio_in(&mut self, len: usize, transfer: Transfer) {
        self.buf_pos = 0;
        self.buf_len = len;
        self.transfer = transfer;
        if let Some(d) = self.dev() {
            d.status = ST_DRDY | ST_DSC | ST_DRQ;
            d.error = 0;
        }
        self.raise_irq();
    }

    /// Ask the host for `len` bytes: DRQ, no interrupt for the first block of
    /// a PIO-out command (ATA-6 9.8, PIO data-out protocol).
    pub(crate) fn start_pio_out(&mut self, len: usize, transfer: Transfer, irq: bool) {
        self.buf_pos = 0;
        self.buf_len = len;
        self.transfer = transfer;
        if let Some(d) = self.dev() {
            d.status = ST_DRDY | ST_DSC | ST_DRQ;
            d.error = 0;
        }
        if irq {
            self.raise_irq();
        }
    }

    fn status(&self) -> u8 {
        if self.device_control & DC_SRST != 0 {
            return ST_BSY;
        }
        match &self.devices[self.selected] {
            Some(d) => d.status,
            // Device 0 answers for an absent device 1 with status 0.
            None if self.devices[0].is_some() || self.devices[1].is_some() => 0,
            // Nothing on the cable: the bus floats (pulled up).
            None => 0xFF,
        }
    }

    fn has_devices(&self) -> bool {
        self.devices.iter().any(Option::is_some)
    }

    /// Read a command block register (offset 0–7 from the base).
    fn read_reg(&mut self, reg: u16, size: u8) -> u32 {
        if !self.has_devices() {
            return match size {
                1 => 0xFF,
                2 => 0xFFFF,
                _ => 0xFFFF_FFFF,
            };
        }
        let hob = (self.device_control & DC_HOB != 0) as usize;
        let v = match reg {
            0 => return self.read_data(size),
            1 => match &self.devices[self.selected] {
                Some(d) => d.error,
                None => 0,
            },
            2 => self.tf.count[hob],
            3 => self.tf.lba_low[hob],
            4 => self.tf.lba_mid[hob],
            5 => self.tf.lba_high[hob],
            // Bits 7 and 5 are obsolete and read as one on most devices.
            6 => self.tf.device | 0xA0,
            _ => {
                // Reading the status register acknowledges the interrupt.
                self.irq_pending = false;
                self.status()
            }
        };
        v as u32
    }

    fn write_reg(&mut self, reg: u16, size: u8, v: u32) {
        if reg == 0 {
            self.write_data(size, v);
            return;
        }
        let b = v as u8;
        // A write to any command block register clears HOB (ATA-6 7.9).
        self.device_control &= !DC_HOB;
        match reg {
            1 => Taskfile::push(&mut self.tf.feature, b),
            2 => Taskfile::push(&mut self.tf.count, b),
            3 => Taskfile::push(&mut self.tf.lba_low, b),
            4 => Taskfile::push(&mut self.tf.lba_mid, b),
            5 => Taskfile::push(&mut self.tf.lba_high, b),
            6 => {
                self.tf.device = b;
                self.selected = ((b >> 4) & 1) as usize;
            }
            _ => self.command(b),
        }
    }

    fn write_control(&mut self, v: u8) {
        let was_reset = self.device_control & DC_SRST != 0;
        self.device_control = v;
        if v & DC_SRST != 0 && !was_reset {
            log::debug!("IDE: software reset");
            self.reset_devices();
        } else if v & DC_SRST == 0 && was_reset {
            // End of the reset pulse: the devices post their signatures.
            self.reset_devices();
        }
    }

    fn command(&mut self, cmd: u8) {
        if self.device_control & DC_SRST != 0 {
            return;
        }
        let Some(dev) = self.dev() else {
            // No device 1: commands to it are ignored (device 0 does not
            // execute them either).
            return;
        };
        // A new command while a data phase is pending ends that phase (the
        // guest gave up on it).
        dev.status &= !(ST_ERR | ST_DF);
        self.transfer = Transfer::None;
        self.irq_pending = false;
        self.buf_pos = 0;
        self.buf_len = 0;
        if self.devices[self.selected]
            .as_ref()
            .is_some_and(|d| d.is_atapi())
        {
            atapi::command(self, cmd);
        } else {
            ata::command(self, cmd);
        }
    }

    fn read_data(&mut self, size: u8) -> u32 {
        let in_phase = matches!(
            self.transfer,
            Transfer::PioInSingle
                | Transfer::AtaRead { .. }
                | Transfer::AtapiReply
                | Transfer::AtapiRead { .. }
        );
        if !in_phase || self.buf_pos >= self.buf_len {
            return 0;
        }
        let n = (size as usize).min(4);
        let mut v = 0u32;
        for i in 0..n {
            let b = if self.buf_pos < self.buf_len {
                let b = self.buf[self.buf_pos];
                self.buf_pos += 1;
                b
            } else {
                0
            };
            v |= (b as u32) << (8 * i);
        }
        if self.buf_pos >= self.buf_len {
            self.end_of_block_in();
        }
        v
    }

    fn write_data(&mut self, size: u8, v: u32) {
        if !matches!(self.transfer, Transfer::AtaWrite { .. } | Transfer::Packet) {
            return;
        }
        for i in 0..(size as usize).min(4) {
            if self.buf_pos < self.buf_len {
                self.buf[self.buf_pos] = (v >> (8 * i)) as u8;
                self.buf_pos += 1;
            }
        }
        if self.buf_pos >= self.buf_len {
            match self.transfer {
                Transfer::Packet => atapi::packet_received(self),
                _ => ata::end_of_block_out(self),
            }
        }
    }

    fn end_of_block_in(&mut self) {
        match self.transfer {
            Transfer::AtaRead { .. } => ata::end_of_block_in(self),
            Transfer::AtapiReply | Transfer::AtapiRead { .. } => atapi::end_of_chunk(self),
            _ => {
                self.transfer = Transfer::None;
                if let Some(d) = self.dev() {
                    d.status &= !ST_DRQ;
                }
            }
        }
    }

    /// Whether the INTRQ line is asserted.
    pub fn irq_level(&self) -> bool {
        self.irq_pending && self.device_control & DC_NIEN == 0
    }
}

impl Ide {
    /// A controller with no devices attached.
    pub fn new() -> Ide {
        Ide {
            channels: [Channel::new(), Channel::new()],
        }
    }

    /// Attach `disk` as a hard disk (or CD-ROM) at `channel` (0 primary,
    /// 1 secondary), `slot` (0 master, 1 slave). Replaces what was there.
    pub fn attach(&mut self, channel: usize, slot: usize, kind: DeviceKind, disk: Disk) {
        let ch = &mut self.channels[channel & 1];
        ch.devices[slot & 1] = Some(Device::new(kind, disk, channel * 2 + slot));
        ch.reset_devices();
    }

    /// Hardware reset (board reset): every device back to its power-on state.
    pub fn reset(&mut self) {
        for ch in &mut self.channels {
            ch.device_control = 0;
            ch.reset_devices();
        }
    }

    /// Sync every image with guest-visible writes to the host (on exit).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for ch in &mut self.channels {
            for d in ch.devices.iter_mut().flatten() {
                d.disk.flush().map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", d.disk.path().display()))
                })?;
            }
        }
        Ok(())
    }

    /// Whether channel `ch`'s INTRQ line (IRQ14 for 0, IRQ15 for 1) is up.
    pub fn irq_level(&self, ch: usize) -> bool {
        self.channels[ch & 1].irq_level()
    }

    /// The ports this controller decodes: both channels' command and
    /// control blocks.
    pub const PORTS: &[RangeInclusive<u16>] = &[
        PRIMARY_BASE..=PRIMARY_BASE + 7,
        SECONDARY_BASE..=SECONDARY_BASE + 7,
        PRIMARY_CTRL..=PRIMARY_CTRL,
        SECONDARY_CTRL..=SECONDARY_CTRL,
    ];

    /// Port read; `None` if the port is not ours.
    pub fn io_read(&mut self, port: u16, size: u8) -> Option<u32> {
        match port {
            0x1F0..=0x1F7 => Some(self.channels[0].read_reg(port - PRIMARY_BASE, size)),
            0x170..=0x177 => Some(self.channels[1].read_reg(port - SECONDARY_BASE, size)),
            PRIMARY_CTRL | SECONDARY_CTRL => {
                let ch = &self.channels[(port == SECONDARY_CTRL) as usize];
                if !ch.has_devices() {
                    return Some(0xFF);
                }
                // Alternate status: the status without acknowledging.
                Some(ch.status() as u32)
            }
            _ => None,
        }
    }

    /// Port write; `false` if the port is not ours.
    pub fn io_write(&mut self, port: u16, size: u8, v: u32) -> bool {
        match port {
            0x1F0..=0x1F7 => self.channels[0].write_reg(port - PRIMARY_BASE, size, v),
            0x170..=0x177 => self.channels[1].write_reg(port - SECONDARY_BASE, size, v),
            PRIMARY_CTRL => self.channels[0].write_control(v as u8),
            SECONDARY_CTRL => self.channels[1].write_control(v as u8),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests;
