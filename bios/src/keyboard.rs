//! The keyboard: IRQ1 scan-code translation into the BDA's buffer, and
//! INT 16h reading it. US layout, scan code set 1 (the 8042 translates).

use ringside_cpu::gpr;

use crate::call::Call;

const BDA_SHIFT: u32 = 0x417;
const BDA_SHIFT2: u32 = 0x418;
const BDA_HEAD: u32 = 0x41A;
const BDA_TAIL: u32 = 0x41C;
const BDA_BUF_START: u32 = 0x480;
const BDA_BUF_END: u32 = 0x482;
/// Keyboard status byte 3: bit 1 "last code was E0h", bit 4 "101-key
/// keyboard", bits 2/3 right Ctrl/Alt.
const BDA_KBD3: u32 = 0x496;

// 40:17 bits.
const RSHIFT: u8 = 0x01;
const LSHIFT: u8 = 0x02;
const CTRL: u8 = 0x04;
const ALT: u8 = 0x08;
const SCROLL: u8 = 0x10;
const NUM: u8 = 0x20;
const CAPS: u8 = 0x40;
const INSERT: u8 = 0x80;

/// ASCII of scan codes 00h–39h, unshifted and shifted.
const NORMAL: &[u8; 0x3A] =
    b"\0\x1b1234567890-=\x08\tqwertyuiop[]\r\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
const SHIFTED: &[u8; 0x3A] =
    b"\0\x1b!@#$%^&*()_+\x08\tQWERTYUIOP{}\r\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";
/// Keypad 47h–53h with Num Lock.
const KEYPAD: &[u8; 13] = b"789-456+1230.";

fn is_letter(scan: u8) -> bool {
    NORMAL
        .get(scan as usize)
        .is_some_and(|b| b.is_ascii_lowercase())
}

/// The (scan, ASCII) word a make code stands for, given the shift states;
/// `None` for keys that give nothing.
fn translate(scan: u8, shift: u8, extended: bool) -> Option<u16> {
    let shifted = shift & (LSHIFT | RSHIFT) != 0;
    let w = |s: u8, a: u8| Some((s as u16) << 8 | a as u16);
    if extended {
        return match scan {
            0x1C => w(0xE0, b'\r'),
            0x35 => w(0xE0, b'/'),
            0x47..=0x53 if shift & ALT != 0 => w(scan + 0x50, 0),
            0x47..=0x53 if shift & CTRL != 0 => match scan {
                0x47 => w(0x77, 0xE0),
                0x48 => w(0x8D, 0xE0),
                0x49 => w(0x84, 0xE0),
                0x4B => w(0x73, 0xE0),
                0x4D => w(0x74, 0xE0),
                0x4F => w(0x75, 0xE0),
                0x50 => w(0x91, 0xE0),
                0x51 => w(0x76, 0xE0),
                0x52 => w(0x92, 0xE0),
                0x53 => w(0x93, 0xE0),
                _ => None,
            },
            0x47..=0x53 => w(scan, 0xE0),
            _ => None,
        };
    }
    match scan {
        0x3B..=0x44 => {
            // F1–F10.
            let s = if shift & ALT != 0 {
                scan + 0x2D
            } else if shift & CTRL != 0 {
                scan + 0x23
            } else if shifted {
                scan + 0x19
            } else {
                scan
            };
            w(s, 0)
        }
        0x57 | 0x58 => {
            // F11, F12.
            let base = if shift & ALT != 0 {
                0x8B
            } else if shift & CTRL != 0 {
                0x89
            } else if shifted {
                0x87
            } else {
                0x85
            };
            w(base + (scan - 0x57), 0)
        }
        0x47..=0x53 => {
            let num = (shift & NUM != 0) != shifted;
            if shift & ALT != 0 || shift & CTRL != 0 {
                None
            } else if num || scan == 0x4A || scan == 0x4E {
                w(scan, KEYPAD[(scan - 0x47) as usize])
            } else {
                w(scan, 0)
            }
        }
        0x01..=0x39 => {
            let normal = NORMAL[scan as usize];
            if normal == 0 {
                return None;
            }
            if shift & ALT != 0 {
                return match scan {
                    0x02..=0x0D => w(scan + 0x76, 0),
                    _ if is_letter(scan) => w(scan, 0),
                    _ => w(scan, 0),
                };
            }
            if shift & CTRL != 0 {
                return match normal {
                    b'a'..=b'z' => w(scan, normal - b'a' + 1),
                    b'\r' => w(scan, b'\n'),
                    0x08 => w(scan, 0x7F),
                    b'[' => w(scan, 0x1B),
                    b']' => w(scan, 0x1D),
                    b'\\' => w(scan, 0x1C),
                    0x1B => w(scan, 0x1B),
                    b' ' => w(scan, b' '),
                    _ => None,
                };
            }
            let mut up = shifted;
            if is_letter(scan) && shift & CAPS != 0 {
                up = !up;
            }
            let a = if up { SHIFTED[scan as usize] } else { normal };
            if scan == 0x0F && shifted {
                return w(0x0F, 0); // Shift+Tab
            }
            w(scan, a)
        }
        _ => None,
    }
}

