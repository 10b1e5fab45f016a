//! The Guacamole protocol's instruction format: `LENGTH.VALUE,LENGTH.VALUE,...;` where the first
//! element is the opcode and each LENGTH counts the value's characters.
//!
//! Lengths count Unicode code points (the protocol's definition). guacamole-common-js 1.5.0 as
//! published on npm counts UTF-16 code units instead; the two agree for every character in the
//! Basic Multilingual Plane, and everything the gateway sends is ASCII except clipboard text,
//! which [`encode_for_client`] keeps within the BMP.
//!
//! The parser takes untrusted input (the browser's instructions) and refuses what guacd refuses:
//! an element longer than [`MAX_ELEMENT`] characters, more than [`MAX_ELEMENTS`] elements, an
//! instruction longer than [`MAX_INSTRUCTION`] bytes, a length that is not decimal digits (or has
//! more digits than any allowed length needs), a value shorter than its length says, or a wrong
//! terminator. After an error the stream is unusable: the caller closes the connection.

use std::fmt::Write as _;

pub const MAX_ELEMENT: usize = 8192;
pub const MAX_ELEMENTS: usize = 128;
pub const MAX_INSTRUCTION: usize = 32768;
/// Digits of the longest allowed length (8192).
const MAX_DIGITS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub opcode: String,
    pub args: Vec<String>,
}

impl Instruction {
    pub fn new(opcode: &str, args: &[&str]) -> Self {
        Self {
            opcode: opcode.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// The wire form.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(
            self.opcode.len() + self.args.iter().map(|a| a.len() + 6).sum::<usize>() + 8,
        );
        push_element(&mut out, &self.opcode);
        for arg in &self.args {
            out.push(',');
            push_element(&mut out, arg);
        }
        out.push(';');
        out
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }
}

fn push_element(out: &mut String, value: &str) {
    let _ = write!(out, "{}.", value.chars().count());
    out.push_str(value);
}

/// Raw bytes per `blob` of an outgoing stream: a multiple of 3, so every blob is valid base64 on
/// its own (guacd's figure).
pub const BLOB_BYTES: usize = 6048;

/// The instructions that hand `text` to the browser's clipboard on `stream`: `clipboard`, `blob`s
/// of base64 UTF-8, `end`.
pub fn clipboard(stream: &str, text: &str) -> String {
    use base64::Engine as _;
    let mut out = Instruction::new("clipboard", &[stream, "text/plain"]).encode();
    let mut b64 = String::with_capacity(BLOB_BYTES / 3 * 4);
    for chunk in text.as_bytes().chunks(BLOB_BYTES) {
        b64.clear();
        base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut b64);
        out.push_str(&Instruction::new("blob", &[stream, &b64]).encode());
    }
    out.push_str(&Instruction::new("end", &[stream]).encode());
    out
}

