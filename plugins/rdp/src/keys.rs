//! Browser input (X11 keysyms, Guacamole mouse masks) to RDP fast-path input events.

use ironrdp_pdu::input::MousePdu;
use ironrdp_pdu::input::fast_path::{FastPathInputEvent, KeyboardFlags};
use ironrdp_pdu::input::mouse::PointerFlags;

/// A key as a PC/AT set-1 scancode, `extended` for the E0-prefixed ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scancode {
    pub code: u8,
    pub extended: bool,
}

const fn sc(code: u8) -> Option<Scancode> {
    Some(Scancode {
        code,
        extended: false,
    })
}

const fn ext(code: u8) -> Option<Scancode> {
    Some(Scancode {
        code,
        extended: true,
    })
}

/// Keys that are not characters (and keypad digits).
pub fn special_scancode(keysym: u32) -> Option<Scancode> {
    match keysym {
        0xFF0D => sc(0x1C),                                    // Return
        0xFF08 => sc(0x0E),                                    // BackSpace
        0xFF09 | 0xFE20 => sc(0x0F),                           // Tab, ISO_Left_Tab
        0xFF1B => sc(0x01),                                    // Escape
        0xFF50 => ext(0x47),                                   // Home
        0xFF51 => ext(0x4B),                                   // Left
        0xFF52 => ext(0x48),                                   // Up
        0xFF53 => ext(0x4D),                                   // Right
        0xFF54 => ext(0x50),                                   // Down
        0xFF55 => ext(0x49),                                   // Page_Up
        0xFF56 => ext(0x51),                                   // Page_Down
        0xFF57 => ext(0x4F),                                   // End
        0xFF63 => ext(0x52),                                   // Insert
        0xFFFF => ext(0x53),                                   // Delete
        0xFF13 => sc(0x45),  // Pause (approximation without the E1 sequence)
        0xFF14 => sc(0x46),  // Scroll_Lock
        0xFF61 => ext(0x37), // Print
        0xFF67 => ext(0x5D), // Menu
        0xFF7F => sc(0x45),  // Num_Lock
        0xFFBE..=0xFFC7 => sc(0x3B + (keysym - 0xFFBE) as u8), // F1..F10
        0xFFC8 => sc(0x57),  // F11
        0xFFC9 => sc(0x58),  // F12
        0xFFE1 => sc(0x2A),  // Shift_L
        0xFFE2 => sc(0x36),  // Shift_R
        0xFFE3 => sc(0x1D),  // Control_L
        0xFFE4 => ext(0x1D), // Control_R
        0xFFE5 => sc(0x3A),  // Caps_Lock
        0xFFE9 | 0xFFE7 => sc(0x38), // Alt_L, Meta_L
        0xFFEA | 0xFE03 | 0xFFE8 => ext(0x38), // Alt_R, ISO_Level3_Shift (AltGr), Meta_R
        0xFFEB => ext(0x5B), // Super_L
        0xFFEC => ext(0x5C), // Super_R
        0xFF8D => ext(0x1C), // KP_Enter
        0xFFAA => sc(0x37),  // KP_Multiply
        0xFFAB => sc(0x4E),  // KP_Add
        0xFFAD => sc(0x4A),  // KP_Subtract
        0xFFAE => sc(0x53),  // KP_Decimal
        0xFFAF => ext(0x35), // KP_Divide
        0xFFB0 => sc(0x52),  // KP_0
        0xFFB1 => sc(0x4F),
        0xFFB2 => sc(0x50),
        0xFFB3 => sc(0x51),
        0xFFB4 => sc(0x4B),
        0xFFB5 => sc(0x4C),
        0xFFB6 => sc(0x4D),
        0xFFB7 => sc(0x47),
        0xFFB8 => sc(0x48),
        0xFFB9 => sc(0x49), // KP_9
        _ => None,
    }
}