/// Append a key to the buffer; false when it is full.
fn push(c: &mut Call, key: u16) -> bool {
    let start = c.rd16(BDA_BUF_START) as u32;
    let end = c.rd16(BDA_BUF_END) as u32;
    let head = c.rd16(BDA_HEAD) as u32;
    let tail = c.rd16(BDA_TAIL) as u32;
    if start >= end || !(start..end).contains(&tail) {
        return false;
    }
    let mut next = tail + 2;
    if next >= end {
        next = start;
    }
    if next == head {
        return false;
    }
    c.wr16(0x400 + tail, key);
    c.wr16(BDA_TAIL, next as u16);
    true
}

fn peek(c: &mut Call) -> Option<u16> {
    let head = c.rd16(BDA_HEAD) as u32;
    let tail = c.rd16(BDA_TAIL) as u32;
    (head != tail).then(|| c.rd16(0x400 + (head & 0xFF)))
}

fn pop(c: &mut Call) -> Option<u16> {
    let k = peek(c)?;
    let start = c.rd16(BDA_BUF_START) as u32;
    let end = c.rd16(BDA_BUF_END) as u32;
    let mut head = c.rd16(BDA_HEAD) as u32 + 2;
    if head >= end {
        head = start;
    }
    c.wr16(BDA_HEAD, head as u16);
    Some(k)
}