/// Replaces characters outside the Basic Multilingual Plane (which guacamole-common-js 1.5.0
/// miscounts) with U+FFFD, for text that goes to that client.
pub fn encode_for_client(text: &str) -> String {
    text.chars()
        .map(|c| if (c as u32) > 0xFFFF { '\u{FFFD}' } else { c })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuacError {
    #[error("a length is not a decimal number")]
    BadLength,
    #[error("an element is longer than {MAX_ELEMENT} characters")]
    ElementTooLong,
    #[error("an instruction has more than {MAX_ELEMENTS} elements")]
    TooManyElements,
    #[error("an instruction is longer than {MAX_INSTRUCTION} bytes")]
    InstructionTooLong,
    #[error("an element is not followed by ',' or ';'")]
    BadTerminator,
    #[error("the input is not UTF-8")]
    NotUtf8,
}

/// A streaming parser: feed it text as it arrives, take whole instructions out.
#[derive(Debug, Default)]
pub struct Parser {
    buf: String,
    failed: bool,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds received text; returns every instruction now complete.
    pub fn feed(&mut self, text: &str) -> Result<Vec<Instruction>, GuacError> {
        if self.failed {
            return Err(GuacError::BadTerminator);
        }
        self.buf.push_str(text);
        let mut out = Vec::new();
        loop {
            match parse_one(&self.buf) {
                Ok(Some((instruction, used))) => {
                    self.buf.drain(..used);
                    out.push(instruction);
                }
                Ok(None) => {
                    if self.buf.len() > MAX_INSTRUCTION {
                        self.failed = true;
                        return Err(GuacError::InstructionTooLong);
                    }
                    return Ok(out);
                }
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Bytes that must be UTF-8 (a WebSocket text message is).
    pub fn feed_bytes(&mut self, bytes: &[u8]) -> Result<Vec<Instruction>, GuacError> {
        let text = std::str::from_utf8(bytes).map_err(|_| GuacError::NotUtf8)?;
        self.feed(text)
    }
}

/// One instruction from the start of `text`: `Ok(None)` when more input is needed.
fn parse_one(text: &str) -> Result<Option<(Instruction, usize)>, GuacError> {
    let mut elements: Vec<String> = Vec::new();
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let Some(dot) = rest.find('.') else {
            // Still reading a length: it may only hold digits, and not too many.
            if rest.len() > MAX_DIGITS || !rest.bytes().all(|b| b.is_ascii_digit()) {
                return Err(GuacError::BadLength);
            }
            return Ok(None);
        };
        let digits = &rest[..dot];
        if digits.is_empty()
            || digits.len() > MAX_DIGITS
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(GuacError::BadLength);
        }
        let len: usize = digits.parse().map_err(|_| GuacError::BadLength)?;
        if len > MAX_ELEMENT {
            return Err(GuacError::ElementTooLong);
        }
        let value_start = pos + dot + 1;
        // Walk `len` characters.
        let mut chars = text[value_start..].char_indices();
        let mut end = value_start;
        for _ in 0..len {
            match chars.next() {
                Some((i, c)) => end = value_start + i + c.len_utf8(),
                None => return Ok(None),
            }
        }
        let value = &text[value_start..end];
        if end - pos > MAX_INSTRUCTION || end > MAX_INSTRUCTION {
            return Err(GuacError::InstructionTooLong);
        }
        elements.push(value.to_owned());
        if elements.len() > MAX_ELEMENTS {
            return Err(GuacError::TooManyElements);
        }
        match text[end..].chars().next() {
            None => return Ok(None),
            Some(',') => pos = end + 1,
            Some(';') => {
                let mut it = elements.into_iter();
                let opcode = it.next().unwrap_or_default();
                return Ok(Some((
                    Instruction {
                        opcode,
                        args: it.collect(),
                    },
                    end + 1,
                )));
            }
            Some(_) => return Err(GuacError::BadTerminator),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instructions() {
        let i = Instruction::new("size", &["0", "1024", "768"]);
        assert_eq!(i.encode(), "4.size,1.0,4.1024,3.768;");
        assert_eq!(Instruction::new("", &["abc"]).encode(), "0.,3.abc;");
        let mut p = Parser::new();
        assert_eq!(
            p.feed("3.key,5.65293,1.1;4.sync,3.123;").unwrap(),
            vec![
                Instruction::new("key", &["65293", "1"]),
                Instruction::new("sync", &["123"])
            ]
        );
        // Lengths count characters, not bytes.
        assert_eq!(
            p.feed("9.clipboard,4.héé😀;").unwrap(),
            vec![Instruction::new("clipboard", &["héé😀"])]
        );
    }

    #[test]
    fn clipboard_streams_carry_the_text_in_whole_base64_blobs() {
        use base64::Engine as _;
        let text = "héllo ".repeat(3000);
        let wire = clipboard("65", &text);
        let got = Parser::new().feed(&wire).unwrap();
        assert_eq!(
            got.first().unwrap(),
            &Instruction::new("clipboard", &["65", "text/plain"])
        );
        assert_eq!(got.last().unwrap(), &Instruction::new("end", &["65"]));
        let mut data = Vec::new();
        for blob in &got[1..got.len() - 1] {
            let chunk = base64::engine::general_purpose::STANDARD
                .decode(blob.arg(1).unwrap())
                .unwrap();
            assert!(chunk.len() <= BLOB_BYTES);
            data.extend(chunk);
        }
        assert_eq!(String::from_utf8(data).unwrap(), text);
        assert_eq!(
            clipboard("1", ""),
            "9.clipboard,1.1,10.text/plain;3.end,1.1;"
        );
    }

    #[test]
    fn split_anywhere() {
        let wire = "5.mouse,3.100,3.200,1.1;3.key,5.65293,1.0;";
        for cut in 0..wire.len() {
            let mut p = Parser::new();
            let mut got = p.feed(&wire[..cut]).unwrap();
            got.extend(p.feed(&wire[cut..]).unwrap());
            assert_eq!(got.len(), 2, "cut at {cut}");
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            "x.key;",
            "3.key,a1.x;",
            "3.keyX",
            "99999.a",
            "8193.",
            "3.key,1.1:",
            "-1.a;",
            "12345",
            "+3.key;",
        ] {
            assert!(Parser::new().feed(bad).is_err(), "{bad:?} accepted");
        }
        let many = format!("1.a{};", ",1.b".repeat(MAX_ELEMENTS));
        assert_eq!(
            Parser::new().feed(&many).unwrap_err(),
            GuacError::TooManyElements
        );
        let long = format!("1.a,{}", "8000.".to_owned() + &"x".repeat(8000) + ",").repeat(5);
        assert!(Parser::new().feed(&long).is_err());
        // Mis-counted: the length says 5 but the value ends after 3 characters.
        assert_eq!(
            Parser::new().feed("3.key,5.abc;1.a;").unwrap_err(),
            GuacError::BadTerminator
        );
        // After an error the parser stays failed.
        let mut p = Parser::new();
        assert!(p.feed("x").is_err());
        assert!(p.feed("4.sync;").is_err());
    }

    fn element() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<char>(), 0..40).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        /// Any instruction of arbitrary Unicode survives encoding and parsing, split anywhere.
        #[test]
        fn round_trip(opcode in element(), args in proptest::collection::vec(element(), 0..10), cut in 0usize..400) {
            let i = Instruction { opcode, args };
            let wire = i.encode();
            let cut = (0..=cut.min(wire.len())).rev().find(|c| wire.is_char_boundary(*c)).unwrap_or(0);
            let mut p = Parser::new();
            let mut got = p.feed(&wire[..cut]).unwrap();
            got.extend(p.feed(&wire[cut..]).unwrap());
            prop_assert_eq!(got, vec![i]);
        }

        /// Arbitrary text never panics and never yields more than it could hold.
        #[test]
        fn garbage_is_refused_or_parsed(text in "\\PC{0,200}") {
            let mut p = Parser::new();
            if let Ok(got) = p.feed(&text) {
                for i in got {
                    prop_assert!(i.args.len() < MAX_ELEMENTS);
                    prop_assert!(i.encode().len() <= text.len());
                }
            }
        }

        /// A length that disagrees with its value is refused (or waits for more), never misread.
        #[test]
        fn miscounted_lengths_are_refused(value in "[a-z]{1,20}", delta in 1usize..5) {
            let wire = format!("3.key,{}.{};", value.chars().count() + delta, value);
            let got = Parser::new().feed(&wire);
            prop_assert!(matches!(got, Ok(ref v) if v.is_empty()) || got.is_err());
            let wire = format!("3.key,{}.{};", value.chars().count() - 1, value);
            prop_assert!(Parser::new().feed(&wire).is_err());
        }
    }
}
