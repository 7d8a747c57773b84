//! INT 14h (serial ports, on the board's 16550As) and INT 17h (printers:
//! the board has none).

use ringside_cpu::gpr;

use crate::call::Call;

const LSR_DR: u8 = 0x01;
const LSR_THRE: u8 = 0x20;
const TIMEOUT: u8 = 0x80;
/// Device events we let pass while waiting for the transmitter.
const WAIT_EVENTS: u32 = 64;

fn port_base(c: &mut Call) -> Option<u16> {
    let dx = c.r16(gpr::EDX);
    if dx > 3 {
        return None;
    }
    let base = c.rd16(0x400 + 2 * dx as u32);
    (base != 0).then_some(base)
}

/// Let virtual time run to the board's next event, as a BIOS busy-polling
/// the line status register would spend it.
fn pass_time(c: &mut Call) {
    if let Some(at) = c.pc.next_event() {
        if at > c.cpu.cycles {
            c.cpu.cycles = at;
        }
    }
    c.pc.set_now(c.cpu.cycles);
    if c.pc.service() {
        c.cpu.poll_interrupts();
    }
}

/// INT 14h.
pub(crate) fn int14(c: &mut Call) {
    let ah = c.ah();
    let al = c.al();
    let Some(base) = port_base(c) else {
        c.set_ah(TIMEOUT);
        return;
    };
    let status = |c: &mut Call| {
        let lsr = c.inb(base + 5);
        let msr = c.inb(base + 6);
        c.set_ax((lsr as u16) << 8 | msr as u16);
    };
    match ah {
        0x00 => {
            // AL: baud (bits 7-5), parity (4-3), stop bits (2), length (1-0).
            const DIVISORS: [u16; 8] = [1047, 768, 384, 192, 96, 48, 24, 12];
            let div = DIVISORS[(al >> 5) as usize];
            c.outb(base + 3, 0x80);
            c.outb(base, div as u8);
            c.outb(base + 1, (div >> 8) as u8);
            c.outb(base + 3, al & 0x1F);
            c.outb(base + 1, 0);
            status(c);
        }
        0x01 => {
            let mut lsr = c.inb(base + 5);
            for _ in 0..WAIT_EVENTS {
                if lsr & LSR_THRE != 0 {
                    break;
                }
                pass_time(c);
                lsr = c.inb(base + 5);
            }
            if lsr & LSR_THRE != 0 {
                c.outb(base, al);
                let lsr = c.inb(base + 5);
                c.set_ah(lsr & 0x7F);
            } else {
                c.set_ah(lsr | TIMEOUT);
            }
        }
        0x02 => {
            let lsr = c.inb(base + 5);
            if lsr & LSR_DR != 0 {
                let v = c.inb(base);
                c.set_ax(((lsr & 0x1E) as u16) << 8 | v as u16);
            } else {
                c.set_ah(lsr | TIMEOUT);
            }
        }
        0x03 => status(c),
        _ => c.set_ah(TIMEOUT),
    }
}

/// INT 17h: no printer ports; every call reports a time-out.
pub(crate) fn int17(c: &mut Call) {
    c.set_ah(0x01);
}
