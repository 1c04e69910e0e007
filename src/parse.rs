//! The request head parser: request line and header fields (RFC 9112 §2–5).
//!
//! Sans-I/O: it is fed the bytes received so far and answers "need more",
//! "complete, the head is N bytes long" or an error. It is a resumable state
//! machine, however the bytes were split across reads (TCP delivers a
//! stream, not messages: rules §1), so a client trickling one byte at a
//! time costs linear time, not quadratic.
//!
//! A line that has arrived whole, the usual case, is taken in one step
//! (`whole_request_line`, `whole_field_line`); the byte states take lines
//! split across reads, and every error, so that a byte is examined at most
//! twice. Tests check that both ways reach the same head or the same error.
//!
//! It is strict, and rejects as soon as the bytes received can no longer
//! begin a valid request: a TLS handshake sent to the plain-text port fails
//! on its first byte (0x16 is not a method character) rather than waiting
//! for a timeout. Choices where RFC 9112 allows several:
//!
//! * Every line must end in CRLF. A bare LF (§2.2 lets a recipient accept it)
//!   and a bare CR are rejected: two parsers that disagree about line ends
//!   disagree about where a message ends.
//! * Empty lines before the request line are skipped (§2.2 says at least
//!   one SHOULD be); they count towards the header section size limit.
//!   Between requests the connection consumes them and stays idle.
//! * Whitespace between the request line and the first field, obs-fold, and
//!   whitespace between a field name and its colon are rejected (§2.2,
//!   §5.1, §5.2).
//! * The request target must be visible ASCII (RFC 3986 percent-encodes
//!   everything else) without `#`, since no target form has a fragment;
//!   field values may carry obs-text (0x80–0xFF).
//! * The version must be exactly `HTTP/` DIGIT `.` DIGIT (§2.3).

use crate::error::RequestError;
use crate::headers::{field_value_prefix, is_field_vchar, is_tchar, target_prefix, token_prefix};
use crate::request::{Method, RequestHead, Version};

/// Bounds on the head, each answered with its own status.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// Longest request line (414 URI Too Long past it).
    pub request_line: usize,
    /// Longest head: request line, fields and the blank line (431).
    pub head_bytes: usize,
    /// Most header fields (431).
    pub fields: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the request line; empty lines are skipped here.
    Start,
    /// Saw the CR of an empty line before the request line.
    StartLf,
    Method,
    Target,
    /// Index into `HTTP/x.y` being matched.
    Version(u8),
    RequestLineCr,
    RequestLineLf,
    /// At the start of a field line or of the final empty line.
    LineStart,
    Name,
    /// Optional whitespace after the colon.
    ValueOws,
    Value,
    FieldLf,
    FinalLf,
    Done,
}

/// A resumable parser for one request head. Call [`HeadParser::reset`]
/// before each request.
#[derive(Debug)]
pub(crate) struct HeadParser {
    state: State,
    /// How many bytes of the head have been examined.
    pos: usize,
    /// Where the current token (method, target, name, value) started.
    mark: usize,
    /// Where the request line started (after skipped empty lines), and its
    /// length once it ended.
    line_start: usize,
    request_line_len: usize,
    /// Start and end of the current field name.
    name_start: usize,
    name_end: usize,
    /// Version digits as read.
    version: [u8; 2],
}

const VERSION_PREFIX: &[u8; 8] = b"HTTP/x.y";

/// `HTTP/1.1` or `HTTP/1.0` followed by CRLF.
fn is_common_version(b: &[u8]) -> bool {
    matches!(b, b"HTTP/1.1\r\n" | b"HTTP/1.0\r\n")
}

impl Default for HeadParser {
    fn default() -> HeadParser {
        HeadParser::new()
    }
}

impl HeadParser {
    pub(crate) fn new() -> HeadParser {
        HeadParser {
            state: State::Start,
            pos: 0,
            mark: 0,
            line_start: 0,
            request_line_len: 0,
            name_start: 0,
            name_end: 0,
            version: [0; 2],
        }
    }

