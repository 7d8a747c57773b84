//! An 82077AA-compatible floppy disk controller (AT mode) at 0x3F0–0x3F7,
//! IRQ 6, DMA channel 2, with up to two 3.5"/5.25" drives.
//!
//! Registers: DOR (0x3F2: drive select, reset, DMA gate, motors), TDR
//! (0x3F3), MSR/DSR (0x3F4), the FIFO (0x3F5), DIR/CCR (0x3F7: disk
//! change line / data rate). 0x3F6 belongs to the IDE controller.
//!
//! A command is written byte by byte to the FIFO; after its last byte the
//! controller executes it. Seeks complete at once (the interrupt follows
//! the last command byte). READ DATA, WRITE DATA and FORMAT TRACK need the
//! DMA controller: they wait in the execution phase until the board runs
//! [`Fdc::run_dma`] with the guest's memory (the machine does that between
//! instruction slices), then post their result bytes and interrupt. Only
//! DMA mode is modelled; SPECIFY's non-DMA bit is kept but ignored.
//!
//! A medium's format comes from its image size ([`FloppyType`]), and it
//! answers only at its data rate (CCR/DSR), so drivers that probe formats
//! by rate (Linux, SeaBIOS) find the right one.

use serde::{Deserialize, Serialize};
use std::ops::RangeInclusive;

use crate::disk::{Disk, DiskError, SECTOR_SIZE};
use crate::dma::{Dma, DmaMemory};

/// The floppy controller's IRQ.
pub const IRQ: u8 = 6;
/// Its DMA channel (8-bit, first controller).
pub const DMA_CHANNEL: usize = 2;
/// Drives the controller takes (A: and B:).
pub const DRIVES: usize = 2;

const DOR_SELECT: u8 = 0x03;
const DOR_NRESET: u8 = 0x04;
const DOR_DMA: u8 = 0x08;

const MSR_RQM: u8 = 0x80;
const MSR_DIO: u8 = 0x40;
const MSR_CB: u8 = 0x10;

const ST0_ABNORMAL: u8 = 0x40;
const ST0_INVALID: u8 = 0x80;
const ST0_SEEK_END: u8 = 0x20;
const ST0_EQUIPMENT: u8 = 0x10;
const ST0_NOT_READY: u8 = 0x08;
const ST0_READY_CHANGED: u8 = 0xC0;
const ST1_MISSING_AM: u8 = 0x01;
const ST1_NOT_WRITABLE: u8 = 0x02;
const ST1_NO_DATA: u8 = 0x04;
const ST1_DATA_ERROR: u8 = 0x20;
const ST1_END_OF_CYLINDER: u8 = 0x80;
const ST2_WRONG_CYLINDER: u8 = 0x10;

/// CONFIGURE's third byte at reset: FIFO disabled, polling on, EIS off.
const CONFIG_DEFAULT: u8 = 0x20;
const CONFIG_EIS: u8 = 0x40;

/// Data rate codes (CCR/DSR bits 1–0).
const RATE_500K: u8 = 0;
const RATE_300K: u8 = 1;
const RATE_250K: u8 = 2;
const RATE_1M: u8 = 3;

/// The media formats a floppy image can hold, by its size.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloppyType {
    /// 5.25" double density: 40 cylinders, 2 heads, 9 sectors.
    K360,
    /// 5.25" high density: 80/2/15.
    M1_2,
    /// 3.5" double density: 80/2/9.
    K720,
    /// 3.5" high density: 80/2/18.
    M1_44,
    /// 3.5" extra density: 80/2/36.
    M2_88,
}

impl FloppyType {
    const ALL: [FloppyType; 5] = [
        FloppyType::K360,
        FloppyType::M1_2,
        FloppyType::K720,
        FloppyType::M1_44,
        FloppyType::M2_88,
    ];

    /// The format of an image of `bytes` bytes, if it is one.
    pub fn from_size(bytes: u64) -> Option<FloppyType> {
        FloppyType::ALL.into_iter().find(|t| t.bytes() == bytes)
    }

