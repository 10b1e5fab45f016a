//! Telnet option negotiation (RFC 854/855): a byte-level state machine that separates data from
//! commands, answers the options we support (BINARY, ECHO, SUPPRESS-GO-AHEAD, TERMINAL-TYPE, NAWS)
//! and refuses the rest once, so negotiation cannot loop. Subnegotiations are bounded.

pub const IAC: u8 = 255;
pub const DONT: u8 = 254;
pub const DO: u8 = 253;
pub const WONT: u8 = 252;
pub const WILL: u8 = 251;
pub const SB: u8 = 250;
pub const SE: u8 = 240;
pub const BINARY: u8 = 0;
pub const ECHO: u8 = 1;
pub const SGA: u8 = 3;
pub const TTYPE: u8 = 24;
pub const NAWS: u8 = 31;

/// The longest subnegotiation kept; longer ones are dropped (a peer cannot grow our memory).
pub const MAX_SB: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Verb(u8),
    Sb,
    SbIac,
}

/// One side of a telnet connection's negotiation.
#[derive(Debug, Clone)]
pub struct Negotiator {
    state: State,
    sb: Vec<u8>,
    sb_overflow: bool,
    /// Options we perform (we said WILL and the peer agreed, or the peer asked with DO).
    local: [bool; 256],
    /// Options the peer performs.
    remote: [bool; 256],
    /// Options we refused already (to answer each refusal once).
    refused: [bool; 256],
    term: String,
    cols: u16,
    rows: u16,
}

/// What one chunk of input became.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// Data for the terminal.
    pub data: Vec<u8>,
    /// Bytes to send back to the peer.
    pub reply: Vec<u8>,
}