    /// Parses a field section alone, as in the trailer section of a chunked
    /// body (RFC 9112 §7.1.2): the same rules as header fields.
    pub(crate) fn parse_fields(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        fields: &mut RequestHead,
    ) -> Result<Option<usize>, RequestError> {
        if self.pos == 0 {
            self.state = State::LineStart;
        }
        self.parse(buf, limits, fields)
    }

    /// Forgets the previous request: the next call to `parse` starts a new head.
    pub(crate) fn reset(&mut self) {
        *self = HeadParser::new();
    }

    /// If everything parsed so far is empty lines (CRLF) before a request
    /// line, how many bytes they take: the connection can consume them and
    /// go back to waiting, idle, for the request itself (RFC 9112 §2.2 asks
    /// a server to ignore at least one such line, as some clients send a
    /// CRLF after a request body).
    pub(crate) fn empty_lines_only(&self) -> Option<usize> {
        (self.state == State::Start && self.pos > 0).then_some(self.pos)
    }

    /// Parses `buf`, which holds the head received so far from its first
    /// byte on (it may hold more: the body or the next request). On success
    /// returns the length of the head, and `head` holds the request line and
    /// fields; `Ok(None)` means the bytes so far are a valid beginning and more
    /// are needed. `buf` must begin at the same byte on every call.
    pub(crate) fn parse(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut RequestHead,
    ) -> Result<Option<usize>, RequestError> {
        if self.pos == 0 {
            // Nothing of the previous request may show through if this one
            // fails half-way (a refusal of a HEAD request has no body).
            head.method = Method::default();
            head.headers.clear();
        }
        let stepped = loop {
            if self.state == State::Done || self.pos >= buf.len() {
                break Ok(());
            }
            // The usual case first: a line that has arrived whole, taken in
            // one go. The byte states take the rest (lines split across
            // reads, errors) and accept exactly the same heads.
            let whole_line = match self.state {
                State::Start => self.whole_request_line(buf, head),
                State::LineStart => self.whole_field_line(buf, head),
                _ => false,
            };
            if whole_line {
                continue;
            }
            if let Err(e) = self.step(buf, head) {
                break Err(e);
            }
        };
        // Limits are checked once per call rather than per byte; a head over
        // a limit gets the limit's status whatever else is wrong with it.
        if let Some(e) = self.over_limit(limits, head) {
            return Err(e);
        }
        stepped?;
        Ok((self.state == State::Done).then_some(self.pos))
    }

    fn over_limit(&self, limits: &HeadLimits, head: &RequestHead) -> Option<RequestError> {
        let in_request_line = matches!(
            self.state,
            State::Method | State::Target | State::Version(_) | State::RequestLineCr | State::RequestLineLf
        );
        let line_len = if in_request_line { self.pos - self.line_start } else { self.request_line_len };
        if line_len > limits.request_line {
            // RFC 9112 §3: "A server that receives a method longer than any
            // that it implements SHOULD respond with a 501"; one that
            // receives a request-target longer than any URI it wishes to
            // parse MUST respond with 414.
            let method_len =
                if self.state == State::Method { self.pos - self.line_start } else { head.method.as_str().len() };
            if method_len > limits.request_line {
                return Some(RequestError::NotImplemented("method longer than any implemented"));
            }
            return Some(RequestError::UriTooLong);
        }
        if self.pos > limits.head_bytes || head.headers.len() > limits.fields {
            // RFC 6585 §5: 431 Request Header Fields Too Large.
            return Some(RequestError::HeaderFieldsTooLarge);
        }
        None
    }

