//! The Intel 8042 keyboard controller (ports 0x60 data, 0x64 status and
//! command) with a PS/2 keyboard behind it, on IRQ1.
//!
//! The controller's commands follow the IBM PS/2 technical reference
//! ("Keyboard/Auxiliary Device Controller"): command byte (RAM 0) bit 0
//! keyboard interrupt, bit 1 auxiliary interrupt, bit 2 system flag, bit 4
//! keyboard disabled, bit 5 auxiliary disabled, bit 6 translation to scan
//! code set 1. The output port carries the A20 gate (bit 1) and the
//! processor reset line (bit 0, active low), which the board turns into
//! requests the machine applies.
//!
//! The keyboard speaks scan code set 2 (or set 1 on request); with
//! translation on, the controller turns set 2 into set 1 as an AT does.
//! Bytes are delivered at once (no serial-line delay): a driver that reads
//! the next byte immediately after an IRQ1 gets it.

use std::collections::VecDeque;
use std::ops::RangeInclusive;

/// Data port.
pub const DATA_PORT: u16 = 0x60;
/// Status (read) and command (write) port.
pub const STATUS_PORT: u16 = 0x64;

const ST_OBF: u8 = 0x01;
const ST_SYS: u8 = 0x04;
const ST_CMD: u8 = 0x08;
const ST_UNLOCKED: u8 = 0x10;
const ST_AUX_OBF: u8 = 0x20;

const CB_KBD_INT: u8 = 0x01;
const CB_AUX_INT: u8 = 0x02;
const CB_SYS: u8 = 0x04;
const CB_KBD_DISABLED: u8 = 0x10;
const CB_AUX_DISABLED: u8 = 0x20;
const CB_TRANSLATE: u8 = 0x40;

const OUT_RESET: u8 = 0x01;
const OUT_A20: u8 = 0x02;

/// The keyboard's internal buffer (a real one holds 16 keys).
const KBD_QUEUE: usize = 32;

/// Set-2 → set-1 translation as the 8042 does it, for codes 0x00–0x83
/// (others pass through). The table is the AT keyboard's scan-code
/// correspondence, e.g. set-2 0x1C ('A') → set-1 0x1E.
const SET2_TO_SET1: [u8; 0x84] = [
    0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40, 0x3e, 0x0f, 0x29, 0x59,
    0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a, 0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b,
    0x67, 0x2e, 0x2d, 0x20, 0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
    0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24, 0x16, 0x08, 0x09, 0x5f,
    0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60, 0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61,
    0x6d, 0x73, 0x28, 0x74, 0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
    0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b, 0x47, 0x7e, 0x7f, 0x6f,
    0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45, 0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54,
    0x80, 0x81, 0x82, 0x41,
];

fn translate(b: u8) -> u8 {
    SET2_TO_SET1.get(b as usize).copied().unwrap_or(b)
}

/// The set-2 code whose set-1 translation is `set1` (the first match; the
/// 0x83 → 0x41 alias of F7 is skipped).
fn set1_to_set2(set1: u8) -> Option<u8> {
    SET2_TO_SET1[..0x80]
        .iter()
        .position(|&c| c == set1)
        .map(|i| i as u8)
}

/// What the next byte written to port 0x60 means.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Data for the keyboard.
    None,
    /// Controller RAM byte (command 0x60–0x7F).
    WriteRam(u8),
    /// Output port (0xD1).
    WriteOutputPort,
    /// Into the output buffer as if from the keyboard (0xD2).
    WriteKbdBuffer,
    /// Into the output buffer as if from the mouse (0xD3).
    WriteAuxBuffer,
    /// To the auxiliary device (0xD4).
    WriteAux,
}

/// Which device a keyboard command byte parameter belongs to.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum KbdParam {
    None,
    Leds,
    Typematic,
    ScanSet,
}

