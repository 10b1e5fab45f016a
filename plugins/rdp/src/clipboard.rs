//! The clipboard (cliprdr static virtual channel), text only: CF_UNICODETEXT, CF_TEXT as a
//! fallback.
//!
//! IronRDP's `Cliprdr` calls the [`Backend`] synchronously while it processes channel data; the
//! backend only queues [`Event`]s, which the session loop drains after each step and answers
//! through [`Clipboard`] (which produces the channel messages to send). Browser to server: the
//! pasted text is announced (FormatList) and handed over when the server asks for it
//! (FormatDataRequest). Server to browser: a new text format announced by the server is fetched at
//! once and handed to the host as `Frame::Clipboard` (the host applies the copy policy).
//!
//! Line ends: LF in the browser, CRLF on the RDP side (as guacd and Windows do). Nothing here
//! logs clipboard contents, only sizes.

use std::collections::VecDeque;

use ironrdp_cliprdr::backend::CliprdrBackend;
use ironrdp_cliprdr::pdu::{
    ClipboardFormat, ClipboardFormatId, ClipboardGeneralCapabilityFlags, FileContentsRequest,
    FileContentsResponse, FormatDataRequest, FormatDataResponse, LockDataId,
    OwnedFormatDataResponse,
};
use ironrdp_cliprdr::{CliprdrClient, CliprdrSvcMessages};
use ironrdp_pdu::PduResult;

/// The largest clipboard text either way, in UTF-8 bytes; bigger is refused, not cut.
pub const MAX_TEXT: usize = 256 * 1024;

/// What the channel reported, for the session loop to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The channel wants the client's first format list (initialization).
    FormatListWanted,
    /// The server's clipboard changed; the text format to fetch, if it offers one.
    RemoteCopy(Option<ClipboardFormatId>),
    /// The server wants the text announced by the client.
    DataRequest(ClipboardFormatId),
    /// The answer to a data request sent to the server (None: the server failed it).
    Data(Option<Vec<u8>>),
}

/// Queues what the channel reports; everything else happens in the session loop.
#[derive(Debug, Default)]
pub struct Backend {
    events: VecDeque<Event>,
}

ironrdp_core::impl_as_any!(Backend);

impl Backend {
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }
}

/// The preferred text format among those offered.
pub fn text_format(formats: &[ClipboardFormat]) -> Option<ClipboardFormatId> {
    let has = |id| formats.iter().any(|f| f.id == id);
    [
        ClipboardFormatId::CF_UNICODETEXT,
        ClipboardFormatId::CF_TEXT,
    ]
    .into_iter()
    .find(|id| has(*id))
}

impl CliprdrBackend for Backend {
    fn temporary_directory(&self) -> &str {
        ".cliprdr"
    }

    fn client_capabilities(&self) -> ClipboardGeneralCapabilityFlags {
        ClipboardGeneralCapabilityFlags::USE_LONG_FORMAT_NAMES
    }

    fn on_ready(&mut self) {}

    fn on_request_format_list(&mut self) {
        self.events.push_back(Event::FormatListWanted);
    }

    fn on_process_negotiated_capabilities(&mut self, _: ClipboardGeneralCapabilityFlags) {}

    fn on_remote_copy(&mut self, available_formats: &[ClipboardFormat]) {
        self.events
            .push_back(Event::RemoteCopy(text_format(available_formats)));
    }

    fn on_format_data_request(&mut self, request: FormatDataRequest) {
        self.events.push_back(Event::DataRequest(request.format));
    }

    fn on_format_data_response(&mut self, response: FormatDataResponse<'_>) {
        let data = (!response.is_error()).then(|| response.data().to_vec());
        self.events.push_back(Event::Data(data));
    }

    fn on_file_contents_request(&mut self, _: FileContentsRequest) {}