fn naws_bytes(cols: u16, rows: u16) -> Vec<u8> {
    let mut out = vec![IAC, SB, NAWS];
    for b in cols.to_be_bytes().into_iter().chain(rows.to_be_bytes()) {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out.extend_from_slice(&[IAC, SE]);
    out
}

impl Negotiator {
    pub fn new(term: &str, cols: u16, rows: u16) -> Self {
        Self {
            state: State::Data,
            sb: Vec::new(),
            sb_overflow: false,
            local: [false; 256],
            remote: [false; 256],
            refused: [false; 256],
            term: term.to_ascii_uppercase(),
            cols,
            rows,
        }
    }

    /// Whether the peer echoes (then we must not).
    pub fn remote_echo(&self) -> bool {
        self.remote[usize::from(ECHO)]
    }

    fn binary(&self) -> bool {
        self.local[usize::from(BINARY)]
    }

    /// Processes bytes from the peer.
    pub fn feed(&mut self, input: &[u8]) -> Fed {
        let mut fed = Fed::default();
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Iac,
                (State::Data, _) => {
                    fed.data.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    fed.data.push(IAC);
                    State::Data
                }
                (State::Iac, WILL | WONT | DO | DONT) => State::Verb(b),
                (State::Iac, SB) => {
                    self.sb.clear();
                    self.sb_overflow = false;
                    State::Sb
                }
                (State::Iac, _) => State::Data, // NOP, GA, AYT...: nothing to do
                (State::Verb(verb), opt) => {
                    self.answer(verb, opt, &mut fed.reply);
                    State::Data
                }
                (State::Sb, IAC) => State::SbIac,
                (State::Sb, _) => {
                    self.push_sb(b);
                    State::Sb
                }
                (State::SbIac, SE) => {
                    if !self.sb_overflow {
                        self.subnegotiation(&mut fed.reply);
                    }
                    State::Data
                }
                (State::SbIac, IAC) => {
                    self.push_sb(IAC);
                    State::Sb
                }
                (State::SbIac, _) => State::Sb, // malformed: keep reading until IAC SE
            };
        }
        fed
    }

    fn push_sb(&mut self, b: u8) {
        if self.sb.len() < MAX_SB {
            self.sb.push(b);
        } else {
            self.sb_overflow = true;
        }
    }

    fn answer(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let i = usize::from(opt);
        let supported_local = matches!(opt, BINARY | SGA | TTYPE | NAWS);
        let supported_remote = matches!(opt, BINARY | ECHO | SGA);
        match verb {
            DO if supported_local => {
                if !self.local[i] {
                    self.local[i] = true;
                    reply.extend_from_slice(&[IAC, WILL, opt]);
                }
                if opt == NAWS {
                    reply.extend_from_slice(&naws_bytes(self.cols, self.rows));
                }
            }
            DO if !self.refused[i] => {
                self.refused[i] = true;
                reply.extend_from_slice(&[IAC, WONT, opt]);
            }
            DONT if self.local[i] => {
                self.local[i] = false;
                reply.extend_from_slice(&[IAC, WONT, opt]);
            }
            WILL if supported_remote && !self.remote[i] => {
                self.remote[i] = true;
                reply.extend_from_slice(&[IAC, DO, opt]);
            }
            WILL if !supported_remote && !self.refused[i] => {
                self.refused[i] = true;
                reply.extend_from_slice(&[IAC, DONT, opt]);
            }
            WONT if self.remote[i] => {
                self.remote[i] = false;
                reply.extend_from_slice(&[IAC, DONT, opt]);
            }
            _ => {}
        }
    }

    fn subnegotiation(&mut self, reply: &mut Vec<u8>) {
        // TERMINAL-TYPE SEND (1): answer IS (0) <type>.
        if self.sb.first() == Some(&TTYPE) && self.sb.get(1) == Some(&1) {
            reply.extend_from_slice(&[IAC, SB, TTYPE, 0]);
            reply.extend(self.term.bytes().filter(|b| *b != IAC));
            reply.extend_from_slice(&[IAC, SE]);
        }
    }

    /// Bytes the person typed, made safe for the wire: IAC doubled, a bare CR sent as CR NUL
    /// unless we negotiated BINARY (RFC 854).
    pub fn encode_input(&self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len() + 4);
        let mut bytes = input.iter().peekable();
        while let Some(&b) = bytes.next() {
            match b {
                IAC => out.extend_from_slice(&[IAC, IAC]),
                b'\r' if !self.binary() && bytes.peek() != Some(&&b'\n') => {
                    out.extend_from_slice(b"\r\0")
                }
                _ => out.push(b),
            }
        }
        out
    }

    /// The window size changed: the NAWS message to send, if the peer asked for NAWS.
    pub fn resize(&mut self, cols: u16, rows: u16) -> Option<Vec<u8>> {
        self.cols = cols;
        self.rows = rows;
        self.local[usize::from(NAWS)].then(|| naws_bytes(cols, rows))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn what_inetutils_telnetd_sends_first() {
        let mut n = Negotiator::new("xterm-256color", 80, 24);
        let fed = n.feed(&[
            IAC, WILL, 37, IAC, DO, TTYPE, IAC, DO, 32, IAC, WILL, ECHO, IAC, DO, NAWS, b'h', b'i',
        ]);
        assert_eq!(fed.data, b"hi");
        let expected: Vec<u8> = [
            vec![
                IAC, DONT, 37, IAC, WILL, TTYPE, IAC, WONT, 32, IAC, DO, ECHO, IAC, WILL, NAWS,
            ],
            naws_bytes(80, 24),
        ]
        .concat();
        assert_eq!(fed.reply, expected);
        assert!(n.remote_echo());
        // Asked again: no answer (no negotiation loop).
        assert!(
            n.feed(&[IAC, WILL, 37, IAC, DO, TTYPE, IAC, WILL, ECHO])
                .reply
                .is_empty()
        );
        let fed = n.feed(&[IAC, SB, TTYPE, 1, IAC, SE]);
        assert_eq!(
            fed.reply,
            [&[IAC, SB, TTYPE, 0][..], b"XTERM-256COLOR", &[IAC, SE]].concat()
        );
        assert_eq!(
            n.resize(255, 40),
            Some(vec![IAC, SB, NAWS, 0, IAC, IAC, 0, 40, IAC, SE])
        );
    }

    #[test]
    fn data_escaping() {
        let mut n = Negotiator::new("xterm", 80, 24);
        assert_eq!(n.feed(&[b'a', IAC, IAC, b'b']).data, vec![b'a', IAC, b'b']);
        assert_eq!(
            n.encode_input(&[b'x', IAC, b'\r']),
            vec![b'x', IAC, IAC, b'\r', 0]
        );
        assert_eq!(n.encode_input(b"ls\r\n"), b"ls\r\n");
        n.feed(&[IAC, DO, BINARY]);
        assert_eq!(n.encode_input(b"\r"), b"\r");
    }

    #[test]
    fn truncated_and_oversized_subnegotiations() {
        let mut n = Negotiator::new("xterm", 80, 24);
        // Split across reads.
        assert!(n.feed(&[IAC, SB, TTYPE]).reply.is_empty());
        assert!(!n.feed(&[1, IAC, SE, b'z']).reply.is_empty());
        // Oversized: dropped, and data resumes after IAC SE.
        let mut big = vec![IAC, SB, TTYPE, 1];
        big.extend(std::iter::repeat_n(7u8, 5000));
        big.extend_from_slice(&[IAC, SE, b'o', b'k']);
        let fed = n.feed(&big);
        assert!(fed.reply.is_empty());
        assert_eq!(fed.data, b"ok");
        assert!(n.sb.len() <= MAX_SB);
    }

    proptest! {
        #[test]
        fn any_input_is_safe_and_bounded(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let mut n = Negotiator::new("xterm", 80, 24);
            let mut total = 0;
            for c in &chunks {
                let fed = n.feed(c);
                total += c.len();
                prop_assert!(fed.data.len() <= c.len());
                prop_assert!(n.sb.len() <= MAX_SB);
                // Each command gets at most one short answer (NAWS adds its report).
                prop_assert!(fed.reply.len() <= c.len() * 4 + 32);
            }
            let _ = total;
        }

        #[test]
        fn plain_data_passes_unchanged(data in proptest::collection::vec(0u8..255, 0..500)) {
            let mut n = Negotiator::new("xterm", 80, 24);
            let fed = n.feed(&data);
            prop_assert_eq!(fed.data, data);
            prop_assert!(fed.reply.is_empty());
        }

        #[test]
        fn doubled_iac_round_trips(data in proptest::collection::vec(any::<u8>(), 0..500)) {
            let mut n = Negotiator::new("xterm", 80, 24);
            n.feed(&[IAC, DO, BINARY]);
            let wire = n.encode_input(&data);
            let mut peer = Negotiator::new("xterm", 80, 24);
            prop_assert_eq!(peer.feed(&wire).data, data);
        }
    }
}
