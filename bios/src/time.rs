//! INT 1Ah: the tick count, the RTC, and the PCI BIOS (B1xxh) on
//! configuration mechanism #1.

use ringside_cpu::{gpr, Bus};

use crate::call::Call;

const BDA_TICKS: u32 = 0x46C;
const BDA_MIDNIGHT: u32 = 0x470;
/// "PCI " in EDX for B101h.
const PCI_SIGNATURE: u32 = 0x2049_4350;

// PCI BIOS status codes.
const PCI_UNSUPPORTED: u8 = 0x81;
const PCI_NOT_FOUND: u8 = 0x86;
const PCI_BAD_REGISTER: u8 = 0x87;

/// Set the RTC's SET bit while we write the time, so no update tears it.
fn rtc_set(c: &mut Call, regs: &[(u8, u8)]) {
    let b = c.cmos(0x0B);
    c.set_cmos(0x0B, b | 0x80);
    for &(r, v) in regs {
        c.set_cmos(r, v);
    }
    c.set_cmos(0x0B, b & !0x80);
}

/// INT 1Ah.
pub(crate) fn int1a(c: &mut Call) {
    let ah = c.ah();
    match ah {
        0x00 => {
            let t = c.rd32(BDA_TICKS);
            let m = c.rd8(BDA_MIDNIGHT);
            c.wr8(BDA_MIDNIGHT, 0);
            c.set_r16(gpr::ECX, (t >> 16) as u16);
            c.set_r16(gpr::EDX, t as u16);
            c.set_al(m);
            c.set_cf(false);
        }
        0x01 => {
            let t = (c.r16(gpr::ECX) as u32) << 16 | c.r16(gpr::EDX) as u32;
            c.wr32(BDA_TICKS, t);
            c.wr8(BDA_MIDNIGHT, 0);
            c.set_cf(false);
        }
        0x02 => {
            let (h, m, s, b) = (c.cmos(4), c.cmos(2), c.cmos(0), c.cmos(0x0B));
            c.set_r16(gpr::ECX, (h as u16) << 8 | m as u16);
            c.set_r16(gpr::EDX, (s as u16) << 8 | (b & 1) as u16);
            c.ok();
        }
        0x03 => {
            let (cx, dx) = (c.r16(gpr::ECX), c.r16(gpr::EDX));
            rtc_set(
                c,
                &[(4, (cx >> 8) as u8), (2, cx as u8), (0, (dx >> 8) as u8)],
            );
            c.ok();
        }
        0x04 => {
            let (cent, y, mo, d) = (c.cmos(0x32), c.cmos(9), c.cmos(8), c.cmos(7));
            c.set_r16(gpr::ECX, (cent as u16) << 8 | y as u16);
            c.set_r16(gpr::EDX, (mo as u16) << 8 | d as u16);
            c.ok();
        }
        0x05 => {
            let (cx, dx) = (c.r16(gpr::ECX), c.r16(gpr::EDX));
            rtc_set(
                c,
                &[
                    (0x32, (cx >> 8) as u8),
                    (9, cx as u8),
                    (8, (dx >> 8) as u8),
                    (7, dx as u8),
                ],
            );
            c.ok();
        }
        0xB1 => pci_bios(c),
        _ => {
            log::debug!("INT 1Ah AH={ah:02X}: not supported");
            c.fail(0x86);
        }
    }
}

fn cfg_address(bus: u8, devfn: u8, reg: u16) -> u32 {
    0x8000_0000 | (bus as u32) << 16 | (devfn as u32) << 8 | (reg as u32 & 0xFC)
}

fn cfg_read(c: &mut Call, bus: u8, devfn: u8, reg: u16, size: u8) -> u32 {
    c.pc.io_write(0xCF8, 4, cfg_address(bus, devfn, reg));
    c.pc.io_read(0xCFC + (reg & 3), size)
}

fn cfg_write(c: &mut Call, bus: u8, devfn: u8, reg: u16, size: u8, v: u32) {
    c.pc.io_write(0xCF8, 4, cfg_address(bus, devfn, reg));
    c.pc.io_write(0xCFC + (reg & 3), size, v);
}

/// Walk bus 0 for the `index`-th function `matches` accepts.
fn find(c: &mut Call, index: u16, matches: impl Fn(&mut Call, u8) -> bool) -> Option<u8> {
    let mut seen = 0;
    for dev in 0..32u8 {
        let multi = cfg_read(c, 0, dev << 3, 0x0C, 4) >> 16 & 0x80 != 0;
        for f in 0..if multi { 8 } else { 1 } {
            let devfn = dev << 3 | f;
            if cfg_read(c, 0, devfn, 0, 2) == 0xFFFF {
                continue;
            }
            if matches(c, devfn) {
                if seen == index {
                    return Some(devfn);
                }
                seen += 1;
            }
        }
    }
    None
}

/// INT 1Ah AH=B1h: the PCI BIOS (specification 2.1), real-mode interface.
fn pci_bios(c: &mut Call) {
    let al = c.al();
    let bx = c.r16(gpr::EBX);
    let (bus, devfn) = ((bx >> 8) as u8, bx as u8);
    let di = c.r16(gpr::EDI);
    let done = |c: &mut Call, status: u8| {
        c.set_ah(status);
        c.set_cf(status != 0);
    };
    match al {
        0x01 => {
            // Present: mechanism #1, interface 2.10, last bus 0, no
            // protected-mode entry point.
            c.set_ax(0x0001);
            c.set_r16(gpr::EBX, 0x0210);
            c.set_lo(gpr::ECX, 0);
            c.set_r32(gpr::EDX, PCI_SIGNATURE);
            c.set_r32(gpr::EDI, 0);
            c.set_cf(false);
        }
        0x02 => {
            let want = (c.r16(gpr::ECX) as u32) << 16 | c.r16(gpr::EDX) as u32;
            let index = c.r16(gpr::ESI);
            match find(c, index, |c, f| cfg_read(c, 0, f, 0, 4) == want) {
                Some(f) => {
                    c.set_r16(gpr::EBX, f as u16);
                    done(c, 0);
                }
                None => done(c, PCI_NOT_FOUND),
            }
        }
        0x03 => {
            let class = c.r32(gpr::ECX) & 0xFF_FFFF;
            let index = c.r16(gpr::ESI);
            match find(c, index, |c, f| cfg_read(c, 0, f, 8, 4) >> 8 == class) {
                Some(f) => {
                    c.set_r16(gpr::EBX, f as u16);
                    done(c, 0);
                }
                None => done(c, PCI_NOT_FOUND),
            }
        }
        0x08..=0x0D => {
            let size = match al {
                0x08 | 0x0B => 1,
                0x09 | 0x0C => 2,
                _ => 4,
            };
            if !(di as u32).is_multiple_of(size as u32) || di > 0xFF {
                return done(c, PCI_BAD_REGISTER);
            }
            if al <= 0x0A {
                let v = cfg_read(c, bus, devfn, di, size);
                match size {
                    1 => c.set_lo(gpr::ECX, v as u8),
                    2 => c.set_r16(gpr::ECX, v as u16),
                    _ => c.set_r32(gpr::ECX, v),
                }
            } else {
                let v = c.r32(gpr::ECX);
                cfg_write(c, bus, devfn, di, size, v);
            }
            done(c, 0);
        }
        _ => done(c, PCI_UNSUPPORTED),
    }
}