    fn on_file_contents_response(&mut self, _: FileContentsResponse<'_>) {}

    fn on_lock(&mut self, _: LockDataId) {}

    fn on_unlock(&mut self, _: LockDataId) {}
}

/// The channel to register in the connector.
pub fn channel() -> CliprdrClient {
    CliprdrClient::new(Box::new(Backend::default()))
}

/// Text for the server as CF_UNICODETEXT: LF becomes CRLF, UTF-16LE, NUL-terminated.
pub fn encode_unicode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    for unit in crlf(text).encode_utf16().chain([0]) {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// Text for the server as CF_TEXT: LF becomes CRLF, Latin-1 ('?' for what it lacks),
/// NUL-terminated.
pub fn encode_ansi(text: &str) -> Vec<u8> {
    crlf(text)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .chain([0])
        .collect()
}

/// CF_UNICODETEXT from the server: UTF-16LE up to the first NUL (unpaired surrogates become
/// U+FFFD), CRLF becomes LF.
pub fn decode_unicode(data: &[u8]) -> String {
    let units = data
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .take_while(|u| *u != 0);
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    text.replace("\r\n", "\n")
}

/// CF_TEXT from the server: up to the first NUL, UTF-8 when it is, Latin-1 otherwise; CRLF
/// becomes LF.
pub fn decode_ansi(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let bytes = data.get(..end).unwrap_or_default();
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|b| char::from(*b)).collect(),
    };
    text.replace("\r\n", "\n")
}