    /// Cylinders, heads, sectors per track.
    pub fn geometry(self) -> (u8, u8, u8) {
        match self {
            FloppyType::K360 => (40, 2, 9),
            FloppyType::M1_2 => (80, 2, 15),
            FloppyType::K720 => (80, 2, 9),
            FloppyType::M1_44 => (80, 2, 18),
            FloppyType::M2_88 => (80, 2, 36),
        }
    }

    /// Bytes on the medium.
    pub fn bytes(self) -> u64 {
        let (c, h, s) = self.geometry();
        c as u64 * h as u64 * s as u64 * SECTOR_SIZE as u64
    }

    /// The drive type CMOS register 10h uses for a drive of this format.
    pub fn cmos_type(self) -> u8 {
        match self {
            FloppyType::K360 => 1,
            FloppyType::M1_2 => 2,
            FloppyType::K720 => 3,
            FloppyType::M1_44 => 4,
            FloppyType::M2_88 => 5,
        }
    }

    /// The format a CMOS drive type stands for.
    pub fn from_cmos_type(t: u8) -> Option<FloppyType> {
        FloppyType::ALL.into_iter().find(|f| f.cmos_type() == t)
    }

    /// The data rate code (CCR) a BIOS programs for this medium.
    pub fn data_rate(self) -> u8 {
        match self {
            FloppyType::K360 | FloppyType::K720 => RATE_250K,
            FloppyType::M1_2 | FloppyType::M1_44 => RATE_500K,
            FloppyType::M2_88 => RATE_1M,
        }
    }

    /// Whether the medium can be read at data rate `rate`: its own, and
    /// 300 kbps for a 360K disk too (the rate a 1.2M drive reads it at,
    /// and what SeaBIOS programs for drive type 1).
    pub fn accepts_rate(self, rate: u8) -> bool {
        rate == self.data_rate() || (self == FloppyType::K360 && rate == RATE_300K)
    }

    /// "1.44M" and so on.
    pub fn name(self) -> &'static str {
        match self {
            FloppyType::K360 => "360K 5.25\"",
            FloppyType::M1_2 => "1.2M 5.25\"",
            FloppyType::K720 => "720K 3.5\"",
            FloppyType::M1_44 => "1.44M 3.5\"",
            FloppyType::M2_88 => "2.88M 3.5\"",
        }
    }
}

/// One drive: its medium (absent: no drive) and where its head is.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct FloppyDrive {
    /// The image in the drive.
    pub disk: Option<Disk>,
    media: Option<FloppyType>,
    write_protected: bool,
    /// The cylinder the head is over.
    cylinder: u8,
    /// The head last used (for SENSE DRIVE STATUS).
    head: u8,
    /// The sector whose ID passes under the head next (READ ID).
    next_sector: u8,
    /// The disk change line (DIR bit 7): set at insertion, cleared by a
    /// seek with a medium in the drive.
    changed: bool,
}

impl FloppyDrive {
    /// The medium's format, if a disk is in the drive.
    pub fn media(&self) -> Option<FloppyType> {
        self.media
    }

