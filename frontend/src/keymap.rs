//! Host keys (minifb's logical keys, US layout) to PS/2 scan code set 1
//! make codes, as `Pc::key_event` takes them: one byte for the base keys,
//! `0xE0xx` for the extended ones (cursor block, right Ctrl/Alt, keypad
//! Enter and `/`, Windows keys). The break code is the make code with bit 7
//! set, which the keyboard model adds; typematic repeat is left to the
//! guest (minifb's own repeat is not used).
//!
//! Pause (E1 1D 45 …) has no make/break pair and is not passed on.

use minifb::Key;

/// The set-1 make code of `key`, if the PC keyboard has it.
pub fn set1(key: Key) -> Option<u16> {
    use Key::*;
    Some(match key {
        Escape => 0x01,
        Key1 => 0x02,
        Key2 => 0x03,
        Key3 => 0x04,
        Key4 => 0x05,
        Key5 => 0x06,
        Key6 => 0x07,
        Key7 => 0x08,
        Key8 => 0x09,
        Key9 => 0x0A,
        Key0 => 0x0B,
        Minus => 0x0C,
        Equal => 0x0D,
        Backspace => 0x0E,
        Tab => 0x0F,
        Q => 0x10,
        W => 0x11,
        E => 0x12,
        R => 0x13,
        T => 0x14,
        Y => 0x15,
        U => 0x16,
        I => 0x17,
        O => 0x18,
        P => 0x19,
        LeftBracket => 0x1A,
        RightBracket => 0x1B,
        Enter => 0x1C,
        LeftCtrl => 0x1D,
        A => 0x1E,
        S => 0x1F,
        D => 0x20,
        F => 0x21,
        G => 0x22,
        H => 0x23,
        J => 0x24,
        K => 0x25,
        L => 0x26,
        Semicolon => 0x27,
        Apostrophe => 0x28,
        Backquote => 0x29,
        LeftShift => 0x2A,
        Backslash => 0x2B,
        Z => 0x2C,
        X => 0x2D,
        C => 0x2E,
        V => 0x2F,
        B => 0x30,
        N => 0x31,
        M => 0x32,
        Comma => 0x33,
        Period => 0x34,
        Slash => 0x35,
        RightShift => 0x36,
        NumPadAsterisk => 0x37,
        LeftAlt => 0x38,
        Space => 0x39,
        CapsLock => 0x3A,
        F1 => 0x3B,
        F2 => 0x3C,
        F3 => 0x3D,
        F4 => 0x3E,
        F5 => 0x3F,
        F6 => 0x40,
        F7 => 0x41,
        F8 => 0x42,
        F9 => 0x43,
        F10 => 0x44,
        NumLock => 0x45,
        ScrollLock => 0x46,
        NumPad7 => 0x47,
        NumPad8 => 0x48,
        NumPad9 => 0x49,
        NumPadMinus => 0x4A,
        NumPad4 => 0x4B,
        NumPad5 => 0x4C,
        NumPad6 => 0x4D,
        NumPadPlus => 0x4E,
        NumPad1 => 0x4F,
        NumPad2 => 0x50,
        NumPad3 => 0x51,
        NumPad0 => 0x52,
        NumPadDot => 0x53,
        F11 => 0x57,
        F12 => 0x58,
        // Extended keys: E0 prefix.
        NumPadEnter => 0xE01C,
        RightCtrl => 0xE01D,
        NumPadSlash => 0xE035,
        RightAlt => 0xE038,
        Home => 0xE047,
        Up => 0xE048,
        PageUp => 0xE049,
        Left => 0xE04B,
        Right => 0xE04D,
        End => 0xE04F,
        Down => 0xE050,
        PageDown => 0xE051,
        Insert => 0xE052,
        Delete => 0xE053,
        LeftSuper => 0xE05B,
        RightSuper => 0xE05C,
        Menu => 0xE05D,
        _ => return None,
    })
}