/// A byte in the output queue and who sent it.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// The controller itself (command results): never translated.
    Controller,
    /// The keyboard (translated when the command byte says so).
    Keyboard,
    /// The auxiliary port.
    Aux,
}

/// The 8042 and its keyboard.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Ps2 {
    command_byte: u8,
    output_port: u8,
    /// The byte in the output buffer, if full.
    output: Option<(u8, Source)>,
    /// Bytes waiting behind it: controller replies first, then devices.
    controller_queue: VecDeque<u8>,
    kbd_queue: VecDeque<u8>,
    aux_queue: VecDeque<u8>,
    /// Last write went to port 0x64 (status bit 3).
    last_was_command: bool,
    self_tested: bool,
    pending: Pending,
    /// A set-2 0xF0 (break) prefix seen while translating.
    translate_break: bool,
    // Keyboard state.
    kbd_param: KbdParam,
    scanning: bool,
    scan_set: u8,
    leds: u8,
    typematic: u8,
    last_kbd_byte: u8,
    /// The guest pulsed the reset line.
    reset_requested: bool,
    /// The output port changed A20 since the last look.
    a20_changed: bool,
}

impl Default for Ps2 {
    fn default() -> Self {
        Ps2::new()
    }
}

impl Ps2 {
    /// Power-on state: translation and both interrupts on (what PC BIOSes
    /// leave, so a guest that never programs the controller still gets
    /// set-1 codes on IRQ1), the system flag clear (cold boot), A20 open.
    pub fn new() -> Ps2 {
        Ps2 {
            command_byte: CB_TRANSLATE | CB_KBD_INT | CB_AUX_INT,
            output_port: 0xCF | OUT_RESET | OUT_A20,
            output: None,
            controller_queue: VecDeque::with_capacity(8),
            kbd_queue: VecDeque::with_capacity(KBD_QUEUE),
            aux_queue: VecDeque::with_capacity(8),
            last_was_command: false,
            self_tested: false,
            pending: Pending::None,
            translate_break: false,
            kbd_param: KbdParam::None,
            scanning: true,
            scan_set: 2,
            leds: 0,
            typematic: 0x2B,
            last_kbd_byte: 0,
            reset_requested: false,
            a20_changed: false,
        }
    }

    /// Back to power-on (the machine's reset line): queued input is lost.
    pub fn reset(&mut self) {
        *self = Ps2::new();
    }

    /// The 8042's data and status/command ports.
    pub const PORTS: &[RangeInclusive<u16>] = &[DATA_PORT..=DATA_PORT, STATUS_PORT..=STATUS_PORT];

    /// IRQ1: the output buffer holds a keyboard byte and its interrupt is
    /// enabled.
    pub fn irq1(&self) -> bool {
        self.command_byte & CB_KBD_INT != 0
            && matches!(
                self.output,
                Some((_, Source::Keyboard | Source::Controller))
            )
    }

    /// IRQ12: the output buffer holds an auxiliary byte.
    pub fn irq12(&self) -> bool {
        self.command_byte & CB_AUX_INT != 0 && matches!(self.output, Some((_, Source::Aux)))
    }

    /// The A20 line as the output port drives it.
    pub fn a20(&self) -> bool {
        self.output_port & OUT_A20 != 0
    }

    /// Whether the output port's A20 bit was written since the last call.
    pub fn take_a20_change(&mut self) -> bool {
        std::mem::take(&mut self.a20_changed)
    }

    /// Whether the guest pulsed the CPU reset line since the last call.
    pub fn take_reset_request(&mut self) -> bool {
        std::mem::take(&mut self.reset_requested)
    }

