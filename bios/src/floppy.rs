//! INT 13h for diskette drives 00h and 01h, through the floppy controller's
//! registers and ISA DMA channel 2, as firmware drives them.
//!
//! The host-side driver below programs the 8237 (mask, flip-flop, address,
//! count, mode, page register, unmask) and sends the 82077AA its commands
//! byte by byte through the FIFO, watching the main status register; the
//! data commands' DMA runs right after their last command byte (as the
//! machine runs it after the guest's own `OUT`). The controller's IRQ 6
//! stays on: the ROM's INT 0Eh handler notes it in 40:3E bit 7 once the
//! caller's interrupts are on again, as on a PC.

use ringside_cpu::{gpr, SegReg};
use ringside_devices::fdc::FloppyType;

use crate::call::Call;
use crate::layout::{self, BIOS_SEG};
use crate::Bios;

const DOR: u16 = 0x3F2;
const MSR: u16 = 0x3F4;
const FIFO: u16 = 0x3F5;
const CCR: u16 = 0x3F7;

const MSR_RQM: u8 = 0x80;
const MSR_DIO: u8 = 0x40;

/// Status polls before we call the controller dead (the model answers at
/// once; the bound keeps a broken one from hanging the host).
const POLLS: u32 = 10_000;

// BIOS data area.
const BDA_RECALIBRATED: u32 = 0x43E;
const BDA_MOTORS: u32 = 0x43F;
const BDA_MOTOR_COUNT: u32 = 0x440;
pub(crate) const BDA_STATUS: u32 = 0x441;
const BDA_RESULTS: u32 = 0x442;
const BDA_LAST_RATE: u32 = 0x48B;
const BDA_MEDIA_STATE: u32 = 0x490;
const BDA_TRACK: u32 = 0x494;

/// Motor-off delay in timer ticks (the parameter table's byte 2: ~2 s).
const MOTOR_TICKS: u8 = 0x25;

// INT 13h status codes.
const E_BAD_COMMAND: u8 = 0x01;
const E_ADDRESS_MARK: u8 = 0x02;
const E_WRITE_PROTECTED: u8 = 0x03;
const E_NOT_FOUND: u8 = 0x04;
const E_CHANGED: u8 = 0x06;
const E_DMA_BOUNDARY: u8 = 0x09;
const E_MEDIA_TYPE: u8 = 0x0C;
const E_CRC: u8 = 0x10;
const E_CONTROLLER: u8 = 0x20;
const E_SEEK: u8 = 0x40;
const E_TIMEOUT: u8 = 0x80;

/// What a transfer does with each sector.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Verify,
}

/// Write command bytes, each when the controller asks for one.
fn send(c: &mut Call, bytes: &[u8]) -> Result<(), u8> {
    for &b in bytes {
        let mut ready = false;
        for _ in 0..POLLS {
            let s = c.inb(MSR);
            if s & MSR_RQM != 0 {
                if s & MSR_DIO != 0 {
                    return Err(E_CONTROLLER); // it wants to talk, not listen
                }
                ready = true;
                break;
            }
        }
        if !ready {
            return Err(E_TIMEOUT);
        }
        c.outb(FIFO, b);
    }
    Ok(())
}

/// Read the result phase into `buf`; the number of bytes read.
fn results(c: &mut Call, buf: &mut [u8]) -> usize {
    let mut n = 0;
    for _ in 0..POLLS {
        let s = c.inb(MSR);
        if s & (MSR_RQM | MSR_DIO) != MSR_RQM | MSR_DIO {
            if s & MSR_RQM != 0 {
                break; // back in the command phase: all read
            }
            continue;
        }
        let v = c.inb(FIFO);
        if n < buf.len() {
            buf[n] = v;
        }
        n += 1;
    }
    n
}

/// SENSE INTERRUPT STATUS: (ST0, present cylinder).
fn sense_interrupt(c: &mut Call) -> Result<(u8, u8), u8> {
    send(c, &[0x08])?;
    let mut r = [0u8; 2];
    match results(c, &mut r) {
        2 => Ok((r[0], r[1])),
        _ => Err(E_CONTROLLER),
    }
}

/// The diskette parameter table INT 1Eh points at (byte `i`).
fn parameter(c: &mut Call, i: u32) -> u8 {
    let off = c.rd16(0x1E * 4) as u32;
    let seg = c.rd16(0x1E * 4 + 2) as u32;
    c.rd8((seg << 4) + off + i)
}