/// The bytes a set-1 keyboard sends for `code` going down or up (what the
/// guest reads from port 0x60 with translation on).
#[cfg(test)]
pub fn set1_bytes(code: u16, pressed: bool) -> Vec<u8> {
    let mut v = Vec::with_capacity(2);
    if code >> 8 == 0xE0 {
        v.push(0xE0);
    }
    let b = (code & 0x7F) as u8;
    v.push(if pressed { b } else { b | 0x80 });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key minifb names, in order of its enum.
    fn all_keys() -> Vec<Key> {
        use Key::*;
        vec![
            Key0,
            Key1,
            Key2,
            Key3,
            Key4,
            Key5,
            Key6,
            Key7,
            Key8,
            Key9,
            A,
            B,
            C,
            D,
            E,
            F,
            G,
            H,
            I,
            J,
            K,
            L,
            M,
            N,
            O,
            P,
            Q,
            R,
            S,
            T,
            U,
            V,
            W,
            X,
            Y,
            Z,
            F1,
            F2,
            F3,
            F4,
            F5,
            F6,
            F7,
            F8,
            F9,
            F10,
            F11,
            F12,
            F13,
            F14,
            F15,
            Down,
            Left,
            Right,
            Up,
            Apostrophe,
            Backquote,
            Backslash,
            Comma,
            Equal,
            LeftBracket,
            Minus,
            Period,
            RightBracket,
            Semicolon,
            Slash,
            Backspace,
            Delete,
            End,
            Enter,
            Escape,
            Home,
            Insert,
            Menu,
            PageDown,
            PageUp,
            Pause,
            Space,
            Tab,
            NumLock,
            CapsLock,
            ScrollLock,
            LeftShift,
            RightShift,
            LeftCtrl,
            RightCtrl,
            NumPad0,
            NumPad1,
            NumPad2,
            NumPad3,
            NumPad4,
            NumPad5,
            NumPad6,
            NumPad7,
            NumPad8,
            NumPad9,
            NumPadDot,
            NumPadSlash,
            NumPadAsterisk,
            NumPadMinus,
            NumPadPlus,
            NumPadEnter,
            LeftAlt,
            RightAlt,
            LeftSuper,
            RightSuper,
            Unknown,
        ]
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashMap::new();
        for k in all_keys() {
            if let Some(c) = set1(k) {
                assert!(c & 0x80 == 0, "{k:?}: make code {c:#x} has the break bit");
                assert!(c >> 8 == 0 || c >> 8 == 0xE0, "{k:?}: bad prefix {c:#x}");
                assert!(c & 0xFF != 0, "{k:?}");
                if let Some(other) = seen.insert(c, k) {
                    panic!("{k:?} and {other:?} share {c:#x}");
                }
            }
        }
        // Everything but F13–F15, Pause and Unknown reaches the guest.
        assert_eq!(seen.len(), all_keys().len() - 5);
    }

    #[test]
    fn known_codes() {
        // From the IBM PC/AT keyboard tables (scan code set 1).
        assert_eq!(set1(Key::Escape), Some(0x01));
        assert_eq!(set1(Key::A), Some(0x1E));
        assert_eq!(set1(Key::Z), Some(0x2C));
        assert_eq!(set1(Key::Enter), Some(0x1C));
        assert_eq!(set1(Key::NumPadEnter), Some(0xE01C));
        assert_eq!(set1(Key::LeftCtrl), Some(0x1D));
        assert_eq!(set1(Key::RightCtrl), Some(0xE01D));
        assert_eq!(set1(Key::LeftAlt), Some(0x38));
        assert_eq!(set1(Key::RightAlt), Some(0xE038));
        assert_eq!(set1(Key::LeftShift), Some(0x2A));
        assert_eq!(set1(Key::RightShift), Some(0x36));
        assert_eq!(set1(Key::Up), Some(0xE048));
        assert_eq!(set1(Key::NumPad8), Some(0x48));
        assert_eq!(set1(Key::F10), Some(0x44));
        assert_eq!(set1(Key::F11), Some(0x57));
        assert_eq!(set1(Key::F12), Some(0x58));
        assert_eq!(set1(Key::Delete), Some(0xE053));
        assert_eq!(set1(Key::NumPadDot), Some(0x53));
        assert_eq!(set1(Key::Pause), None);
        assert_eq!(set1(Key::Unknown), None);
    }

    #[test]
    fn make_and_break_bytes() {
        assert_eq!(set1_bytes(0x1E, true), [0x1E]);
        assert_eq!(set1_bytes(0x1E, false), [0x9E]);
        assert_eq!(set1_bytes(0xE048, true), [0xE0, 0x48]);
        assert_eq!(set1_bytes(0xE048, false), [0xE0, 0xC8]);
    }

    #[test]
    fn the_keyboard_model_sends_what_the_map_says() {
        // Through the 8042 as a guest reads it (translation on after reset).
        let mut m = ringside_machine::Machine::new(
            ringside_roms::DEMO.to_vec(),
            ringside_machine::MachineConfig::default(),
        )
        .unwrap();
        for (key, pressed) in [
            (Key::A, true),
            (Key::A, false),
            (Key::Up, true),
            (Key::Up, false),
        ] {
            let code = set1(key).unwrap();
            m.pc.key_event(code, pressed);
            let mut got = Vec::new();
            for _ in 0..4 {
                if m.pc.ps2.read(0x64) & 1 == 0 {
                    break;
                }
                got.push(m.pc.ps2.read(0x60));
            }
            assert_eq!(got, set1_bytes(code, pressed), "{key:?} pressed={pressed}");
        }
    }
}