    /// Move the next queued byte into the empty output buffer.
    fn refill(&mut self) {
        if self.output.is_some() {
            return;
        }
        if let Some(b) = self.controller_queue.pop_front() {
            self.output = Some((b, Source::Controller));
            return;
        }
        if self.command_byte & CB_KBD_DISABLED == 0 {
            while let Some(b) = self.kbd_queue.pop_front() {
                if self.command_byte & CB_TRANSLATE != 0 {
                    // The F0 prefix is swallowed and sets bit 7 of the
                    // next translated code.
                    if b == 0xF0 {
                        self.translate_break = true;
                        continue;
                    }
                    let mut t = translate(b);
                    if std::mem::take(&mut self.translate_break) {
                        t |= 0x80;
                    }
                    self.output = Some((t, Source::Keyboard));
                } else {
                    self.output = Some((b, Source::Keyboard));
                }
                return;
            }
        }
        if self.command_byte & CB_AUX_DISABLED == 0 {
            if let Some(b) = self.aux_queue.pop_front() {
                self.output = Some((b, Source::Aux));
            }
        }
    }

    fn reply(&mut self, b: u8) {
        if self.controller_queue.len() < 8 {
            self.controller_queue.push_back(b);
        }
        self.refill();
    }

    fn kbd_send(&mut self, b: u8) {
        if self.kbd_queue.len() < KBD_QUEUE {
            self.kbd_queue.push_back(b);
            self.last_kbd_byte = b;
        } else if let Some(last) = self.kbd_queue.back_mut() {
            // Buffer overrun: the keyboard sends its overrun code.
            *last = if self.scan_set == 1 { 0xFF } else { 0x00 };
        }
        self.refill();
    }

    /// A byte read from port 0x60 or 0x64.
    pub fn read(&mut self, port: u16) -> u8 {
        if port == STATUS_PORT {
            let mut s = ST_UNLOCKED;
            if self.self_tested || self.command_byte & CB_SYS != 0 {
                s |= ST_SYS;
            }
            if self.last_was_command {
                s |= ST_CMD;
            }
            match self.output {
                Some((_, Source::Aux)) => s |= ST_OBF | ST_AUX_OBF,
                Some(_) => s |= ST_OBF,
                None => {}
            }
            return s;
        }
        // Reading an empty buffer returns the last byte again, as the
        // chip's latch does.
        match self.output.take() {
            Some((b, _)) => {
                self.last_kbd_byte = b;
                self.refill();
                b
            }
            None => self.last_kbd_byte,
        }
    }