/// A character as a key of the US layout: the scancode and whether Shift makes it.
pub fn char_scancode(c: char) -> Option<(Scancode, bool)> {
    const ROWS: [(&str, &str, u8); 4] = [
        ("1234567890-=", "!@#$%^&*()_+", 0x02),
        ("qwertyuiop[]", "QWERTYUIOP{}", 0x10),
        ("asdfghjkl;'`", "ASDFGHJKL:\"~", 0x1E),
        ("\\zxcvbnm,./", "|ZXCVBNM<>?", 0x2B),
    ];
    if c == ' ' {
        return sc(0x39).map(|s| (s, false));
    }
    for (plain, shifted, first) in ROWS {
        for (set, shift) in [(plain, false), (shifted, true)] {
            if let Some(i) = set.chars().position(|k| k == c) {
                return sc(first + i as u8).map(|s| (s, shift));
            }
        }
    }
    None
}

/// The character a keysym types, if it is one (Latin-1 keysyms are the code point, Unicode
/// keysyms are 0x01000000 | code point).
pub fn keysym_char(keysym: u32) -> Option<char> {
    match keysym {
        0x20..=0x7E | 0xA0..=0xFF => char::from_u32(keysym),
        0x0100_0000..=0x0110_FFFF => char::from_u32(keysym & 0x00FF_FFFF),
        _ => None,
    }
}

/// Tracks modifiers and turns key events into fast-path events.
#[derive(Debug, Default)]
pub struct Keyboard {
    ctrl: u8,
    alt: u8,
    shift: u8,
    /// The server takes Unicode keyboard events (INPUT_FLAG_UNICODE).
    pub unicode: bool,
}

fn key_event(s: Scancode, pressed: bool) -> FastPathInputEvent {
    let mut flags = KeyboardFlags::empty();
    if !pressed {
        flags |= KeyboardFlags::RELEASE;
    }
    if s.extended {
        flags |= KeyboardFlags::EXTENDED;
    }
    FastPathInputEvent::KeyboardEvent(flags, s.code)
}

impl Keyboard {
    pub fn new(unicode: bool) -> Self {
        Self {
            unicode,
            ..Self::default()
        }
    }

    fn track(&mut self, keysym: u32, pressed: bool) {
        let counter = match keysym {
            0xFFE3 | 0xFFE4 => &mut self.ctrl,
            0xFFE9 | 0xFFE7 => &mut self.alt,
            0xFFE1 | 0xFFE2 => &mut self.shift,
            _ => return,
        };
        *counter = if pressed {
            counter.saturating_add(1).min(2)
        } else {
            counter.saturating_sub(1)
        };
    }

    /// The events for one key press or release.
    pub fn key(&mut self, keysym: u32, pressed: bool) -> Vec<FastPathInputEvent> {
        self.track(keysym, pressed);
        if let Some(s) = special_scancode(keysym) {
            return vec![key_event(s, pressed)];
        }
        let Some(c) = keysym_char(keysym) else {
            return Vec::new();
        };
        let chord = self.ctrl > 0 || self.alt > 0;
        if (chord || !self.unicode)
            && let Some((s, shift)) = char_scancode(c.to_ascii_lowercase()).or(char_scancode(c))
        {
            // Letters are sent as their key (the held Shift decides the case); other
            // characters need Shift when the US layout puts them on a shifted key.
            if chord || c.is_ascii_alphabetic() || shift == (self.shift > 0) {
                return vec![key_event(s, pressed)];
            }
            let shift_key = Scancode {
                code: 0x2A,
                extended: false,
            };
            return if !pressed {
                vec![key_event(s, false)]
            } else if shift {
                vec![
                    key_event(shift_key, true),
                    key_event(s, true),
                    key_event(shift_key, false),
                ]
            } else {
                // Shift is held but the character is unshifted: lift it around the key.
                vec![
                    key_event(shift_key, false),
                    key_event(s, true),
                    key_event(shift_key, true),
                ]
            };
        }
        let mut units = [0u16; 2];
        let mut flags = KeyboardFlags::empty();
        if !pressed {
            flags |= KeyboardFlags::RELEASE;
        }
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| FastPathInputEvent::UnicodeKeyboardEvent(flags, *u))
            .collect()
    }

    /// Releases every modifier still held (on close, so nothing stays stuck on the server).
    pub fn release_all(&mut self) -> Vec<FastPathInputEvent> {
        let mut out = Vec::new();
        for (held, keysym) in [
            (self.ctrl, 0xFFE3),
            (self.alt, 0xFFE9),
            (self.shift, 0xFFE1),
        ] {
            if held > 0
                && let Some(s) = special_scancode(keysym)
            {
                out.push(key_event(s, false));
            }
        }
        self.ctrl = 0;
        self.alt = 0;
        self.shift = 0;
        out
    }
}