    /// A request line received whole and valid, with a common version
    /// (RFC 9112 §3: `method SP request-target SP HTTP-version` CRLF).
    /// Returns false, having changed nothing, for any other line; the byte
    /// states then take it (and skip empty lines before it, or name its
    /// error).
    fn whole_request_line(&mut self, buf: &[u8], head: &mut RequestHead) -> bool {
        let line = &buf[self.pos..];
        let method_len = token_prefix(line);
        if method_len == 0 || line.get(method_len) != Some(&b' ') {
            return false;
        }
        let target = method_len + 1..method_len + 1 + target_prefix(&line[method_len + 1..]);
        if target.is_empty() || line.get(target.end) != Some(&b' ') {
            return false;
        }
        let version = target.end + 1..target.end + 11;
        if !line.get(version.clone()).is_some_and(is_common_version) {
            return false;
        }
        head.method = Method::from_bytes(&line[..method_len]);
        head.target.clear();
        // Visible ASCII, hence valid UTF-8.
        head.target.push_str(std::str::from_utf8(&line[target]).unwrap_or(""));
        head.version = if line[version.start + 7] == b'0' { Version::Http10 } else { Version::Http11 };
        self.line_start = self.pos;
        // Up to the LF, as the byte states count it.
        self.request_line_len = version.end - 1;
        self.pos += version.end;
        self.state = State::LineStart;
        true
    }

    /// A field line received whole and valid (RFC 9112 §5:
    /// `field-name ":" OWS field-value OWS` CRLF), or the empty line that
    /// ends the head. Returns false, having changed nothing, for a line that
    /// is incomplete or invalid; the byte states then take it, and name its
    /// error.
    fn whole_field_line(&mut self, buf: &[u8], head: &mut RequestHead) -> bool {
        let line = &buf[self.pos..];
        if line.starts_with(b"\r\n") {
            self.pos += 2;
            self.state = State::Done;
            return true;
        }
        let name_len = token_prefix(line);
        if name_len == 0 || line.get(name_len) != Some(&b':') {
            return false;
        }
        let after_colon = &line[name_len + 1..];
        let ows = after_colon.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        let value_end = ows + field_value_prefix(&after_colon[ows..]);
        if after_colon.get(value_end..value_end + 2) != Some(b"\r\n") {
            return false;
        }
        let value = crate::headers::trim_ows(&after_colon[ows..value_end]);
        head.headers.push_unchecked(&line[..name_len], value);
        self.pos += name_len + 1 + value_end + 2;
        true
    }