    /// A byte written to port 0x60 or 0x64.
    pub fn write(&mut self, port: u16, v: u8) {
        if port == STATUS_PORT {
            self.last_was_command = true;
            self.command(v);
            return;
        }
        self.last_was_command = false;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => self.keyboard_command(v),
            Pending::WriteRam(0) => {
                self.command_byte = v;
                self.refill();
            }
            Pending::WriteRam(_) => {}
            Pending::WriteOutputPort => self.write_output_port(v),
            Pending::WriteKbdBuffer => {
                self.kbd_queue.push_front(v);
                self.refill();
            }
            Pending::WriteAuxBuffer => {
                if self.aux_queue.len() < 8 {
                    self.aux_queue.push_front(v);
                }
                self.refill();
            }
            Pending::WriteAux => {
                // No mouse attached: the device does not answer.
                log::debug!("8042: byte {v:#04x} for the absent auxiliary device");
            }
        }
    }

    fn write_output_port(&mut self, v: u8) {
        // Reported even when unchanged: the last writer of either A20
        // source (this port or port 0x92) drives the gate.
        self.a20_changed = true;
        self.output_port = v | OUT_RESET;
        if v & OUT_RESET == 0 {
            log::info!("8042: output port reset line pulled");
            self.reset_requested = true;
        }
    }

    fn command(&mut self, c: u8) {
        self.pending = Pending::None;
        match c {
            0x20..=0x3F => {
                let v = if c == 0x20 { self.command_byte } else { 0 };
                self.reply(v);
            }
            0x60..=0x7F => self.pending = Pending::WriteRam(c - 0x60),
            0xA7 => self.command_byte |= CB_AUX_DISABLED,
            0xA8 => {
                self.command_byte &= !CB_AUX_DISABLED;
                self.refill();
            }
            // Auxiliary interface test: clock and data lines fine.
            0xA9 => self.reply(0x00),
            0xAA => {
                // Self-test passed; the system flag reads set afterwards.
                self.self_tested = true;
                self.command_byte |= CB_SYS;
                self.reply(0x55);
            }
            0xAB => self.reply(0x00),
            0xAD => self.command_byte |= CB_KBD_DISABLED,
            0xAE => {
                self.command_byte &= !CB_KBD_DISABLED;
                self.refill();
            }
            // Input port: keyboard not inhibited, colour display jumper.
            0xC0 => self.reply(0xBF),
            0xD0 => {
                let mut v = self.output_port & !0x30;
                if self.irq1() {
                    v |= 0x10;
                }
                if self.irq12() {
                    v |= 0x20;
                }
                self.reply(v);
            }
            0xD1 => self.pending = Pending::WriteOutputPort,
            0xD2 => self.pending = Pending::WriteKbdBuffer,
            0xD3 => self.pending = Pending::WriteAuxBuffer,
            0xD4 => self.pending = Pending::WriteAux,
            0xDD => self.write_output_port(self.output_port & !OUT_A20),
            0xDF => self.write_output_port(self.output_port | OUT_A20),
            0xE0 => self.reply(0x00),
            0xF0..=0xFF => {
                // Pulse output port bits 0–3 low for 6 µs: bit 0 is reset.
                if c & 0x01 == 0 {
                    log::info!("8042: reset pulse (command {c:#04x})");
                    self.reset_requested = true;
                }
            }
            _ => log::debug!("8042: unsupported command {c:#04x}"),
        }
    }

    fn keyboard_command(&mut self, v: u8) {
        // Sending to the keyboard enables its interface, as on an AT.
        self.command_byte &= !CB_KBD_DISABLED;
        match std::mem::replace(&mut self.kbd_param, KbdParam::None) {
            KbdParam::Leds => {
                self.leds = v & 7;
                return self.kbd_send(0xFA);
            }
            KbdParam::Typematic => {
                self.typematic = v & 0x7F;
                return self.kbd_send(0xFA);
            }
            KbdParam::ScanSet => {
                self.kbd_send(0xFA);
                match v {
                    0 => self.kbd_send(self.scan_set),
                    1..=3 => self.scan_set = v,
                    _ => {}
                }
                return;
            }
            KbdParam::None => {}
        }
        match v {
            0xED => {
                self.kbd_param = KbdParam::Leds;
                self.kbd_send(0xFA);
            }
            0xEE => self.kbd_send(0xEE),
            0xF0 => {
                self.kbd_param = KbdParam::ScanSet;
                self.kbd_send(0xFA);
            }
            0xF2 => {
                self.kbd_send(0xFA);
                self.kbd_send(0xAB);
                self.kbd_send(0x83);
            }
            0xF3 => {
                self.kbd_param = KbdParam::Typematic;
                self.kbd_send(0xFA);
            }
            0xF4 => {
                self.scanning = true;
                self.kbd_send(0xFA);
            }
            0xF5 | 0xF6 => {
                // Both restore defaults; F5 also stops scanning.
                self.kbd_queue.clear();
                self.scanning = v == 0xF6;
                self.scan_set = 2;
                self.typematic = 0x2B;
                self.kbd_send(0xFA);
            }
            0xF7..=0xFD => self.kbd_send(0xFA),
            0xFE => self.kbd_send(self.last_kbd_byte),
            0xFF => {
                self.kbd_queue.clear();
                self.scanning = true;
                self.scan_set = 2;
                self.leds = 0;
                self.typematic = 0x2B;
                self.kbd_send(0xFA);
                // Basic assurance test passed.
                self.kbd_send(0xAA);
            }
            _ => self.kbd_send(0xFE),
        }
    }

    /// A key went down (`pressed`) or up, named by its scan code set 1
    /// make code (`0xE0xx` for the extended keys, e.g. 0xE048 for the
    /// cursor-up key). The keyboard sends it in its current set; unknown
    /// codes and keys while scanning is off are dropped. Returns whether
    /// the key was queued.
    pub fn key_event(&mut self, set1: u16, pressed: bool) -> bool {
        if !self.scanning {
            return false;
        }
        let extended = set1 >> 8 == 0xE0;
        let code = (set1 & 0x7F) as u8;
        if set1 >> 8 != 0 && !extended {
            return false;
        }
        if self.scan_set == 1 {
            if extended {
                self.kbd_send(0xE0);
            }
            self.kbd_send(if pressed { code } else { code | 0x80 });
            return true;
        }
        let Some(s2) = set1_to_set2(code) else {
            return false;
        };
        if extended {
            self.kbd_send(0xE0);
        }
        if !pressed {
            self.kbd_send(0xF0);
        }
        self.kbd_send(s2);
        true
    }

    /// Type an ASCII string: make and break codes for each character, with
    /// Shift where the US layout needs it. Characters without a key are
    /// skipped.
    pub fn type_text(&mut self, text: &str) {
        for ch in text.chars() {
            if let Some((code, shift)) = ascii_to_set1(ch) {
                if shift {
                    self.key_event(0x2A, true);
                }
                self.key_event(code as u16, true);
                self.key_event(code as u16, false);
                if shift {
                    self.key_event(0x2A, false);
                }
            }
        }
    }

    /// LED state as last set (bit 0 Scroll, 1 Num, 2 Caps Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }
}