    /// Whether the guest may not write (a read-only image).
    pub fn write_protected(&self) -> bool {
        self.write_protected
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for (more) command bytes.
    Command,
    /// A data command waits for the DMA controller.
    Execution,
    /// Result bytes to read.
    Result,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Specify,
    SenseDrive,
    Write,
    Read,
    Recalibrate,
    SenseInterrupt,
    ReadId,
    Format,
    DumpReg,
    Seek,
    Version,
    Perpendicular,
    Configure,
    Lock,
    Verify,
    Invalid,
}

/// The command a first byte starts, and its length in bytes.
fn decode(b: u8) -> (Cmd, usize) {
    match b & 0x1F {
        0x06 => return (Cmd::Read, 9),
        0x16 => return (Cmd::Verify, 9),
        0x05 if b & 0x20 == 0 => return (Cmd::Write, 9),
        0x0A if b & 0xBF == 0x0A => return (Cmd::ReadId, 2),
        0x0D if b & 0xBF == 0x0D => return (Cmd::Format, 6),
        0x0F if b & 0x3F == 0x0F => return (Cmd::Seek, 3),
        0x14 if b & 0x7F == 0x14 => return (Cmd::Lock, 1),
        _ => {}
    }
    match b {
        0x03 => (Cmd::Specify, 3),
        0x04 => (Cmd::SenseDrive, 2),
        0x07 => (Cmd::Recalibrate, 2),
        0x08 => (Cmd::SenseInterrupt, 1),
        0x0E => (Cmd::DumpReg, 1),
        0x10 => (Cmd::Version, 1),
        0x12 => (Cmd::Perpendicular, 2),
        0x13 => (Cmd::Configure, 4),
        _ => (Cmd::Invalid, 1),
    }
}

/// The floppy disk controller and its drives.
#[derive(Serialize, Deserialize, Debug)]
pub struct Fdc {
    /// Drives A: and B:.
    pub drives: [FloppyDrive; DRIVES],
    dor: u8,
    tdr: u8,
    /// Data rate (CCR / DSR bits 1–0).
    rate: u8,
    /// DSR bits 6–2 (power down, precompensation), kept as written.
    dsr: u8,
    phase: Phase,
    command: [u8; 9],
    command_len: u8,
    command_pos: u8,
    result: [u8; 10],
    result_len: u8,
    result_pos: u8,
    /// The interrupt request (the pin is gated by DOR's DMA bit).
    irq: bool,
    /// The result phase belongs to a command that interrupted when it
    /// ended: reading its first byte acknowledges the interrupt.
    result_interrupts: bool,
    /// Pending SENSE INTERRUPT STATUS results (ST0) per drive 0–3.
    sense: [Option<u8>; 4],
    /// The controller's present cylinder numbers.
    pcn: [u8; 4],
    specify: [u8; 2],
    config: u8,
    pretrk: u8,
    locked: bool,
    perpendicular: u8,
}

impl Default for Fdc {
    fn default() -> Self {
        Fdc::new()
    }
}

impl Fdc {
    /// A controller after power-on: held in reset (DOR = 0) until the
    /// firmware or driver sets DOR bit 2, with no drives attached.
    pub fn new() -> Fdc {
        Fdc {
            drives: Default::default(),
            dor: 0,
            tdr: 0,
            rate: RATE_250K,
            dsr: 0,
            phase: Phase::Command,
            command: [0; 9],
            command_len: 0,
            command_pos: 0,
            result: [0; 10],
            result_len: 0,
            result_pos: 0,
            irq: false,
            result_interrupts: false,
            sense: [None; 4],
            pcn: [0; 4],
            specify: [0; 2],
            config: CONFIG_DEFAULT,
            pretrk: 0,
            locked: false,
            perpendicular: 0,
        }
    }

    /// Put `disk` into drive `drive` (0 or 1). Its size must be one of
    /// the [`FloppyType`] formats. A `write_protected` medium refuses
    /// WRITE DATA and FORMAT TRACK (ST1 NW) and says so in ST3.
    pub fn attach(
        &mut self,
        drive: usize,
        disk: Disk,
        write_protected: bool,
    ) -> Result<FloppyType, DiskError> {
        let Some(media) = FloppyType::from_size(disk.len()) else {
            return Err(DiskError::FloppySize {
                path: disk.path().to_path_buf(),
                size: disk.len(),
            });
        };
        let d = &mut self.drives[drive % DRIVES];
        d.disk = Some(disk);
        d.media = Some(media);
        d.write_protected = write_protected;
        d.changed = true;
        d.next_sector = 1;
        Ok(media)
    }

    /// The CMOS drive types of drives 0 and 1 (0: none).
    pub fn cmos_types(&self) -> [u8; DRIVES] {
        [0, 1].map(|i| self.drives[i].media.map_or(0, FloppyType::cmos_type))
    }