/// IRQ1: one scan code (AL on the stub's stack).
pub(crate) fn irq(c: &mut Call) {
    let code = c.al();
    let mut kbd3 = c.rd8(BDA_KBD3);
    if code == 0xE0 {
        c.wr8(BDA_KBD3, kbd3 | 0x02);
        return;
    }
    let extended = kbd3 & 0x02 != 0;
    kbd3 &= !0x02;
    // Acknowledge, self-test and resend bytes are not keys.
    if matches!(code, 0xFA | 0xFE | 0x00 | 0xFF | 0xE1)
        || (code == 0xAA && !extended && c.rd8(BDA_SHIFT) & LSHIFT == 0)
    {
        c.wr8(BDA_KBD3, kbd3);
        return;
    }
    let release = code & 0x80 != 0;
    let scan = code & 0x7F;
    let mut shift = c.rd8(BDA_SHIFT);
    let mut shift2 = c.rd8(BDA_SHIFT2);
    let set = |v: &mut u8, bit: u8, on: bool| {
        if on {
            *v |= bit
        } else {
            *v &= !bit
        }
    };
    match scan {
        // E0 2A / E0 36: the fake shifts around extended keys.
        0x2A | 0x36 if extended => {}
        0x2A => set(&mut shift, LSHIFT, !release),
        0x36 => set(&mut shift, RSHIFT, !release),
        0x1D => {
            if extended {
                set(&mut kbd3, 0x04, !release);
            } else {
                set(&mut shift2, 0x01, !release);
            }
            set(&mut shift, CTRL, (shift2 & 0x01 != 0) || (kbd3 & 0x04 != 0));
        }
        0x38 => {
            if extended {
                set(&mut kbd3, 0x08, !release);
            } else {
                set(&mut shift2, 0x02, !release);
            }
            set(&mut shift, ALT, (shift2 & 0x02 != 0) || (kbd3 & 0x08 != 0));
        }
        0x3A | 0x45 | 0x46 if !extended => {
            let (toggle, held) = match scan {
                0x3A => (CAPS, 0x40),
                0x45 => (NUM, 0x20),
                _ => (SCROLL, 0x10),
            };
            if release {
                shift2 &= !held;
            } else if shift2 & held == 0 {
                shift2 |= held;
                shift ^= toggle;
            }
        }
        _ if release => {}
        0x53 if shift & CTRL != 0 && shift & ALT != 0 => {
            // Ctrl+Alt+Del: warm reboot (40:72 = 1234h skips the memory
            // test on a real BIOS), through the 8042's reset line.
            c.wr16(0x472, 0x1234);
            c.outb(0x64, 0xFE);
        }
        _ => {
            if scan == 0x52 && (extended || shift & NUM == 0) {
                shift ^= INSERT;
            }
            if let Some(key) = translate(scan, shift, extended) {
                if !push(c, key) {
                    log::debug!("keyboard buffer full: key {key:#06x} dropped");
                }
            }
        }
    }
    c.wr8(BDA_SHIFT, shift);
    c.wr8(BDA_SHIFT2, shift2);
    c.wr8(BDA_KBD3, kbd3);
}

/// The classic (00h/01h) view of a key: extended keys as 00h, keys the
/// 83-key keyboard did not have dropped.
fn classic(key: u16) -> Option<u16> {
    let (scan, ascii) = ((key >> 8) as u8, key as u8);
    if scan == 0xE0 {
        return Some(if ascii == b'\r' { 0x1C0D } else { 0x352F });
    }
    if scan > 0x84 {
        return None;
    }
    Some(if ascii == 0xE0 { key & 0xFF00 } else { key })
}

/// INT 16h. Returns true to have the stub wait for an interrupt and call
/// again (no key yet for AH=00h/10h).
pub(crate) fn int16(c: &mut Call) -> bool {
    let ah = c.ah();
    match ah {
        0x00 | 0x10 => loop {
            let Some(k) = pop(c) else {
                return true;
            };
            let k = if ah == 0x00 { classic(k) } else { Some(k) };
            if let Some(k) = k {
                c.set_ax(k);
                return false;
            }
        },
        0x01 | 0x11 => {
            let k = loop {
                match peek(c) {
                    None => break None,
                    Some(k) if ah == 0x11 => break Some(k),
                    Some(k) => match classic(k) {
                        Some(k) => break Some(k),
                        None => {
                            pop(c);
                        }
                    },
                }
            };
            match k {
                Some(k) => {
                    c.set_ax(k);
                    c.set_zf(false);
                }
                None => c.set_zf(true),
            }
        }
        0x02 => {
            let s = c.rd8(BDA_SHIFT);
            c.set_al(s);
        }
        0x12 => {
            let s = c.rd8(BDA_SHIFT);
            let s2 = c.rd8(BDA_SHIFT2);
            let k3 = c.rd8(BDA_KBD3);
            let hi = (s2 & 0x73) | (k3 & 0x0C);
            c.set_ax((hi as u16) << 8 | s as u16);
        }
        0x03 => {}
        0x05 => {
            let cx = c.r16(gpr::ECX);
            let ok = push(c, cx);
            c.set_al(if ok { 0 } else { 1 });
        }
        0x0A => c.set_r16(gpr::EBX, 0x83AB), // MF2 keyboard
        _ => log::debug!("INT 16h AH={ah:02X}: not implemented"),
    }
    false
}