fn crlf(text: &str) -> String {
    // Normalize first, so CRLF the browser already sent does not become CRCRLF.
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// The text, unless it is bigger than [`MAX_TEXT`] (refused whole, never cut).
pub fn within_limit(text: String) -> Option<String> {
    (text.len() <= MAX_TEXT).then_some(text)
}

/// What the session does about one event.
#[derive(Default)]
pub struct Outcome {
    /// Channel messages to send to the server.
    pub messages: Option<CliprdrSvcMessages<ironrdp_cliprdr::Client>>,
    /// Text for the browser's clipboard (the host applies the copy policy and encodes it).
    pub text: Option<String>,
    /// A size refused (in bytes), for a notice.
    pub refused: Option<usize>,
}

/// The session's clipboard state.
#[derive(Debug)]
pub struct Clipboard {
    allow_copy: bool,
    allow_paste: bool,
    /// The text pasted in the browser, announced to the server.
    local: Option<String>,
    /// Formats requested from the server, answered in order.
    requested: VecDeque<ClipboardFormatId>,
}

const ANNOUNCED: [ClipboardFormat; 2] = [
    ClipboardFormat::new(ClipboardFormatId::CF_UNICODETEXT),
    ClipboardFormat::new(ClipboardFormatId::CF_TEXT),
];

impl Clipboard {
    pub fn new(allow_copy: bool, allow_paste: bool) -> Self {
        Self {
            allow_copy,
            allow_paste,
            local: None,
            requested: VecDeque::new(),
        }
    }

    /// Whether the channel is wanted at all.
    pub fn enabled(&self) -> bool {
        self.allow_copy || self.allow_paste
    }

    /// Text pasted in the browser: announced to the server once the channel is ready (before,
    /// it goes with the initial format list). Ignored unless pasting is allowed; refused when
    /// too big.
    pub fn paste(&mut self, cliprdr: &mut CliprdrClient, text: String) -> PduResult<Outcome> {
        if !self.allow_paste {
            return Ok(Outcome::default());
        }
        if text.len() > MAX_TEXT {
            return Ok(Outcome {
                refused: Some(text.len()),
                ..Outcome::default()
            });
        }
        self.local = Some(text);
        if !cliprdr.is_ready() {
            return Ok(Outcome::default());
        }
        Ok(Outcome {
            messages: Some(cliprdr.initiate_copy(&ANNOUNCED)?),
            ..Outcome::default()
        })
    }

    pub fn event(&mut self, cliprdr: &mut CliprdrClient, event: Event) -> PduResult<Outcome> {
        let messages = match event {
            Event::FormatListWanted => {
                let formats: &[ClipboardFormat] = if self.local.is_some() {
                    &ANNOUNCED
                } else {
                    &[]
                };
                Some(cliprdr.initiate_copy(formats)?)
            }
            // The server's clipboard replaces what the browser pasted.
            Event::RemoteCopy(Some(format)) if self.allow_copy => {
                self.local = None;
                self.requested.push_back(format);
                Some(cliprdr.initiate_paste(format)?)
            }
            Event::RemoteCopy(_) => {
                self.local = None;
                None
            }
            Event::DataRequest(format) => {
                let response = match (&self.local, format) {
                    (Some(text), ClipboardFormatId::CF_UNICODETEXT) => {
                        OwnedFormatDataResponse::new_data(encode_unicode(text))
                    }
                    (Some(text), ClipboardFormatId::CF_TEXT) => {
                        OwnedFormatDataResponse::new_data(encode_ansi(text))
                    }
                    _ => OwnedFormatDataResponse::new_error(),
                };
                Some(cliprdr.submit_format_data(response)?)
            }
            Event::Data(data) => return Ok(self.received(data)),
        };
        Ok(Outcome {
            messages,
            ..Outcome::default()
        })
    }

    fn received(&mut self, data: Option<Vec<u8>>) -> Outcome {
        let Some(format) = self.requested.pop_front() else {
            return Outcome::default();
        };
        let Some(data) = data.filter(|_| self.allow_copy) else {
            return Outcome::default();
        };
        // UTF-16 of MAX_TEXT bytes of UTF-8 with CRLF is at most about 4 x MAX_TEXT.
        if data.len() > 4 * MAX_TEXT + 2 {
            return Outcome {
                refused: Some(data.len()),
                ..Outcome::default()
            };
        }
        let text = if format == ClipboardFormatId::CF_UNICODETEXT {
            decode_unicode(&data)
        } else {
            decode_ansi(&data)
        };
        let size = text.len();
        match within_limit(text) {
            Some(text) => Outcome {
                text: Some(text),
                ..Outcome::default()
            },
            None => Outcome {
                refused: Some(size),
                ..Outcome::default()
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn utf16_round_trip_with_line_ends() {
        let text = "héllo\nwörld 😀\r\nend";
        let wire = encode_unicode(text);
        assert_eq!(&wire[wire.len() - 2..], &[0, 0]);
        assert_eq!(&wire[..4], &[b'h', 0, 0xE9, 0]);
        // LF went out as CRLF, once.
        let units: Vec<u16> = wire
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(units.iter().filter(|u| **u == 13).count(), 2);
        assert_eq!(decode_unicode(&wire), "héllo\nwörld 😀\nend");
        // Stops at the NUL; an odd trailing byte and a lone surrogate do not fail.
        assert_eq!(decode_unicode(&[b'a', 0, 0, 0, b'b', 0]), "a");
        assert_eq!(decode_unicode(&[b'a', 0, 0x00, 0xD8, b'b']), "a\u{FFFD}");
        assert_eq!(decode_unicode(&[]), "");
    }

    #[test]
    fn ansi_fallback() {
        assert_eq!(encode_ansi("a\nb€"), b"a\r\nb?\0");
        assert_eq!(decode_ansi(b"a\r\nb\0junk"), "a\nb");
        assert_eq!(decode_ansi("é".as_bytes()), "é");
        assert_eq!(decode_ansi(&[0xE9, b'x']), "éx");
    }

    #[test]
    fn size_limit_refuses_rather_than_cuts() {
        assert!(within_limit("x".repeat(MAX_TEXT)).is_some());
        assert!(within_limit("x".repeat(MAX_TEXT + 1)).is_none());
        let mut c = Clipboard::new(true, true);
        c.requested.push_back(ClipboardFormatId::CF_UNICODETEXT);
        let out = c.received(Some(encode_unicode(&"y".repeat(MAX_TEXT + 1))));
        assert_eq!(out.refused, Some(MAX_TEXT + 1));
        assert!(out.text.is_none());
        c.requested.push_back(ClipboardFormatId::CF_UNICODETEXT);
        let out = c.received(Some(encode_unicode("copy-1\n")));
        assert_eq!(out.text.as_deref(), Some("copy-1\n"));
    }

    #[test]
    fn copy_not_allowed_never_fetches() {
        let mut cliprdr = channel();
        let mut c = Clipboard::new(false, true);
        let text = Some(ClipboardFormatId::CF_UNICODETEXT);
        let out = c.event(&mut cliprdr, Event::RemoteCopy(text)).unwrap();
        assert!(out.messages.is_none() && c.requested.is_empty());
        // A response nobody asked for is dropped.
        assert!(c.received(Some(encode_unicode("x"))).text.is_none());
        // Paste not allowed: the text is not kept.
        let mut c = Clipboard::new(true, false);
        let out = c.paste(&mut cliprdr, "secret".into()).unwrap();
        assert!(out.messages.is_none() && c.local.is_none());
        assert!(!Clipboard::new(false, false).enabled());
    }

    #[test]
    fn preferred_format() {
        let f = |ids: &[u32]| {
            ids.iter()
                .map(|i| ClipboardFormat::new(ClipboardFormatId(*i)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            text_format(&f(&[1, 13, 49_000])),
            Some(ClipboardFormatId::CF_UNICODETEXT)
        );
        assert_eq!(text_format(&f(&[1])), Some(ClipboardFormatId::CF_TEXT));
        assert_eq!(text_format(&f(&[8, 49_000])), None);
    }
}