    /// The RESET line (board reset): the controller is held in reset
    /// with DOR cleared; drives keep their media and head positions.
    pub fn reset(&mut self) {
        self.dor = 0;
        self.tdr = 0;
        self.rate = RATE_250K;
        self.dsr = 0;
        self.locked = false;
        self.perpendicular = 0;
        self.specify = [0; 2];
        self.reset_controller();
    }

    /// What a DOR or DSR reset clears: the command in progress, pending
    /// interrupts, and CONFIGURE's values unless LOCKed.
    fn reset_controller(&mut self) {
        self.phase = Phase::Command;
        self.command_pos = 0;
        self.command_len = 0;
        self.result_pos = 0;
        self.result_len = 0;
        self.irq = false;
        self.result_interrupts = false;
        self.sense = [None; 4];
        self.pcn = [0; 4];
        self.perpendicular &= 0x3C;
        if !self.locked {
            self.config = CONFIG_DEFAULT;
            self.pretrk = 0;
        }
    }

    /// The controller leaves reset: one interrupt, and a "ready changed"
    /// status for each of the four drive positions to sense.
    fn end_reset(&mut self) {
        for d in 0..4 {
            self.sense[d] = Some(ST0_READY_CHANGED | d as u8);
        }
        self.irq = true;
    }

    /// Make the images durable on the host.
    pub fn flush(&mut self) -> std::io::Result<()> {
        for d in &mut self.drives {
            if let Some(disk) = &mut d.disk {
                disk.flush()?;
            }
        }
        Ok(())
    }

    /// The controller's ports (0x3F6 between them is the IDE controller's).
    pub const PORTS: &[RangeInclusive<u16>] = &[0x3F0..=0x3F5, 0x3F7..=0x3F7];

    /// The IRQ 6 line.
    pub fn irq_level(&self) -> bool {
        self.irq && self.dor & DOR_DMA != 0
    }

    /// Whether a data command waits for the DMA controller (DRQ, gated
    /// by DOR's DMA bit).
    pub fn wants_dma(&self) -> bool {
        self.phase == Phase::Execution && self.dor & DOR_DMA != 0 && self.dor & DOR_NRESET != 0
    }

    fn msr(&self) -> u8 {
        if self.dor & DOR_NRESET == 0 {
            return 0;
        }
        match self.phase {
            Phase::Command if self.command_pos == 0 => MSR_RQM,
            Phase::Command => MSR_RQM | MSR_CB,
            Phase::Execution => MSR_CB,
            Phase::Result => MSR_RQM | MSR_DIO | MSR_CB,
        }
    }

    /// A byte read from one of our ports.
    pub fn read(&mut self, port: u16) -> u8 {
        match port {
            0x3F2 => self.dor,
            0x3F3 => self.tdr,
            0x3F4 => self.msr(),
            0x3F5 => self.read_fifo(),
            0x3F7 => {
                let d = &self.drives[(self.dor & DOR_SELECT) as usize % DRIVES];
                let changed =
                    (self.dor & DOR_SELECT) as usize >= DRIVES || d.changed || d.disk.is_none();
                (changed as u8) << 7
            }
            // Status registers A and B exist in PS/2 modes only.
            _ => 0xFF,
        }
    }

    /// A byte written to one of our ports.
    pub fn write(&mut self, port: u16, v: u8) {
        match port {
            0x3F2 => {
                let was = self.dor;
                self.dor = v;
                if was & DOR_NRESET != 0 && v & DOR_NRESET == 0 {
                    self.reset_controller();
                } else if was & DOR_NRESET == 0 && v & DOR_NRESET != 0 {
                    self.end_reset();
                }
            }
            0x3F3 => self.tdr = v & 0x03,
            0x3F4 => {
                self.rate = v & 0x03;
                self.dsr = v & 0x7C;
                if v & 0x80 != 0 && self.dor & DOR_NRESET != 0 {
                    // Software reset: self-clearing.
                    self.reset_controller();
                    self.end_reset();
                }
            }
            0x3F5 => self.write_fifo(v),
            0x3F7 => self.rate = v & 0x03,
            _ => {}
        }
    }

