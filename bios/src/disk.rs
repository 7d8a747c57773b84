//! INT 13h: disks and CD-ROMs, through the IDE controller's registers.
//!
//! The host-side driver below speaks ATA (READ/WRITE SECTORS, their EXT
//! forms for LBA48, READ VERIFY) and ATAPI (PACKET with READ(10)) by port
//! I/O on the board, polling, with the drive's interrupt masked (nIEN) for
//! the duration so no stray IRQ14/15 reaches the guest. Hard disks are
//! drives 80h, 81h, ...; CD-ROMs E0h, E1h, ... (EDD only: 2048-byte blocks).

use ringside_cpu::{gpr, SegReg};

use crate::call::Call;
use crate::{Bios, Drive};

const BASE: [u16; 2] = [0x1F0, 0x170];
const CTRL: [u16; 2] = [0x3F6, 0x376];
const ST_ERR: u8 = 0x01;
const ST_DRQ: u8 = 0x08;
const ST_BSY: u8 = 0x80;
/// Status polls before we call a drive dead. The model answers at once;
/// the bound keeps a broken device from hanging the host.
const POLLS: u32 = 100_000;

/// BDA: status of the last hard-disk operation, and the hard-disk count.
const BDA_DISK_STATUS: u32 = 0x474;
pub(crate) const BDA_DISK_COUNT: u32 = 0x475;

// INT 13h status codes.
const E_BAD_COMMAND: u8 = 0x01;
const E_WRITE_PROTECTED: u8 = 0x03;
const E_NOT_FOUND: u8 = 0x04;
const E_CONTROLLER: u8 = 0x20;
const E_TIMEOUT: u8 = 0x80;

/// A block of data and the sector size in use.
type Sector = [u8; 2048];

fn wait_not_busy(c: &mut Call, ch: usize) -> Option<u8> {
    for _ in 0..POLLS {
        let s = c.inb(BASE[ch] + 7);
        if s & ST_BSY == 0 {
            return Some(s);
        }
    }
    None
}

/// Wait for DRQ (data ready); `None` on an error or timeout.
fn wait_drq(c: &mut Call, ch: usize) -> Option<()> {
    let s = wait_not_busy(c, ch)?;
    if s & ST_ERR != 0 || s & ST_DRQ == 0 {
        return None;
    }
    Some(())
}

/// Run `f` with the channel's interrupt masked (nIEN), then read the status
/// (acknowledging any pending interrupt) and unmask it again.
fn quietly<T>(c: &mut Call, ch: usize, f: impl FnOnce(&mut Call) -> T) -> T {
    c.outb(CTRL[ch], 0x02);
    let r = f(c);
    c.inb(BASE[ch] + 7);
    c.outb(CTRL[ch], 0x00);
    r
}

fn read_words(c: &mut Call, ch: usize, buf: &mut [u8]) {
    for d in buf.chunks_exact_mut(4) {
        let v = c.pc_io_read(BASE[ch], 4);
        d.copy_from_slice(&v.to_le_bytes());
    }
}

impl Call<'_> {
    fn pc_io_read(&mut self, port: u16, size: u8) -> u32 {
        use ringside_cpu::Bus;
        self.pc.io_read(port, size)
    }
    fn pc_io_write(&mut self, port: u16, size: u8, v: u32) {
        use ringside_cpu::Bus;
        self.pc.io_write(port, size, v)
    }
}