/// Reset the controller (DOR bit 2 low, then high), take the four
/// "ready changed" interrupts, SPECIFY from the parameter table.
fn reset_controller(c: &mut Call) -> Result<(), u8> {
    c.outb(DOR, 0x08);
    c.outb(DOR, 0x0C);
    for _ in 0..4 {
        sense_interrupt(c)?;
    }
    let (s1, s2) = (parameter(c, 0), parameter(c, 1));
    // Bit 0 of the second byte is "no DMA": we always use DMA.
    send(c, &[0x03, s1, s2 & 0xFE])?;
    let recalibrated = c.rd8(BDA_RECALIBRATED) & 0x70;
    c.wr8(BDA_RECALIBRATED, recalibrated);
    c.wr8(BDA_MOTORS, 0);
    Ok(())
}

/// Turn drive `d`'s motor on and select it; restart the motor-off count.
fn select(c: &mut Call, d: u8) {
    c.outb(DOR, 0x0C | d | (0x10 << d));
    let m = c.rd8(BDA_MOTORS) & 0xF0;
    c.wr8(BDA_MOTORS, m | 1 << d);
    c.wr8(BDA_MOTOR_COUNT, MOTOR_TICKS);
}

/// Put drive `d`'s head over cylinder `cyl` (recalibrating first if the
/// drive has not been since the last reset).
fn seek(c: &mut Call, d: u8, head: u8, cyl: u8) -> Result<(), u8> {
    if c.rd8(BDA_RECALIBRATED) & (1 << d) == 0 {
        send(c, &[0x07, d])?;
        let (st0, _) = sense_interrupt(c)?;
        if st0 & 0xC0 != 0 {
            return Err(E_SEEK);
        }
        let recalibrated = c.rd8(BDA_RECALIBRATED) | 1 << d;
        c.wr8(BDA_RECALIBRATED, recalibrated);
        c.wr8(BDA_TRACK + d as u32, 0);
    }
    if c.rd8(BDA_TRACK + d as u32) != cyl {
        send(c, &[0x0F, head << 2 | d, cyl])?;
        let (st0, pcn) = sense_interrupt(c)?;
        if st0 & 0xC0 != 0 || pcn != cyl {
            return Err(E_SEEK);
        }
        c.wr8(BDA_TRACK + d as u32, cyl);
    }
    Ok(())
}

/// Program DMA channel 2 for `len` bytes at physical `addr` in `mode`
/// (46h: write to memory, 4Ah: read from memory, 42h: verify). The 8237
/// cannot cross a 64 KiB page.
fn dma_setup(c: &mut Call, addr: u32, len: u32, mode: u8) -> Result<(), u8> {
    let last = addr.wrapping_add(len - 1);
    if mode != 0x42 && (addr >> 16 != last >> 16 || last >= 1 << 24) {
        return Err(E_DMA_BOUNDARY);
    }
    let count = len - 1;
    c.outb(0x0A, 0x06); // mask channel 2
    c.outb(0x0C, 0x00); // clear the flip-flop
    c.outb(0x04, addr as u8);
    c.outb(0x04, (addr >> 8) as u8);
    c.outb(0x0C, 0x00);
    c.outb(0x05, count as u8);
    c.outb(0x05, (count >> 8) as u8);
    c.outb(0x0B, mode);
    c.outb(0x81, (addr >> 16) as u8);
    c.outb(0x0A, 0x02); // unmask channel 2
    Ok(())
}

/// Send a data command (its DMA already set up), let the DMA run, read the
/// seven result bytes into the BDA; the INT 13h status for them.
fn data_command(c: &mut Call, bytes: &[u8]) -> Result<[u8; 7], u8> {
    send(c, bytes)?;
    c.pc.run_dma(&mut c.cpu.mem);
    let mut r = [0u8; 7];
    if results(c, &mut r) != 7 {
        return Err(E_TIMEOUT);
    }
    for (i, &b) in r.iter().enumerate() {
        c.wr8(BDA_RESULTS + i as u32, b);
    }
    if r[0] & 0xC0 == 0 {
        return Ok(r);
    }
    Err(match r[1] {
        s if s & 0x02 != 0 => E_WRITE_PROTECTED,
        s if s & 0x01 != 0 => E_ADDRESS_MARK,
        s if s & 0x84 != 0 => E_NOT_FOUND,
        s if s & 0x20 != 0 => E_CRC,
        _ if r[0] & 0x08 != 0 => E_TIMEOUT,
        _ => E_CONTROLLER,
    })
}