    fn read_fifo(&mut self) -> u8 {
        if self.phase != Phase::Result || self.dor & DOR_NRESET == 0 {
            return 0xFF;
        }
        // Reading the result acknowledges a data command's interrupt.
        if self.result_interrupts {
            self.irq = false;
            self.result_interrupts = false;
        }
        let v = self.result[self.result_pos as usize];
        self.result_pos += 1;
        if self.result_pos >= self.result_len {
            self.phase = Phase::Command;
            self.result_pos = 0;
            self.result_len = 0;
        }
        v
    }

    fn write_fifo(&mut self, v: u8) {
        if self.phase != Phase::Command || self.dor & DOR_NRESET == 0 {
            return;
        }
        if self.command_pos == 0 {
            self.command_len = decode(v).1 as u8;
        }
        self.command[self.command_pos as usize] = v;
        self.command_pos += 1;
        if self.command_pos >= self.command_len {
            self.command_pos = 0;
            self.execute();
        }
    }

    fn set_result(&mut self, bytes: &[u8]) {
        self.result[..bytes.len()].copy_from_slice(bytes);
        self.result_len = bytes.len() as u8;
        self.result_pos = 0;
        self.result_interrupts = false;
        self.phase = Phase::Result;
    }

    /// The drive a command's unit byte selects, if attached.
    fn present(&self, unit: u8) -> Option<&FloppyDrive> {
        self.drives
            .get((unit & 3) as usize)
            .filter(|d| d.disk.is_some())
    }

    fn execute(&mut self) {
        let c = self.command;
        let (cmd, _) = decode(c[0]);
        let unit = c[1] & 3;
        let head = (c[1] >> 2) & 1;
        match cmd {
            Cmd::Specify => self.specify = [c[1], c[2]],
            Cmd::SenseDrive => {
                let mut st3 = unit | head << 2;
                if let Some(d) = self.present(unit) {
                    st3 |= 0x20 | 0x08; // ready, two-sided
                    if d.cylinder == 0 {
                        st3 |= 0x10;
                    }
                    if d.write_protected {
                        st3 |= 0x40;
                    }
                }
                if let Some(d) = self.drives.get_mut(unit as usize) {
                    d.head = head;
                }
                self.set_result(&[st3]);
            }
            Cmd::Recalibrate => {
                let st0 = if self.present(unit).is_some() {
                    let d = &mut self.drives[unit as usize];
                    d.cylinder = 0;
                    d.changed = false;
                    ST0_SEEK_END | unit
                } else {
                    // No track-0 signal from an empty position.
                    ST0_ABNORMAL | ST0_SEEK_END | ST0_EQUIPMENT | unit
                };
                self.pcn[unit as usize] = 0;
                self.sense[unit as usize] = Some(st0);
                self.irq = true;
            }
            Cmd::Seek => {
                let from = self.pcn[unit as usize];
                let to = match c[0] & 0xC0 {
                    0x80 => from.saturating_sub(c[2]),
                    0xC0 => from.saturating_add(c[2]),
                    _ => c[2],
                };
                self.seek(unit, to);
                self.sense[unit as usize] = Some(ST0_SEEK_END | head << 2 | unit);
                self.irq = true;
            }
            Cmd::SenseInterrupt => match (0..4).find(|&d| self.sense[d].is_some()) {
                Some(d) => {
                    // The request goes down with the first SENSE INTERRUPT
                    // STATUS; further statuses (after a reset) are read by
                    // more of them without further interrupts.
                    let st0 = self.sense[d].take().unwrap_or(0);
                    self.irq = false;
                    self.set_result(&[st0, self.pcn[d]]);
                }
                None => {
                    self.irq = false;
                    self.set_result(&[ST0_INVALID]);
                }
            },
            Cmd::ReadId => {
                let r = match self.medium_check(unit, head) {
                    Ok(()) => {
                        let d = &mut self.drives[unit as usize];
                        let (_, _, spt) = d.media.map_or((0, 0, 1), FloppyType::geometry);
                        let r = d.next_sector.clamp(1, spt);
                        d.next_sector = r % spt + 1;
                        d.head = head;
                        [unit | head << 2, 0, 0, d.cylinder, head, r, 2]
                    }
                    Err((st0, st1)) => [st0 | head << 2 | unit, st1, 0, 0, 0, 0, 0],
                };
                self.finish(r[0], r[1], r[2], [r[3], r[4], r[5], r[6]]);
            }
            Cmd::Read | Cmd::Write | Cmd::Verify => self.start_transfer(cmd),
            Cmd::Format => {
                let check = self.medium_check(unit, head).and_then(|()| {
                    if self.drives[unit as usize].write_protected {
                        Err((ST0_ABNORMAL, ST1_NOT_WRITABLE))
                    } else {
                        Ok(())
                    }
                });
                match check {
                    Ok(()) => self.phase = Phase::Execution,
                    Err((st0, st1)) => self.finish(st0 | head << 2 | unit, st1, 0, [0, 0, 0, c[2]]),
                }
            }
            Cmd::DumpReg => {
                let r = [
                    self.pcn[0],
                    self.pcn[1],
                    self.pcn[2],
                    self.pcn[3],
                    self.specify[0],
                    self.specify[1],
                    0, // SC/EOT
                    (self.locked as u8) << 7 | (self.perpendicular & 0x3F),
                    self.config,
                    self.pretrk,
                ];
                self.set_result(&r);
            }
            Cmd::Version => self.set_result(&[0x90]),
            Cmd::Perpendicular => {
                self.perpendicular = if c[1] & 0x80 != 0 {
                    c[1] & 0x3F
                } else {
                    (self.perpendicular & 0x3C) | (c[1] & 0x03)
                };
            }
            Cmd::Configure => {
                self.config = c[2];
                self.pretrk = c[3];
            }
            Cmd::Lock => {
                self.locked = c[0] & 0x80 != 0;
                self.set_result(&[(self.locked as u8) << 4]);
            }
            Cmd::Invalid => self.set_result(&[ST0_INVALID]),
        }
    }