/// IDENTIFY (PACKET) DEVICE at a position: the drive, if one answers.
pub(crate) fn identify(c: &mut Call, ch: usize, slot: usize) -> Option<(Drive, String)> {
    quietly(c, ch, |c| {
        let base = BASE[ch];
        c.outb(base + 6, 0xA0 | (slot as u8) << 4);
        if c.inb(base + 7) == 0xFF {
            return None; // nothing on the cable
        }
        wait_not_busy(c, ch)?;
        // An ATAPI device posts its signature and status 0 after reset;
        // a disk answers IDENTIFY DEVICE, an ATAPI device aborts it with
        // the signature. An absent slave never raises DRQ.
        let signature = |c: &mut Call| c.inb(base + 4) == 0x14 && c.inb(base + 5) == 0xEB;
        let mut atapi = signature(c);
        if !atapi {
            c.outb(base + 7, 0xEC);
            let s = wait_not_busy(c, ch)?;
            atapi = s & ST_ERR != 0 && signature(c);
        }
        if atapi {
            c.outb(base + 7, 0xA1);
        }
        wait_drq(c, ch)?;
        let mut id = [0u8; 512];
        read_words(c, ch, &mut id);
        let w = |i: usize| u16::from_le_bytes([id[2 * i], id[2 * i + 1]]);
        let mut model = String::new();
        for i in 27..47 {
            let v = w(i);
            model.push((v >> 8) as u8 as char);
            model.push(v as u8 as char);
        }
        let model = model.trim().to_string();
        let (sectors, lba48) = if atapi {
            (cd_capacity(c, ch, slot).unwrap_or(0), false)
        } else {
            let lba28 = w(60) as u64 | (w(61) as u64) << 16;
            let lba48 = w(83) & (1 << 10) != 0;
            let big = (0..4).fold(0u64, |acc, i| acc | (w(100 + i) as u64) << (16 * i));
            if lba48 && big > lba28 {
                (big, true)
            } else {
                (lba28, false)
            }
        };
        let (cylinders, heads, spt) = translate(sectors);
        Some((
            Drive {
                channel: ch as u8,
                slot: slot as u8,
                atapi,
                sectors,
                lba48,
                cylinders,
                heads,
                spt,
            },
            model,
        ))
    })
}

/// The BIOS geometry of a disk (LBA-assisted translation): 63 sectors per
/// track, as few heads (16, 32, 64, 128, 255) as keep the cylinders at or
/// below 1024.
fn translate(sectors: u64) -> (u16, u16, u16) {
    let spt = 63u64;
    let mut heads = 16u64;
    for h in [16, 32, 64, 128, 255] {
        heads = h;
        if sectors / (h * spt) <= 1024 {
            break;
        }
    }
    let cyl = (sectors / (heads * spt)).clamp(1, 1024);
    (cyl as u16, heads as u16, spt as u16)
}

/// Send a 12-byte ATAPI packet; leaves the device ready to move data.
fn send_packet(
    c: &mut Call,
    ch: usize,
    slot: usize,
    packet: &[u8; 12],
    byte_limit: u16,
) -> Option<()> {
    let base = BASE[ch];
    c.outb(base + 6, (slot as u8) << 4);
    wait_not_busy(c, ch)?;
    c.outb(base + 1, 0); // PIO
    c.outb(base + 4, byte_limit as u8);
    c.outb(base + 5, (byte_limit >> 8) as u8);
    c.outb(base + 7, 0xA0);
    wait_drq(c, ch)?;
    for w in packet.chunks_exact(2) {
        c.pc_io_write(base, 2, u16::from_le_bytes([w[0], w[1]]) as u32);
    }
    Some(())
}