/// US-layout set-1 make code and whether Shift is needed.
fn ascii_to_set1(ch: char) -> Option<(u8, bool)> {
    const ROWS: [(&str, &str, u8); 4] = [
        ("1234567890-=", "!@#$%^&*()_+", 0x02),
        ("qwertyuiop[]", "QWERTYUIOP{}", 0x10),
        ("asdfghjkl;'`", "ASDFGHJKL:\"~", 0x1E),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2B),
    ];
    for (plain, shifted, first) in ROWS {
        if let Some(i) = plain.chars().position(|c| c == ch) {
            return Some((first + i as u8, false));
        }
        if let Some(i) = shifted.chars().position(|c| c == ch) {
            return Some((first + i as u8, true));
        }
    }
    match ch {
        ' ' => Some((0x39, false)),
        '\n' | '\r' => Some((0x1C, false)),
        '\t' => Some((0x0F, false)),
        '\x08' => Some((0x0E, false)),
        '\x1b' => Some((0x01, false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(k: &mut Ps2) -> Vec<u8> {
        let mut v = Vec::new();
        while k.read(0x64) & ST_OBF != 0 {
            v.push(k.read(0x60));
        }
        v
    }

    #[test]
    fn self_test_and_interface_test() {
        let mut k = Ps2::new();
        assert_eq!(k.read(0x64) & ST_SYS, 0, "cold boot");
        k.write(0x64, 0xAA);
        assert_eq!(k.read(0x64) & (ST_OBF | ST_CMD), ST_OBF | ST_CMD);
        assert_eq!(k.read(0x60), 0x55);
        assert_ne!(k.read(0x64) & ST_SYS, 0);
        k.write(0x64, 0xAB);
        assert_eq!(drain(&mut k), [0x00]);
    }

    #[test]
    fn command_byte_read_write() {
        let mut k = Ps2::new();
        k.write(0x64, 0x60);
        k.write(0x60, 0x25);
        k.write(0x64, 0x20);
        assert_eq!(drain(&mut k), [0x25]);
        assert!(!k.irq1(), "empty buffer");
    }

    #[test]
    fn a20_through_the_output_port() {
        let mut k = Ps2::new();
        assert!(k.a20());
        k.write(0x64, 0xD1);
        k.write(0x60, 0xDD); // A20 off, reset line high
        assert!(!k.a20());
        assert!(k.take_a20_change());
        assert!(!k.take_reset_request());
        k.write(0x64, 0xD0);
        assert_eq!(drain(&mut k)[0] & 0x03, 0x01);
        k.write(0x64, 0xDF);
        assert!(k.a20());
        k.write(0x64, 0xDD);
        assert!(!k.a20());
    }

    #[test]
    fn reset_pulse_and_output_port_reset() {
        let mut k = Ps2::new();
        k.write(0x64, 0xFE);
        assert!(k.take_reset_request());
        assert!(!k.take_reset_request());
        k.write(0x64, 0xD1);
        k.write(0x60, 0xDE);
        assert!(k.take_reset_request());
        k.write(0x64, 0xFF); // pulse nothing
        assert!(!k.take_reset_request());
    }

    #[test]
    fn keyboard_commands() {
        let mut k = Ps2::new();
        k.write(0x64, 0x60);
        k.write(0x60, 0x01); // no translation, IRQ1 on
        k.write(0x60, 0xFF);
        assert!(k.irq1());
        assert_eq!(drain(&mut k), [0xFA, 0xAA]);
        k.write(0x60, 0xEE);
        assert_eq!(drain(&mut k), [0xEE]);
        k.write(0x60, 0xED);
        k.write(0x60, 0x04);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        assert_eq!(k.leds(), 4);
        k.write(0x60, 0xF2);
        assert_eq!(drain(&mut k), [0xFA, 0xAB, 0x83]);
        k.write(0x60, 0xF0);
        k.write(0x60, 0x00);
        assert_eq!(drain(&mut k), [0xFA, 0xFA, 0x02]);
        k.write(0x60, 0xF3);
        k.write(0x60, 0x20);
        assert_eq!(drain(&mut k), [0xFA, 0xFA]);
        k.write(0x60, 0x12);
        assert_eq!(drain(&mut k), [0xFE], "unknown command: resend");
        k.write(0x60, 0xF5);
        assert_eq!(drain(&mut k), [0xFA]);
        assert!(!k.key_event(0x1E, true), "scanning off");
        k.write(0x60, 0xF4);
        assert_eq!(drain(&mut k), [0xFA]);
    }

    #[test]
    fn keys_in_set_2_and_translated_to_set_1() {
        let mut k = Ps2::new();
        k.write(0x64, 0x60);
        k.write(0x60, 0x01); // raw set 2
        k.key_event(0x1E, true); // 'A'
        k.key_event(0x1E, false);
        k.key_event(0xE048, true); // cursor up
        assert_eq!(drain(&mut k), [0x1C, 0xF0, 0x1C, 0xE0, 0x75]);
        k.write(0x64, 0x60);
        k.write(0x60, 0x41); // translate
        k.key_event(0x1E, true);
        k.key_event(0x1E, false);
        k.key_event(0xE048, false);
        assert_eq!(drain(&mut k), [0x1E, 0x9E, 0xE0, 0xC8]);
        k.write(0x60, 0xF2);
        assert_eq!(drain(&mut k), [0xFA, 0xAB, 0x41], "0x83 translates to 0x41");
        k.type_text("Hi");
        assert_eq!(
            drain(&mut k),
            [0x2A, 0x23, 0xA3, 0xAA, 0x17, 0x97],
            "shift, h, i"
        );
    }

    #[test]
    fn disabled_keyboard_holds_its_bytes() {
        let mut k = Ps2::new();
        k.write(0x64, 0xAD);
        k.key_event(0x1E, true);
        assert_eq!(k.read(0x64) & ST_OBF, 0);
        k.write(0x64, 0xAE);
        assert_eq!(drain(&mut k), [0x1E]);
    }

    #[test]
    fn translation_table_round_trips() {
        for set1 in 1..0x59u8 {
            let s2 = set1_to_set2(set1).expect("every AT key has a set-2 code");
            assert_eq!(translate(s2), set1);
        }
    }
}