/// Program the data rate for drive `d`'s medium.
fn set_rate(c: &mut Call, d: u8, t: FloppyType) {
    let rate = t.data_rate();
    c.outb(CCR, rate);
    c.wr8(BDA_LAST_RATE, rate << 6);
    // Media state: rate, "media/drive established", the media code.
    let media = match t {
        FloppyType::K360 => 0x04,
        FloppyType::M1_2 => 0x05,
        _ => 0x07,
    };
    c.wr8(BDA_MEDIA_STATE + d as u32, rate << 6 | 0x10 | media);
}

/// Move `count` sectors starting at (cyl, head, sector) of drive `d`
/// between the diskette and guest memory at `addr`, a cylinder's worth
/// (both heads, multi-track) per command. Returns the sectors done and
/// the status.
pub(crate) fn transfer(
    bios: &Bios,
    c: &mut Call,
    d: u8,
    start: (u8, u8, u8),
    count: u32,
    addr: u32,
    op: Op,
) -> (u32, u8) {
    let Some(t) = bios.floppy(d) else {
        return (0, E_TIMEOUT);
    };
    let (cyls, heads, spt) = t.geometry();
    let (mut cyl, mut head, mut sector) = start;
    if count == 0 || head >= heads || sector == 0 {
        return (0, E_BAD_COMMAND);
    }
    if cyl >= cyls || sector > spt {
        return (0, E_NOT_FOUND);
    }
    select(c, d);
    set_rate(c, d, t);
    let mut done = 0u32;
    while done < count {
        if cyl >= cyls {
            return (done, E_NOT_FOUND);
        }
        if let Err(e) = seek(c, d, head, cyl) {
            return (done, e);
        }
        let on_cylinder = (heads - head) as u32 * spt as u32 - (sector as u32 - 1);
        let n = (count - done).min(on_cylinder);
        let at = addr.wrapping_add(done * 512);
        let (mode, cmd) = match op {
            Op::Read => (0x46, 0xE6),
            Op::Write => (0x4A, 0xC5),
            Op::Verify => (0x42, 0xE6),
        };
        if let Err(e) = dma_setup(c, at, n * 512, mode) {
            return (done, e);
        }
        let bytes = [cmd, head << 2 | d, cyl, head, sector, 2, spt, 0x1B, 0xFF];
        if let Err(e) = data_command(c, &bytes) {
            return (done, e);
        }
        done += n;
        cyl += 1;
        head = 0;
        sector = 1;
    }
    (done, 0)
}

/// FORMAT TRACK on (cyl, head) of drive `d`: `n` sectors, their ID fields
/// (C, H, R, N) at `addr`.
fn format_track(bios: &Bios, c: &mut Call, d: u8, cyl: u8, head: u8, n: u8, addr: u32) -> u8 {
    let Some(t) = bios.floppy(d) else {
        return E_TIMEOUT;
    };
    let (cyls, heads, spt) = t.geometry();
    if cyl >= cyls || head >= heads || n == 0 || n > spt {
        return E_BAD_COMMAND;
    }
    select(c, d);
    set_rate(c, d, t);
    if let Err(e) = seek(c, d, head, cyl) {
        return e;
    }
    if let Err(e) = dma_setup(c, addr, n as u32 * 4, 0x4A) {
        return e;
    }
    let (gap, fill) = (parameter(c, 7), parameter(c, 8));
    match data_command(c, &[0x4D, head << 2 | d, 2, n, gap, fill]) {
        Ok(_) => 0,
        Err(e) => e,
    }
}

impl Bios {
    /// The medium in diskette drive `d`, if there is a drive.
    pub(crate) fn floppy(&self, d: u8) -> Option<FloppyType> {
        self.floppies.get(d as usize).copied().flatten()
    }

    fn floppy_count(&self) -> u8 {
        self.floppies.iter().filter(|f| f.is_some()).count() as u8
    }
}

fn finish(c: &mut Call, status: u8) {
    c.wr8(BDA_STATUS, status);
    if status == 0 {
        c.ok();
    } else {
        c.fail(status);
    }
}