    /// Move the head of `unit` to cylinder `to` (the step pulses clear
    /// the disk change line when a medium is in).
    fn seek(&mut self, unit: u8, to: u8) {
        self.pcn[unit as usize] = to;
        if let Some(d) = self.drives.get_mut(unit as usize) {
            d.cylinder = to;
            if d.disk.is_some() {
                d.changed = false;
            }
        }
    }

    /// Whether the ID fields of the track under `unit`'s head can be
    /// read: a drive with a medium, at the medium's data rate, on a
    /// cylinder and head it has. `Err((ST0 bits, ST1 bits))` otherwise.
    fn medium_check(&self, unit: u8, head: u8) -> Result<(), (u8, u8)> {
        let Some(d) = self.drives.get(unit as usize) else {
            return Err((ST0_ABNORMAL | ST0_NOT_READY, 0));
        };
        let Some(media) = d.media.filter(|_| d.disk.is_some()) else {
            return Err((ST0_ABNORMAL | ST0_NOT_READY, 0));
        };
        let (cyls, heads, _) = media.geometry();
        if !media.accepts_rate(self.rate) || d.cylinder >= cyls || head >= heads {
            return Err((ST0_ABNORMAL, ST1_MISSING_AM));
        }
        Ok(())
    }

    /// READ DATA, WRITE DATA, VERIFY: check the request, then wait for DMA
    /// (VERIFY needs none and completes at once).
    fn start_transfer(&mut self, cmd: Cmd) {
        let c = self.command;
        let unit = c[1] & 3;
        let head = (c[1] >> 2) & 1;
        if self.config & CONFIG_EIS != 0 && self.present(unit).is_some() {
            self.seek(unit, c[2]);
        }
        let chrn = [c[2], c[3], c[4], c[5]];
        let mut check = self.medium_check(unit, head);
        if check.is_ok() {
            let d = &self.drives[unit as usize];
            let (_, _, spt) = d.media.map_or((0, 0, 0), FloppyType::geometry);
            if cmd == Cmd::Write && d.write_protected {
                check = Err((ST0_ABNORMAL, ST1_NOT_WRITABLE));
            } else if d.cylinder != c[2] {
                return self.finish(
                    ST0_ABNORMAL | head << 2 | unit,
                    ST1_NO_DATA,
                    ST2_WRONG_CYLINDER,
                    chrn,
                );
            } else if c[5] != 2 || c[4] == 0 || c[4] > spt {
                check = Err((ST0_ABNORMAL, ST1_NO_DATA));
            }
        }
        if let Err((st0, st1)) = check {
            return self.finish(st0 | head << 2 | unit, st1, 0, chrn);
        }
        if cmd == Cmd::Verify {
            return self.verify();
        }
        self.phase = Phase::Execution;
    }