/// READ CAPACITY: the number of 2048-byte blocks on the CD.
fn cd_capacity(c: &mut Call, ch: usize, slot: usize) -> Option<u64> {
    for _ in 0..2 {
        // The first command after a reset reports UNIT ATTENTION; retry.
        let p = [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        if send_packet(c, ch, slot, &p, 8).is_none() {
            continue;
        }
        if wait_drq(c, ch).is_none() {
            continue;
        }
        let mut r = [0u8; 8];
        read_words(c, ch, &mut r);
        wait_not_busy(c, ch)?;
        let last = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
        return Some(last as u64 + 1);
    }
    None
}

/// Read `count` 2048-byte blocks from a CD at `lba`, handing each to
/// `sink`. Returns the blocks read.
pub(crate) fn cd_read(
    c: &mut Call,
    d: &Drive,
    lba: u64,
    count: u32,
    mut sink: impl FnMut(&mut Call, u32, &[u8]),
) -> u32 {
    let (ch, slot) = (d.channel as usize, d.slot as usize);
    quietly(c, ch, |c| {
        let mut done = 0;
        let mut buf: Sector = [0; 2048];
        while done < count {
            let l = (lba + done as u64) as u32;
            let mut p = [0u8; 12];
            p[0] = 0x28;
            p[2..6].copy_from_slice(&l.to_be_bytes());
            p[7..9].copy_from_slice(&1u16.to_be_bytes());
            let mut ok = false;
            for _ in 0..2 {
                if send_packet(c, ch, slot, &p, 2048).is_some() && wait_drq(c, ch).is_some() {
                    ok = true;
                    break;
                }
            }
            if !ok {
                break;
            }
            read_words(c, ch, &mut buf);
            if wait_not_busy(c, ch).is_none() {
                break;
            }
            sink(c, done, &buf);
            done += 1;
        }
        done
    })
}

/// Issue an ATA command for `count` sectors (1..=256) at `lba`. The
/// 28-bit count register takes 256 as 0; the 48-bit one as 0100h.
fn ata_command(c: &mut Call, d: &Drive, lba: u64, count: u16, cmd28: u8, cmd48: u8) -> Option<()> {
    let ch = d.channel as usize;
    let base = BASE[ch];
    let slot = d.slot << 4;
    wait_not_busy(c, ch)?;
    if d.lba48 && lba + count as u64 > 0x0FFF_FFFF {
        c.outb(base + 6, 0x40 | slot);
        c.outb(base + 2, (count >> 8) as u8);
        c.outb(base + 3, (lba >> 24) as u8);
        c.outb(base + 4, (lba >> 32) as u8);
        c.outb(base + 5, (lba >> 40) as u8);
        c.outb(base + 2, count as u8);
        c.outb(base + 3, lba as u8);
        c.outb(base + 4, (lba >> 8) as u8);
        c.outb(base + 5, (lba >> 16) as u8);
        c.outb(base + 7, cmd48);
    } else {
        c.outb(base + 6, 0xE0 | slot | ((lba >> 24) as u8 & 0x0F));
        c.outb(base + 2, count as u8); // 0 means 256
        c.outb(base + 3, lba as u8);
        c.outb(base + 4, (lba >> 8) as u8);
        c.outb(base + 5, (lba >> 16) as u8);
        c.outb(base + 7, cmd28);
    }
    Some(())
}

/// What to do with each sector.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Verify,
}