/// Turns Guacamole mouse states into fast-path mouse events.
#[derive(Debug, Default)]
pub struct Mouse {
    buttons: u8,
}

impl Mouse {
    pub fn event(
        &mut self,
        x: i32,
        y: i32,
        buttons: u8,
        width: u16,
        height: u16,
    ) -> Vec<FastPathInputEvent> {
        let x = u16::try_from(x.clamp(0, i32::from(width.saturating_sub(1)))).unwrap_or(0);
        let y = u16::try_from(y.clamp(0, i32::from(height.saturating_sub(1)))).unwrap_or(0);
        let pdu = |flags: PointerFlags, wheel: i16| {
            FastPathInputEvent::MouseEvent(MousePdu {
                flags,
                number_of_wheel_rotation_units: wheel,
                x_position: x,
                y_position: y,
            })
        };
        let mut out = vec![pdu(PointerFlags::MOVE, 0)];
        let changed = self.buttons ^ buttons;
        for (bit, flag) in [
            (1u8, PointerFlags::LEFT_BUTTON),
            (2, PointerFlags::MIDDLE_BUTTON_OR_WHEEL),
            (4, PointerFlags::RIGHT_BUTTON),
        ] {
            if changed & bit != 0 {
                let down = if buttons & bit != 0 {
                    PointerFlags::DOWN
                } else {
                    PointerFlags::empty()
                };
                out.push(pdu(flag | down, 0));
            }
        }
        // Wheel: one notch per press of the up (8) or down (16) bit.
        if changed & 8 != 0 && buttons & 8 != 0 {
            out.push(pdu(PointerFlags::VERTICAL_WHEEL, 120));
        }
        if changed & 16 != 0 && buttons & 16 != 0 {
            out.push(pdu(PointerFlags::VERTICAL_WHEEL, -120));
        }
        self.buttons = buttons;
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn scancodes(events: &[FastPathInputEvent]) -> Vec<(u8, bool, bool)> {
        events
            .iter()
            .filter_map(|e| match e {
                FastPathInputEvent::KeyboardEvent(f, c) => Some((
                    *c,
                    f.contains(KeyboardFlags::EXTENDED),
                    !f.contains(KeyboardFlags::RELEASE),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn special_keys() {
        assert_eq!(special_scancode(0xFF0D), sc(0x1C));
        assert_eq!(special_scancode(0xFF08), sc(0x0E));
        assert_eq!(special_scancode(0xFF09), sc(0x0F));
        assert_eq!(special_scancode(0xFF1B), sc(0x01));
        assert_eq!(special_scancode(0xFF50), ext(0x47));
        assert_eq!(special_scancode(0xFF51), ext(0x4B));
        assert_eq!(special_scancode(0xFF52), ext(0x48));
        assert_eq!(special_scancode(0xFF53), ext(0x4D));
        assert_eq!(special_scancode(0xFF54), ext(0x50));
        assert_eq!(special_scancode(0xFF55), ext(0x49));
        assert_eq!(special_scancode(0xFF56), ext(0x51));
        assert_eq!(special_scancode(0xFF57), ext(0x4F));
        assert_eq!(special_scancode(0xFF63), ext(0x52));
        assert_eq!(special_scancode(0xFFFF), ext(0x53));
        assert_eq!(special_scancode(0xFFBE), sc(0x3B));
        assert_eq!(special_scancode(0xFFC7), sc(0x44));
        assert_eq!(special_scancode(0xFFC8), sc(0x57));
        assert_eq!(special_scancode(0xFFC9), sc(0x58));
        assert_eq!(special_scancode(0xFFE1), sc(0x2A));
        assert_eq!(special_scancode(0xFFE2), sc(0x36));
        assert_eq!(special_scancode(0xFFE3), sc(0x1D));
        assert_eq!(special_scancode(0xFFE4), ext(0x1D));
        assert_eq!(special_scancode(0xFFE5), sc(0x3A));
        assert_eq!(special_scancode(0xFFE9), sc(0x38));
        assert_eq!(special_scancode(0xFE03), ext(0x38));
        assert_eq!(special_scancode(0xFFEB), ext(0x5B));
        assert_eq!(special_scancode(0xFFEC), ext(0x5C));
        assert_eq!(special_scancode(0xFFB0), sc(0x52));
        assert_eq!(special_scancode(0xFFB9), sc(0x49));
        assert_eq!(special_scancode(0x61), None);
    }

    #[test]
    fn characters() {
        assert_eq!(keysym_char(0x61), Some('a'));
        assert_eq!(keysym_char(0xE9), Some('é'));
        assert_eq!(keysym_char(0x0100_20AC), Some('€'));
        assert_eq!(keysym_char(0xFF0D), None);
        assert_eq!(char_scancode('a'), Some((sc(0x1E).unwrap(), false)));
        assert_eq!(char_scancode('/'), Some((sc(0x35).unwrap(), false)));
        assert_eq!(char_scancode('_'), Some((sc(0x0C).unwrap(), true)));
        assert_eq!(char_scancode(' '), Some((sc(0x39).unwrap(), false)));
        assert_eq!(char_scancode('\\'), Some((sc(0x2B).unwrap(), false)));
        assert_eq!(char_scancode('m'), Some((sc(0x32).unwrap(), false)));
    }

    #[test]
    fn unicode_unless_a_chord() {
        let mut k = Keyboard::new(true);
        assert!(matches!(
            k.key(0x63, true)[..],
            [FastPathInputEvent::UnicodeKeyboardEvent(_, 0x63)]
        ));
        // Ctrl+C goes as scancodes.
        assert_eq!(scancodes(&k.key(0xFFE3, true)), vec![(0x1D, false, true)]);
        assert_eq!(scancodes(&k.key(0x63, true)), vec![(0x2E, false, true)]);
        assert_eq!(scancodes(&k.key(0x63, false)), vec![(0x2E, false, false)]);
        k.key(0xFFE3, false);
        assert!(matches!(
            k.key(0x20AC | 0x0100_0000, true)[..],
            [FastPathInputEvent::UnicodeKeyboardEvent(_, 0x20AC)]
        ));
    }

    #[test]
    fn scancodes_without_unicode() {
        let mut k = Keyboard::new(false);
        // '/' unshifted, '_' adds Shift around the key.
        assert_eq!(scancodes(&k.key(0x2F, true)), vec![(0x35, false, true)]);
        assert_eq!(
            scancodes(&k.key(0x5F, true)),
            vec![
                (0x2A, false, true),
                (0x0C, false, true),
                (0x2A, false, false)
            ]
        );
        // 'A' with Shift held: just the key.
        k.key(0xFFE1, true);
        assert_eq!(scancodes(&k.key(0x41, true)), vec![(0x1E, false, true)]);
        assert_eq!(k.release_all().len(), 1);
    }

    #[test]
    fn mouse_buttons_and_wheel() {
        let mut m = Mouse::default();
        let flags = |events: Vec<FastPathInputEvent>| -> Vec<(u16, i16)> {
            events
                .into_iter()
                .map(|e| match e {
                    FastPathInputEvent::MouseEvent(p) => {
                        (p.flags.bits(), p.number_of_wheel_rotation_units)
                    }
                    _ => (0, 0),
                })
                .collect()
        };
        assert_eq!(flags(m.event(10, 10, 0, 100, 100)), vec![(0x0800, 0)]);
        assert_eq!(
            flags(m.event(10, 10, 1, 100, 100)),
            vec![(0x0800, 0), (0x9000, 0)]
        );
        assert_eq!(
            flags(m.event(10, 10, 0, 100, 100)),
            vec![(0x0800, 0), (0x1000, 0)]
        );
        assert_eq!(
            flags(m.event(10, 10, 16, 100, 100)),
            vec![(0x0800, 0), (0x0200, -120)]
        );
        assert_eq!(flags(m.event(10, 10, 0, 100, 100)), vec![(0x0800, 0)]);
        assert_eq!(flags(m.event(500, -3, 4, 100, 100))[1], (0xA000, 0));
    }
}