    /// Enter the result phase with the standard seven bytes, interrupting.
    fn finish(&mut self, st0: u8, st1: u8, st2: u8, chrn: [u8; 4]) {
        self.set_result(&[st0, st1, st2, chrn[0], chrn[1], chrn[2], chrn[3]]);
        self.irq = true;
        self.result_interrupts = true;
    }

    /// The sector after `r` on (`c`, `h`) when a multi-sector command
    /// ends there (the 82077AA's result-phase ID table).
    fn next_id(c: u8, h: u8, r: u8, eot: u8, mt: bool) -> [u8; 4] {
        match (r >= eot, mt, h) {
            (false, _, _) => [c, h, r + 1, 2],
            (true, true, 0) => [c, 1, 1, 2],
            (true, true, _) => [c.wrapping_add(1), 0, 1, 2],
            (true, false, _) => [c.wrapping_add(1), h, 1, 2],
        }
    }

    fn verify(&mut self) {
        let c = self.command;
        let unit = c[1] & 3;
        let mut head = (c[1] >> 2) & 1;
        let mt = c[0] & 0x80 != 0;
        let mut r = c[4];
        // EC (byte 1 bit 7): DTL is a sector count; otherwise up to EOT.
        let mut left = if c[1] & 0x80 != 0 {
            c[8] as u32
        } else {
            u32::MAX
        };
        let spt = self.drives[unit as usize]
            .media
            .map_or(0, |m| m.geometry().2);
        let eot = c[6].min(spt);
        loop {
            if r > spt {
                return self.finish(
                    ST0_ABNORMAL | head << 2 | unit,
                    ST1_NO_DATA,
                    0,
                    [c[2], head, r, 2],
                );
            }
            left = left.saturating_sub(1);
            if left == 0 {
                break;
            }
            if r >= eot {
                if mt && head == 0 {
                    head = 1;
                    r = 1;
                    continue;
                }
                if c[1] & 0x80 == 0 {
                    break; // EC=0: EOT ends a VERIFY normally
                }
                return self.finish(
                    ST0_ABNORMAL | head << 2 | unit,
                    ST1_END_OF_CYLINDER,
                    0,
                    [c[2], head, r, 2],
                );
            }
            r += 1;
        }
        let id = Fdc::next_id(c[2], head, r, eot, mt);
        self.finish(head << 2 | unit, 0, 0, id);
    }

    /// Run the data command waiting for DMA: move its sectors between the
    /// image and guest memory through `dma` channel 2, then post the
    /// result and interrupt. Does nothing unless [`Fdc::wants_dma`].
    pub fn run_dma(&mut self, dma: &mut Dma, mem: &mut dyn DmaMemory) {
        if !self.wants_dma() || !dma.channel_ready(DMA_CHANNEL) {
            return;
        }
        match decode(self.command[0]).0 {
            Cmd::Format => self.format(dma, mem),
            cmd => self.transfer(cmd == Cmd::Write, dma, mem),
        }
    }