    /// Advances over at least one byte of `buf[self.pos..]`.
    fn step(&mut self, buf: &[u8], head: &mut RequestHead) -> Result<(), RequestError> {
        use RequestError::BadRequest as Bad;
        let b = buf[self.pos];
        match self.state {
            State::Start => match b {
                b'\r' => self.state = State::StartLf,
                _ if is_tchar(b) => {
                    self.line_start = self.pos;
                    self.mark = self.pos;
                    self.state = State::Method;
                }
                b'\n' => return Err(Bad("bare LF")),
                _ => return Err(Bad("invalid method character")),
            },
            State::StartLf => match b {
                b'\n' => self.state = State::Start,
                _ => return Err(Bad("bare CR")),
            },
            State::Method => {
                let end = self.scan(buf, token_prefix);
                if end == buf.len() {
                    self.pos = end;
                    return Ok(());
                }
                match buf[end] {
                    // RFC 9112 §3: method SP request-target SP HTTP-version.
                    b' ' => {
                        head.method = Method::from_bytes(&buf[self.mark..end]);
                        self.mark = end + 1;
                        self.state = State::Target;
                    }
                    _ => return Err(Bad("invalid method character")),
                }
                self.pos = end;
            }
            State::Target => {
                // Visible ASCII only; SP ends the target, so a second SP or a
                // control character is an error.
                let end = self.scan(buf, target_prefix);
                if end == buf.len() {
                    self.pos = end;
                    return Ok(());
                }
                match buf[end] {
                    b' ' if end > self.mark => {
                        head.target.clear();
                        // Visible ASCII, hence valid UTF-8.
                        head.target.push_str(std::str::from_utf8(&buf[self.mark..end]).unwrap_or(""));
                        self.state = State::Version(0);
                    }
                    b' ' => return Err(Bad("empty request target or extra space")),
                    _ => return Err(Bad("invalid character in request target")),
                }
                self.pos = end;
            }
            State::Version(i) => {
                let i = i as usize;
                match (VERSION_PREFIX[i], b) {
                    (b'x', b'0'..=b'9') => self.version[0] = b - b'0',
                    (b'y', b'0'..=b'9') => self.version[1] = b - b'0',
                    (expected, _) if expected == b && expected != b'x' && expected != b'y' => {}
                    _ => return Err(Bad("malformed HTTP version")),
                }
                if i + 1 == VERSION_PREFIX.len() {
                    self.state = State::RequestLineCr;
                } else {
                    self.state = State::Version(i as u8 + 1);
                }
            }
            State::RequestLineCr => match b {
                b'\r' => self.state = State::RequestLineLf,
                b'\n' => return Err(Bad("bare LF")),
                _ => return Err(Bad("malformed HTTP version")),
            },
            State::RequestLineLf => {
                if b != b'\n' {
                    return Err(Bad("bare CR"));
                }
                head.version = match self.version {
                    // RFC 9110 §2.5, RFC 9112 §2.3: a higher minor version of
                    // 1.x is answered as the highest we support, 1.1.
                    [1, 0] => Version::Http10,
                    [1, _] => Version::Http11,
                    // Another major version: 505 HTTP Version Not Supported.
                    _ => return Err(RequestError::VersionNotSupported),
                };
                self.request_line_len = self.pos - self.line_start;
                self.state = State::LineStart;
            }
            State::LineStart => match b {
                b'\r' => self.state = State::FinalLf,
                _ if is_tchar(b) => {
                    self.name_start = self.pos;
                    self.state = State::Name;
                }
                // RFC 9112 §5.2: obs-fold is rejected with 400; §2.2: so is
                // whitespace between the request line and the first field.
                b' ' | b'\t' => return Err(Bad("obs-fold or leading whitespace in field line")),
                b'\n' => return Err(Bad("bare LF")),
                _ => return Err(Bad("invalid character in field name")),
            },
            State::Name => {
                let end = self.scan(buf, token_prefix);
                if end == buf.len() {
                    self.pos = end;
                    return Ok(());
                }
                match buf[end] {
                    b':' => {
                        self.name_end = end;
                        self.state = State::ValueOws;
                    }
                    // RFC 9112 §5.1: no whitespace is allowed between the
                    // field name and colon; a server MUST reject it with 400.
                    b' ' | b'\t' => return Err(Bad("whitespace before colon")),
                    _ => return Err(Bad("invalid character in field name")),
                }
                self.pos = end;
            }
            State::ValueOws => match b {
                b' ' | b'\t' => {}
                b'\r' => {
                    self.mark = self.pos;
                    self.state = State::FieldLf;
                }
                _ if is_field_vchar(b) => {
                    self.mark = self.pos;
                    self.state = State::Value;
                }
                _ => return Err(Bad("control character in field value")),
            },
            State::Value => {
                let end = self.scan(buf, field_value_prefix);
                if end == buf.len() {
                    self.pos = end;
                    return Ok(());
                }
                match buf[end] {
                    b'\r' => self.state = State::FieldLf,
                    b'\n' => return Err(Bad("bare LF")),
                    // RFC 9110 §5.5: CR, LF and NUL (and other CTLs) are
                    // invalid in field values; we reject rather than replace.
                    _ => return Err(Bad("control character in field value")),
                }
                self.pos = end;
            }
            State::FieldLf => {
                if b != b'\n' {
                    return Err(Bad("bare CR"));
                }
                // The value runs from `mark` to the CR, less trailing OWS.
                let cr = self.pos - 1;
                let value = crate::headers::trim_ows(&buf[self.mark..cr]);
                head.headers.push_unchecked(&buf[self.name_start..self.name_end], value);
                self.state = State::LineStart;
            }
            State::FinalLf => {
                if b != b'\n' {
                    return Err(Bad("bare CR"));
                }
                self.state = State::Done;
            }
            State::Done => {}
        }
        self.pos += 1;
        Ok(())
    }