/// INT 13h with DL = 00h or 01h and that drive present.
pub(crate) fn int13(bios: &mut Bios, c: &mut Call, d: u8, t: FloppyType) {
    let ah = c.ah();
    let (cyls, heads, spt) = t.geometry();
    match ah {
        0x00 => {
            let s = match reset_controller(c) {
                Ok(()) => 0,
                Err(e) => e,
            };
            finish(c, s);
        }
        0x02..=0x04 => {
            let n = c.al() as u32;
            let cx = c.r16(gpr::ECX);
            let cyl = (cx >> 8) | (cx & 0xC0) << 2;
            let sector = (cx & 0x3F) as u8;
            let head = c.hi(gpr::EDX);
            let addr = c.lin(SegReg::Es, c.r16(gpr::EBX));
            let op = [Op::Read, Op::Write, Op::Verify][(ah - 2) as usize];
            let (done, status) = if cyl > 0xFF {
                (0, E_NOT_FOUND)
            } else {
                transfer(bios, c, d, (cyl as u8, head, sector), n, addr, op)
            };
            c.set_al(done as u8);
            finish(c, status);
        }
        0x05 => {
            let n = c.al();
            let cyl = c.hi(gpr::ECX);
            let head = c.hi(gpr::EDX);
            let addr = c.lin(SegReg::Es, c.r16(gpr::EBX));
            let s = format_track(bios, c, d, cyl, head, n, addr);
            finish(c, s);
        }
        0x08 => {
            let max_cyl = cyls as u16 - 1;
            c.set_lo(gpr::EBX, t.cmos_type());
            c.set_r16(
                gpr::ECX,
                (max_cyl & 0xFF) << 8 | (max_cyl >> 2 & 0xC0) | spt as u16,
            );
            c.set_hi(gpr::EDX, heads - 1);
            c.set_lo(gpr::EDX, bios.floppy_count());
            c.set_seg(SegReg::Es, BIOS_SEG);
            c.set_r16(gpr::EDI, layout::dpt_offset(t.cmos_type()));
            c.set_al(0);
            finish(c, 0);
        }
        0x15 => {
            // A diskette drive that reports disk changes.
            c.set_ah(0x02);
            c.set_cf(false);
        }
        0x16 => {
            select(c, d);
            let changed = c.inb(CCR) & 0x80 != 0;
            finish(c, if changed { E_CHANGED } else { 0 });
        }
        0x17 => {
            let ok = (1..=4).contains(&c.al());
            finish(c, if ok { 0 } else { E_BAD_COMMAND });
        }
        0x18 => {
            let cx = c.r16(gpr::ECX);
            let max_cyl = (cx >> 8) | (cx & 0xC0) << 2;
            if max_cyl + 1 == cyls as u16 && (cx & 0x3F) as u8 == spt {
                c.set_seg(SegReg::Es, BIOS_SEG);
                c.set_r16(gpr::EDI, layout::dpt_offset(t.cmos_type()));
                finish(c, 0);
            } else {
                finish(c, E_MEDIA_TYPE);
            }
        }
        _ => finish(c, E_BAD_COMMAND),
    }
}

/// POST: the diskette drives CMOS 10h lists; the ISA DMA controllers'
/// set-up; with a drive, IRQ 6 unmasked, INT 1Eh at A:'s parameter table,
/// the controller reset and drive A: recalibrated. Says what it found.
pub(crate) fn detect(bios: &mut Bios, c: &mut Call) {
    // DMA: master clear of both 8237s, channel 4 cascades controller 1.
    c.outb(0x0D, 0);
    c.outb(0xDA, 0);
    c.outb(0xD6, 0xC0);
    c.outb(0xD4, 0x00);
    let types = c.cmos(0x10);
    bios.floppies = [types >> 4, types & 0x0F].map(FloppyType::from_cmos_type);
    if bios.floppies.iter().all(Option::is_none) {
        return;
    }
    for d in 0..2u8 {
        if let Some(t) = bios.floppy(d) {
            let (cyls, heads, spt) = t.geometry();
            c.say(&format!(
                "Floppy {}: {} drive, CHS {cyls}/{heads}/{spt}, drive {d:02X}h\n",
                (b'A' + d) as char,
                t.name(),
            ));
        }
    }
    let first = bios
        .floppies
        .iter()
        .flatten()
        .next()
        .map_or(4, |t| t.cmos_type());
    c.wr16(0x1E * 4, layout::dpt_offset(first));
    c.wr16(0x1E * 4 + 2, BIOS_SEG);
    let mask = c.inb(0x21) & !(1 << 6);
    c.outb(0x21, mask);
    let ok = reset_controller(c).and_then(|()| {
        for d in 0..2u8 {
            if let Some(t) = bios.floppy(d) {
                select(c, d);
                set_rate(c, d, t);
                seek(c, d, 0, 0)?;
            }
        }
        Ok(())
    });
    if let Err(e) = ok {
        c.say(&format!("Floppy controller: no answer (status {e:02X}h)\n"));
    }
    c.wr8(BDA_STATUS, 0);
}