    fn transfer(&mut self, write: bool, dma: &mut Dma, mem: &mut dyn DmaMemory) {
        let c = self.command;
        let unit = c[1] & 3;
        let mut head = (c[1] >> 2) & 1;
        let mt = c[0] & 0x80 != 0;
        let (cyl, eot, mut r) = (c[2], c[6], c[4]);
        let d = &mut self.drives[unit as usize];
        let (_, heads, spt) = d.media.map_or((0, 0, 0), FloppyType::geometry);
        let Some(disk) = d.disk.as_mut() else {
            return self.finish(ST0_ABNORMAL | ST0_NOT_READY | unit, 0, 0, [cyl, head, r, 2]);
        };
        // A track ends at EOT or at its last sector, whichever comes first
        // (SeaBIOS asks for EOT = first + count - 1 and relies on
        // multi-track mode to go on to head 1, as QEMU's controller does).
        let eot = eot.min(spt);
        let mut buf = [0u8; SECTOR_SIZE];
        let (st0, st1, id) = loop {
            if r == 0 || r > spt {
                break (ST0_ABNORMAL, ST1_NO_DATA, [cyl, head, r, 2]);
            }
            let lba = (cyl as u64 * heads as u64 + head as u64) * spt as u64 + r as u64 - 1;
            if write {
                buf.fill(0);
            } else if disk.read_sectors(lba, &mut buf).is_err() {
                break (ST0_ABNORMAL, ST1_DATA_ERROR, [cyl, head, r, 2]);
            }
            let (_, tc) = dma.transfer(DMA_CHANNEL, mem, &mut buf);
            if write {
                // A terminal count inside the sector leaves the rest zero.
                if let Err(e) = disk.write_sectors(lba, &buf) {
                    log::warn!("{}: floppy write failed: {e}", disk.path().display());
                    break (ST0_ABNORMAL, ST1_DATA_ERROR, [cyl, head, r, 2]);
                }
            }
            if tc {
                break (0, 0, Fdc::next_id(cyl, head, r, eot, mt));
            }
            if !dma.channel_ready(DMA_CHANNEL) {
                // The channel was masked under us: no more requests served.
                break (ST0_ABNORMAL, 0, Fdc::next_id(cyl, head, r, eot, mt));
            }
            if r >= eot {
                if mt && head == 0 {
                    head = 1;
                    r = 1;
                    continue;
                }
                // Past the end of the track without a terminal count.
                break (
                    ST0_ABNORMAL,
                    ST1_END_OF_CYLINDER,
                    Fdc::next_id(cyl, head, r, eot, mt),
                );
            }
            r += 1;
        };
        d.head = head;
        self.finish(st0 | head << 2 | unit, st1, 0, id);
    }

    /// FORMAT TRACK: four ID bytes (C, H, R, N) per sector by DMA; every
    /// sector named on this track gets the filler byte.
    fn format(&mut self, dma: &mut Dma, mem: &mut dyn DmaMemory) {
        let c = self.command;
        let unit = c[1] & 3;
        let head = (c[1] >> 2) & 1;
        let (count, filler) = (c[3], c[5]);
        let d = &mut self.drives[unit as usize];
        let (_, heads, spt) = d.media.map_or((0, 0, 0), FloppyType::geometry);
        let cyl = d.cylinder;
        let Some(disk) = d.disk.as_mut() else {
            return self.finish(ST0_ABNORMAL | ST0_NOT_READY | unit, 0, 0, [cyl, head, 0, 2]);
        };
        let fill = [filler; SECTOR_SIZE];
        let mut id = [cyl, head, 0, c[2]];
        let mut st = (0, 0);
        for _ in 0..count {
            let (n, tc) = dma.transfer(DMA_CHANNEL, mem, &mut id);
            if n < 4 {
                st = (ST0_ABNORMAL, 0);
                break;
            }
            let r = id[2];
            if (1..=spt).contains(&r) && id[3] == 2 {
                let lba = (cyl as u64 * heads as u64 + head as u64) * spt as u64 + r as u64 - 1;
                if disk.write_sectors(lba, &fill).is_err() {
                    st = (ST0_ABNORMAL, ST1_DATA_ERROR);
                    break;
                }
            }
            if tc {
                break;
            }
        }
        self.finish(st.0 | head << 2 | unit, st.1, 0, id);
    }
}

#[cfg(test)]
mod tests;