/// Move `count` sectors at `lba` between the disk and guest memory at
/// `addr` (linear). Returns the sectors done and the status.
pub(crate) fn ata_transfer(
    c: &mut Call,
    d: &Drive,
    lba: u64,
    count: u32,
    addr: u32,
    op: Op,
) -> (u32, u8) {
    if lba.saturating_add(count as u64) > d.sectors {
        return (0, E_NOT_FOUND);
    }
    let ch = d.channel as usize;
    quietly(c, ch, |c| {
        let mut done = 0u32;
        while done < count {
            let n = (count - done).min(256) as u16;
            let at = lba + done as u64;
            let cmd = match op {
                Op::Read => (0x20, 0x24),
                Op::Write => (0x30, 0x34),
                Op::Verify => (0x40, 0x42),
            };
            if ata_command(c, d, at, n, cmd.0, cmd.1).is_none() {
                return (done, E_TIMEOUT);
            }
            if op == Op::Verify {
                match wait_not_busy(c, ch) {
                    Some(s) if s & ST_ERR == 0 => done += n as u32,
                    _ => return (done, E_NOT_FOUND),
                }
                continue;
            }
            for _ in 0..n {
                if wait_drq(c, ch).is_none() {
                    return (done, E_NOT_FOUND);
                }
                let mem = addr.wrapping_add(done * 512);
                let mut buf = [0u8; 512];
                if op == Op::Read {
                    read_words(c, ch, &mut buf);
                    c.write_bytes(mem, &buf);
                } else {
                    c.read_bytes(mem, &mut buf);
                    for w in buf.chunks_exact(4) {
                        c.pc_io_write(BASE[ch], 4, u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
                    }
                }
                done += 1;
            }
            match wait_not_busy(c, ch) {
                Some(s) if s & ST_ERR == 0 => {}
                _ => return (done, E_CONTROLLER),
            }
        }
        if op == Op::Write {
            // FLUSH CACHE, so the image file has it.
            c.outb(BASE[ch] + 7, 0xE7);
            wait_not_busy(c, ch);
        }
        (done, 0)
    })
}

impl Bios {
    pub(crate) fn drive(&self, dl: u8) -> Option<Drive> {
        match dl {
            0x80..=0xDF => self.disks.get((dl - 0x80) as usize).copied(),
            0xE0..=0xFF => self.cdroms.get((dl - 0xE0) as usize).copied(),
            _ => None,
        }
    }
}

fn finish(c: &mut Call, status: u8) {
    c.wr8(BDA_DISK_STATUS, status);
    if status == 0 {
        c.ok();
    } else {
        c.fail(status);
    }
}

/// INT 13h.
pub(crate) fn int13(bios: &mut Bios, c: &mut Call) {
    let ah = c.ah();
    let dl = c.lo(gpr::EDX);
    if ah == 0x01 {
        // Status of the last operation (diskettes keep theirs at 40:41).
        let at = if dl < 0x80 {
            crate::floppy::BDA_STATUS
        } else {
            BDA_DISK_STATUS
        };
        let s = c.rd8(at);
        c.set_ah(s);
        c.set_cf(s != 0);
        return;
    }
    if let Some(t) = bios.floppy(dl) {
        return crate::floppy::int13(bios, c, dl, t);
    }
    let Some(d) = bios.drive(dl) else {
        // No such drive.
        if ah == 0x15 {
            c.set_ah(0);
            c.set_cf(false);
        } else {
            finish(c, if dl < 0x80 { E_TIMEOUT } else { E_BAD_COMMAND });
        }
        return;
    };
    match ah {
        0x00 | 0x0D | 0x10 | 0x11 | 0x0C | 0x47 => finish(c, 0),
        0x02..=0x04 => {
            if d.atapi {
                return finish(c, E_BAD_COMMAND);
            }
            let n = c.al() as u32;
            let cx = c.r16(gpr::ECX);
            let head = c.hi(gpr::EDX) as u64;
            let sector = (cx & 0x3F) as u64;
            let cyl = ((cx >> 8) | ((cx & 0xC0) << 2)) as u64;
            if n == 0
                || sector == 0
                || sector > d.spt as u64
                || head >= d.heads as u64
                || cyl >= d.cylinders as u64
            {
                c.set_al(0);
                return finish(c, if n == 0 { E_BAD_COMMAND } else { E_NOT_FOUND });
            }
            let lba = (cyl * d.heads as u64 + head) * d.spt as u64 + sector - 1;
            let addr = c.lin(SegReg::Es, c.r16(gpr::EBX));
            let op = [Op::Read, Op::Write, Op::Verify][(ah - 2) as usize];
            let (done, status) = ata_transfer(c, &d, lba, n, addr, op);
            c.set_al(done as u8);
            finish(c, status);
        }
        0x08 => {
            if d.atapi {
                return finish(c, E_BAD_COMMAND);
            }
            let max_cyl = d.cylinders - 1;
            c.set_r16(
                gpr::ECX,
                (max_cyl & 0xFF) << 8 | (max_cyl >> 2 & 0xC0) | d.spt,
            );
            c.set_hi(gpr::EDX, (d.heads - 1) as u8);
            c.set_lo(gpr::EDX, bios.disks.len() as u8);
            c.set_al(0);
            finish(c, 0);
        }
        0x15 => {
            if d.atapi {
                c.set_ah(0x02);
            } else {
                c.set_ah(0x03);
                c.set_r16(gpr::ECX, (d.sectors >> 16) as u16);
                c.set_r16(gpr::EDX, d.sectors as u16);
            }
            c.set_cf(false);
        }
        0x41 => {
            if c.r16(gpr::EBX) != 0x55AA {
                return finish(c, E_BAD_COMMAND);
            }
            c.set_r16(gpr::EBX, 0xAA55);
            c.set_ah(0x30); // EDD 3.0
            c.set_r16(gpr::ECX, 0x0005); // 42h-44h,47h,48h; EDD 48h fields
            c.set_cf(false);
        }
        0x42..=0x44 => {
            let dap = c.lin(SegReg::Ds, c.r16(gpr::ESI));
            let size = c.rd8(dap);
            let n = c.rd16(dap + 2) as u32;
            let off = c.rd16(dap + 4);
            let seg = c.rd16(dap + 6);
            let lba = c.rd32(dap + 8) as u64 | (c.rd32(dap + 12) as u64) << 32;
            let addr = if size >= 0x18 && off == 0xFFFF && seg == 0xFFFF {
                c.rd32(dap + 0x10)
            } else {
                ((seg as u32) << 4).wrapping_add(off as u32)
            };
            if size < 0x10 {
                return finish(c, E_BAD_COMMAND);
            }
            let (done, status) = if d.atapi {
                match ah {
                    0x42 => {
                        let got = cd_read(c, &d, lba, n, |c, i, blk| {
                            c.write_bytes(addr.wrapping_add(i * 2048), blk)
                        });
                        (got, if got == n { 0 } else { E_NOT_FOUND })
                    }
                    0x43 => (0, E_WRITE_PROTECTED),
                    _ => (n, 0),
                }
            } else {
                let op = [Op::Read, Op::Write, Op::Verify][(ah - 0x42) as usize];
                ata_transfer(c, &d, lba, n, addr, op)
            };
            c.wr16(dap + 2, done as u16);
            finish(c, status);
        }
        0x48 => {
            let p = c.lin(SegReg::Ds, c.r16(gpr::ESI));
            let size = c.rd16(p);
            if size < 0x1A {
                return finish(c, E_BAD_COMMAND);
            }
            let (flags, bps) = if d.atapi {
                (0x0074, 2048)
            } else {
                (0x0002, 512)
            };
            c.wr16(p, if size >= 0x1E { 0x1E } else { 0x1A });
            c.wr16(p + 2, flags);
            let (cyl, heads, spt) = if d.atapi {
                (0, 0, 0)
            } else {
                (d.cylinders, d.heads, d.spt)
            };
            c.wr32(p + 4, cyl as u32);
            c.wr32(p + 8, heads as u32);
            c.wr32(p + 12, spt as u32);
            c.wr32(p + 16, d.sectors as u32);
            c.wr32(p + 20, (d.sectors >> 32) as u32);
            c.wr16(p + 24, bps);
            if size >= 0x1E {
                c.wr32(p + 26, 0xFFFF_FFFF); // no DPTE
            }
            finish(c, 0);
        }
        0x4B if d.atapi => {
            // El Torito: terminate emulation / get status. No-emulation
            // boot: fill the specification packet, nothing to terminate.
            let p = c.lin(SegReg::Ds, c.r16(gpr::ESI));
            let mut spec = [0u8; 0x13];
            spec[0] = 0x13;
            spec[1] = 0x00; // no emulation
            spec[2] = dl;
            spec[3] = d.channel;
            spec[8] = d.slot;
            c.write_bytes(p, &spec);
            finish(c, 0);
        }
        _ => finish(c, E_BAD_COMMAND),
    }
}