    /// Index of the first byte at or after `self.pos` that is not part of
    /// the token, target or value that `prefix` measures.
    fn scan(&self, buf: &[u8], prefix: fn(&[u8]) -> usize) -> usize {
        self.pos + prefix(&buf[self.pos..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { request_line: 64, head_bytes: 256, fields: 4 };

    fn parse_all(input: &[u8]) -> Result<Option<(usize, RequestHead)>, RequestError> {
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        Ok(p.parse(input, &LIMITS, &mut head)?.map(|n| (n, head)))
    }

    fn status(input: &[u8]) -> u16 {
        match parse_all(input) {
            Ok(Some(_)) => 200,
            Ok(None) => 0,
            Err(e) => e.status(),
        }
    }

    #[test]
    fn parses_a_head_and_stops_at_its_end() {
        let input = b"POST /a?b HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Ws: \t v  a \t\r\n\r\nBODY";
        let (n, head) = parse_all(input).unwrap().unwrap();
        assert_eq!(&input[n..], b"BODY");
        assert_eq!(head.method, Method::Post);
        assert_eq!(head.target, "/a?b");
        assert_eq!(head.version, Version::Http11);
        let fields: Vec<(&str, &[u8])> = head.headers.iter().collect();
        assert_eq!(fields, [("Host", &b"x"[..]), ("X-Empty", b""), ("X-Ws", b"v  a")]);
    }

    #[test]
    fn same_result_at_every_split_point() {
        let input = b"\r\nGET /p HTTP/1.0\r\nA: 1\r\nB: two words\r\n\r\nNEXT";
        let (n, whole) = parse_all(input).unwrap().unwrap();
        for split in 0..input.len() {
            let mut p = HeadParser::new();
            let mut head = RequestHead::default();
            let first = p.parse(&input[..split], &LIMITS, &mut head).unwrap();
            let len = match first {
                Some(len) => len,
                None => p.parse(input, &LIMITS, &mut head).unwrap().expect("complete"),
            };
            assert_eq!(len, n, "split {split}");
            assert_eq!(format!("{:?}", head.headers), format!("{:?}", whole.headers));
            assert_eq!((head.target.as_str(), head.version), ("/p", Version::Http10));
        }
    }

    #[test]
    fn one_byte_at_a_time_is_complete() {
        let input = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        for end in 1..input.len() {
            assert_eq!(p.parse(&input[..end], &LIMITS, &mut head), Ok(None), "{end}");
        }
        assert_eq!(p.parse(input, &LIMITS, &mut head), Ok(Some(input.len())));
    }

    /// Linear time, checked without a clock: fed a byte at a time, the
    /// parser never goes back over a line it has finished. Each finished
    /// line is overwritten with bytes that fail any request (0xFF is no
    /// method or field character) before the next call; a parser that
    /// started again from the first byte, quadratic in a trickled head,
    /// would meet them.
    #[test]
    fn a_finished_line_is_never_parsed_again() {
        let input = b"GET /a HTTP/1.1\r\nHost: a\r\nX-One: 1\r\nX-Two: 22\r\n\r\n";
        let mut buf = input.to_vec();
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        for end in 1..input.len() {
            assert_eq!(p.parse(&buf[..end], &LIMITS, &mut head), Ok(None), "{end}");
            let finished = input[..end].iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            buf[..finished].fill(0xFF);
        }
        assert_eq!(p.parse(&buf, &LIMITS, &mut head), Ok(Some(input.len())));
        assert_eq!((head.method.as_str(), head.target.as_str()), ("GET", "/a"));
        assert_eq!(head.headers.get("x-two"), Some("22"));
    }

    /// Parses `input` whole, then fed a byte at a time, and compares the
    /// two: the outcome, and for a complete head its length, method,
    /// target, version and fields.
    fn assert_whole_and_bytewise_agree(input: &[u8]) {
        let outcome = |r: Result<Option<usize>, RequestError>, head: &RequestHead| {
            r.map(|n| {
                // Raw field bytes: `Headers`' Debug shows obs-text lossily.
                let fields: Vec<(&[u8], &[u8])> = head.headers.iter_raw().collect();
                n.map(|n| (n, format!("{:?} {} {:?} {fields:?}", head.method, head.target, head.version)))
            })
        };
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        let whole = p.parse(input, &LIMITS, &mut head);
        let whole = outcome(whole, &head);
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        let mut bytewise = Ok(None);
        for end in 1..=input.len() {
            bytewise = p.parse(&input[..end], &LIMITS, &mut head);
            if !matches!(bytewise, Ok(None)) {
                break;
            }
        }
        assert_eq!(whole, outcome(bytewise, &head), "{:?}", String::from_utf8_lossy(input));
    }

    /// Whole lines take the fast paths (`whole_request_line`,
    /// `whole_field_line`); fed a byte at a time, the same lines go through
    /// the byte states. Both must reach the same verdict and the same head.
    #[test]
    fn whole_request_lines_and_byte_states_agree() {
        let lines: &[&[u8]] = &[
            b"GET / HTTP/1.1",
            b"GET / HTTP/1.0",
            b"GET / HTTP/1.2",
            b"GET / HTTP/2.0",
            b"POST /a?b=c HTTP/1.1",
            b"M-SEARCH * HTTP/1.1",
            b"X / HTTP/1.1",
            b"GET  / HTTP/1.1",
            b"GET /  HTTP/1.1",
            b"GET / HTTP/1.1 ",
            b"GET /#f HTTP/1.1",
            b"GET /\x80 HTTP/1.1",
            b"GET / http/1.1",
            b"GET /",
            b" GET / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET / HTTP/1.1\r",
            b"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1",
        ];
        // Request lines just within and just over the limit (with the CR).
        let at_limit = [&b"GET /"[..], &[b'a'; 49], b" HTTP/1.1"].concat();
        let over_limit = [&b"GET /"[..], &[b'a'; 50], b" HTTP/1.1"].concat();
        assert_eq!(status(&[&at_limit[..], b"\r\n\r\n"].concat()), 200);
        assert_eq!(status(&[&over_limit[..], b"\r\n\r\n"].concat()), 414);
        for line in lines.iter().copied().chain([&at_limit[..], &over_limit[..]]) {
            assert_whole_and_bytewise_agree(&[line, &b"\r\nB: 1\r\n\r\n"[..]].concat());
            assert_whole_and_bytewise_agree(&[&b"\r\n"[..], line, b"\r\n\r\n"].concat());
        }
    }

    #[test]
    fn whole_field_lines_and_byte_states_agree() {
        let lines: &[&[u8]] = &[
            b"A: b",
            b"A:b",
            b"A: \t b c \t",
            b"A:",
            b"A: ",
            b"A: obs\x80\xff",
            b"A : b",
            b"A\t: b",
            b": b",
            b"A: b\rc",
            b"A: b\x00",
            b"A: b\x7f",
            b"A: b\n",
            b"A(b): c",
            b"A",
            b" A: b",
        ];
        for line in lines {
            assert_whole_and_bytewise_agree(&[&b"GET / HTTP/1.1\r\n"[..], line, b"\r\nB: 1\r\n\r\n"].concat());
            assert_whole_and_bytewise_agree(&[&b"GET / HTTP/1.1\r\n"[..], line, b"\r\n\r\n"].concat());
        }
    }

    #[test]
    fn rejects_by_rule() {
        let table: &[(&[u8], u16)] = &[
            // Request line (RFC 9112 §3).
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\n\r\n", 400),
            (b" GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET /\x7f HTTP/1.1\r\n\r\n", 400),
            (b"GET /\x00 HTTP/1.1\r\n\r\n", 400),
            (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400),
            (b"GET\t/ HTTP/1.1\r\n\r\n", 400),
            (b"G@T / HTTP/1.1\r\n\r\n", 400),
            (b"GET / http/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.10\r\n\r\n", 400),
            (b"GET / HTTP/1\r\n\r\n", 400),
            (b"GET / HTTP/a.1\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\n\r\n", 505),
            // Line endings (§2.2).
            (b"GET / HTTP/1.1\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\n\n", 400),
            (b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 400),
            (b"\nGET / HTTP/1.1\r\n\r\n", 400),
            // Field lines (§5).
            (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: 1\r\n\tfolded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA(b): 1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n: empty\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: nul\x00\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: esc\x1b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nA: del\x7f\r\n\r\n", 400),
            // Limits.
            (&[b"GET /".as_slice(), &[b'a'; 70], b" HTTP/1.1\r\n\r\n"].concat(), 414),
            // A method past the limit is longer than any implemented: 501
            // (RFC 9112 §3); the target then is not what is too long.
            (&[&[b'M'; 70][..], b" / HTTP/1.1\r\n\r\n"].concat(), 501),
            (&[b"GET / HTTP/1.1\r\nA: ".as_slice(), &[b'a'; 300], b"\r\n\r\n"].concat(), 431),
            (b"GET / HTTP/1.1\r\nA: 1\r\nA: 2\r\nA: 3\r\nA: 4\r\nA: 5\r\n\r\n", 431),
        ];
        for (input, expected) in table {
            assert_eq!(status(input), *expected, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn accepts_what_the_rfc_allows() {
        for ok in [
            &b"GET / HTTP/1.1\r\nA: obs-text \x80\xff\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nA:\tb\t\r\n\r\n",
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"M-SEARCH * HTTP/1.1\r\n\r\n",
            b"GET /%7E?q=a/b:c@d!$&'()*+,;= HTTP/1.9\r\n\r\n",
        ] {
            assert_eq!(status(ok), 200, "{:?}", String::from_utf8_lossy(ok));
        }
    }

    #[test]
    fn rejects_at_the_first_impossible_byte() {
        // A TLS ClientHello starts 0x16 0x03: not a method character.
        assert_eq!(status(b"\x16\x03\x01\x02\x00\x01"), 400);
        // Each of these is incomplete but already invalid.
        for prefix in [&b"GET /a\x01"[..], b"GET / HTTX", b"GET / HTTP/1.1\r\nBad Name", b"GET / HTTP/1.1\r\n "] {
            assert_eq!(status(prefix), 400, "{:?}", String::from_utf8_lossy(prefix));
        }
        // A fragment has no place in a request target (RFC 9112 §3.2).
        assert_eq!(status(b"GET /a#frag HTTP/1.1\r\n\r\n"), 400);
        // Incomplete and still valid: no answer yet.
        for prefix in [&b"G"[..], b"GET / HTTP/1.", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\r\n"] {
            assert_eq!(status(prefix), 0, "{:?}", String::from_utf8_lossy(prefix));
        }
        // The request line limit applies before the line ends.
        assert_eq!(status(&[b"GET /".as_slice(), &[b'a'; 70]].concat()), 414);
        assert_eq!(status(&[b'M'; 70]), 501);
    }

    #[test]
    fn trailer_sections_parse_as_fields() {
        let mut p = HeadParser::new();
        let mut head = RequestHead::default();
        assert_eq!(p.parse_fields(b"\r\nrest", &LIMITS, &mut head), Ok(Some(2)));
        p.reset();
        assert_eq!(p.parse_fields(b"X: 1\r\n\r\n", &LIMITS, &mut head), Ok(Some(8)));
        assert_eq!(head.headers.get("x"), Some("1"));
    }
}
