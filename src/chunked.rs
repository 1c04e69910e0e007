//! The chunked transfer coding (RFC 9112 §7.1): a sans-I/O decoder for
//! request bodies and the encoder used for responses of unknown length.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//! chunk-ext-val  = token / quoted-string
//! ```
//!
//! Choices: sizes are plain hex (no `0x`, no sign, no whitespace before the
//! extensions' `;` is required but BWS is allowed as the grammar says);
//! a size that overflows 64 bits is an error, not a wrap; every line must end
//! in CRLF (a bare LF or CR is rejected, as in the head); the CRLF after
//! chunk data is required. Extensions are checked against the grammar and
//! ignored; trailer fields are checked like header fields, kept, and
//! bounded like the head.

use crate::error::RequestError;
use crate::headers::{Headers, is_tchar};
use crate::parse::{HeadLimits, HeadParser};
use crate::request::RequestHead;

/// Longest chunk-size line (size and extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Most extension bytes accepted over a whole body: extensions carry no
/// data, so without a bound a client could send them forever.
const MAX_EXT_TOTAL: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a size; `digits` counts them.
    Size,
    /// BWS after the size or after an extension: only `;` may follow
    /// (the grammar has no whitespace before the CRLF).
    ExtSep,
    /// After `;`: BWS, then an extension name.
    ExtNameStart,
    ExtName,
    /// After a name: BWS, `=`, `;` or CR.
    ExtAfterName,
    /// After `=`: BWS, then a token or a quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    /// After a quoted value: `;`, BWS (then `;`) or CR.
    ExtAfterValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailers,
    Done,
}

/// A decoder for one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Size of the chunk being read, then bytes of it still to come.
    size: u64,
    digits: usize,
    line_len: usize,
    ext_total: usize,
    /// Data bytes so far, bounded by `max_body`.
    total: u64,
    max_body: u64,
    trailer_limits: HeadLimits,
    trailers: Option<Box<(HeadParser, RequestHead)>>,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: u64, trailer_limits: HeadLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            ext_total: 0,
            total: 0,
            max_body,
            trailer_limits,
            trailers: None,
        }
    }

    /// True once the last chunk and the trailer section were read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes of chunk data that can be read straight from the socket into
    /// the caller's buffer (the decoder is inside a chunk's data).
    pub(crate) fn data_remaining(&self) -> Option<u64> {
        (self.state == State::Data).then_some(self.size)
    }

    /// Records `n` data bytes read outside `decode` (see `data_remaining`).
    pub(crate) fn consumed_data(&mut self, n: usize) {
        debug_assert!(self.state == State::Data && n as u64 <= self.size);
        self.size -= n as u64;
        if self.size == 0 {
            self.state = State::DataCr;
        }
    }

    /// The trailer fields, once the body is done.
    pub(crate) fn trailers(&self) -> Option<&Headers> {
        self.trailers.as_ref().filter(|_| self.is_done()).map(|t| &t.1.headers)
    }

    /// Decodes from `input` into `out`; returns (bytes of input consumed,
    /// bytes of data written to out). Stops after writing data, so callers
    /// can hand it on; `(n, 0)` with `n == input.len()` means "more input".
    /// In the trailer section nothing is consumed until the whole section
    /// is there: pass the same unconsumed bytes again with more after them.
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut [u8]) -> Result<(usize, usize), RequestError> {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Data => {
                    let n = (input.len() - i).min(out.len()).min(self.size as usize);
                    out[..n].copy_from_slice(&input[i..i + n]);
                    self.consumed_data(n);
                    return Ok((i + n, n));
                }
                State::Trailers => {
                    let (parser, head) = &mut **self.trailers.get_or_insert_with(Default::default);
                    return match parser.parse_fields(&input[i..], &self.trailer_limits, head)? {
                        Some(n) => {
                            self.state = State::Done;
                            Ok((i + n, 0))
                        }
                        None => Ok((i, 0)),
                    };
                }
                _ => {
                    self.framing_byte(input[i])?;
                    i += 1;
                }
            }
        }
        Ok((i, 0))
    }

    /// One byte of a chunk-size line or of the CRLF after chunk data.
    fn framing_byte(&mut self, b: u8) -> Result<(), RequestError> {
        use RequestError::BadRequest as Bad;
        if matches!(self.state, State::DataCr | State::DataLf) {
            return self.data_crlf(b);
        }
        self.line_len += 1;
        if self.line_len > MAX_SIZE_LINE {
            return Err(Bad("chunk size line too long"));
        }
        if !matches!(self.state, State::Size | State::SizeLf) {
            self.ext_total += 1;
            if self.ext_total > MAX_EXT_TOTAL {
                return Err(Bad("too many chunk extension bytes"));
            }
        }
        self.state = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                // Overflow is an error, never a wrap (RFC 9112 §7.1: a
                // recipient MUST anticipate large sizes and avoid overflow).
                let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                self.size =
                    self.size.checked_mul(16).and_then(|s| s.checked_add(d)).ok_or(Bad("chunk size overflow"))?;
                self.digits += 1;
                State::Size
            }
            (State::Size, _) if self.digits == 0 => return Err(Bad("invalid chunk size")),
            (State::Size | State::ExtSep | State::ExtToken | State::ExtAfterValue, b' ' | b'\t') => State::ExtSep,
            (State::Size | State::ExtSep | State::ExtToken | State::ExtAfterValue, b';') => State::ExtNameStart,
            (State::ExtNameStart, b' ' | b'\t') => State::ExtNameStart,
            (State::ExtNameStart | State::ExtName, _) if is_tchar(b) => State::ExtName,
            (State::ExtName | State::ExtAfterName, b' ' | b'\t') => State::ExtAfterName,
            (State::ExtName | State::ExtAfterName, b'=') => State::ExtValueStart,
            (State::ExtName | State::ExtAfterName, b';') => State::ExtNameStart,
            (State::ExtValueStart, b' ' | b'\t') => State::ExtValueStart,
            (State::ExtValueStart, b'"') => State::ExtQuoted,
            (State::ExtValueStart | State::ExtToken, _) if is_tchar(b) => State::ExtToken,
            // quoted-string (RFC 9110 §5.6.4): qdtext or quoted-pair.
            (State::ExtQuoted, b'"') => State::ExtAfterValue,
            (State::ExtQuoted, b'\\') => State::ExtQuotedPair,
            (State::ExtQuoted, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff) => State::ExtQuoted,
            (State::ExtQuotedPair, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff) => State::ExtQuoted,
            (State::Size | State::ExtName | State::ExtToken | State::ExtAfterValue, b'\r') => State::SizeLf,
            (State::SizeLf, b'\n') => self.end_of_size_line()?,
            (_, b'\n') => return Err(Bad("bare LF in chunk framing")),
            (State::SizeLf, _) => return Err(Bad("bare CR in chunk framing")),
            _ => return Err(Bad("invalid chunk size line")),
        };
        Ok(())
    }

    fn end_of_size_line(&mut self) -> Result<State, RequestError> {
        self.line_len = 0;
        self.digits = 0;
        if self.size == 0 {
            return Ok(State::Trailers);
        }
        self.total = self.total.saturating_add(self.size);
        if self.total > self.max_body {
            return Err(RequestError::ContentTooLarge);
        }
        Ok(State::Data)
    }

    fn data_crlf(&mut self, b: u8) -> Result<(), RequestError> {
        self.state = match (self.state, b) {
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => State::Size,
            _ => return Err(RequestError::BadRequest("chunk data not followed by CRLF")),
        };
        Ok(())
    }
}

/// Appends the head of one chunk of `len` bytes (`len` must not be 0: a
/// zero-size chunk is the last chunk).
pub(crate) fn encode_chunk_head(len: usize, out: &mut Vec<u8>) {
    debug_assert!(len > 0);
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    while n > 0 {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk and an empty trailer section.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits { request_line: 8192, head_bytes: 1024, fields: 8 };

    /// Decodes `input` fed in pieces of `step` bytes, as a connection would:
    /// unconsumed bytes stay in front of the next piece.
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), RequestError> {
        let mut d = ChunkedDecoder::new(1 << 20, LIMITS);
        let (mut body, mut pending, mut out, mut fed) = (Vec::new(), Vec::new(), [0u8; 7], 0);
        loop {
            loop {
                let (consumed, produced) = d.decode(&pending, &mut out)?;
                body.extend_from_slice(&out[..produced]);
                pending.drain(..consumed);
                if d.is_done() || produced == 0 {
                    break;
                }
            }
            if d.is_done() {
                return Ok((body, fed - pending.len()));
            }
            if fed == input.len() {
                return Err(RequestError::BadRequest("incomplete"));
            }
            let end = (fed + step).min(input.len());
            pending.extend_from_slice(&input[fed..end]);
            fed = end;
        }
    }

    #[test]
    fn decodes_at_every_split() {
        let input = b"5;name=val;q=\"a\\\"b\"\r\nhello\r\n0009\r\n, chunked\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for step in 1..input.len() {
            let (body, used) = decode_in_steps(input, step).unwrap();
            assert_eq!(body, b"hello, chunked", "step {step}");
            assert_eq!(&input[used..], b"NEXT", "step {step}");
        }
    }

    #[test]
    fn accepts_the_whole_extension_grammar() {
        for ok in [
            &b"5;a\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; a = b ; c\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"q \\\" \t\x80\" ;b=tok\r\nhello\r\n0;last=1\r\n\r\n",
            b"0005\r\nhello\r\n00\r\n\r\n",
            b"5\r\nhello\r\n0\r\nA: 1\r\nB:\r\n\r\n",
        ] {
            let (body, _) =
                decode_in_steps(ok, 1).unwrap_or_else(|e| panic!("{e:?} {:?}", String::from_utf8_lossy(ok)));
            assert_eq!(body, b"hello");
        }
    }

    #[test]
    fn trailers_are_kept() {
        let mut d = ChunkedDecoder::new(100, LIMITS);
        let mut out = [0u8; 8];
        let input = b"0\r\nX-Checksum: abc\r\n\r\n";
        assert_eq!(d.decode(input, &mut out).unwrap(), (input.len(), 0));
        assert!(d.is_done());
        assert_eq!(d.trailers().unwrap().get("x-checksum"), Some("abc"));
    }

    fn err(input: &[u8]) -> RequestError {
        decode_in_steps(input, input.len()).unwrap_err()
    }

    #[test]
    fn rejects_malformed_framing() {
        use RequestError::BadRequest;
        for bad in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5;a=\x01\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;a \r\nhello\r\n0\r\n\r\n",
            b"5;a=b \r\nhello\r\n0\r\n\r\n",
            b"5;a=\"b\" \r\nhello\r\n0\r\n\r\n",
            b"0\r\n bad: fold\r\n\r\n",
            b"0\r\nX : y\r\n\r\n",
            b"10000000000000000\r\n",
        ] {
            assert!(matches!(err(bad), BadRequest(_)), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn bounds_size_lines_extensions_body_and_trailers() {
        let long_ext = [&b"1;"[..], &[b'a'; MAX_SIZE_LINE][..], b"\r\n"].concat();
        assert!(matches!(err(&long_ext), RequestError::BadRequest(_)));
        let mut many = Vec::new();
        for _ in 0..(MAX_EXT_TOTAL / 100 + 2) {
            many.extend_from_slice(b"1;");
            many.extend_from_slice(&[b'e'; 100]);
            many.extend_from_slice(b"\r\nx\r\n");
        }
        assert!(matches!(err(&many), RequestError::BadRequest(_)));
        let mut d = ChunkedDecoder::new(10, LIMITS);
        assert_eq!(d.decode(b"b\r\n", &mut [0; 4]), Err(RequestError::ContentTooLarge));
        let huge_trailer = [&b"0\r\nX: "[..], &[b'v'; 2000][..], b"\r\n\r\n"].concat();
        assert_eq!(err(&huge_trailer), RequestError::HeaderFieldsTooLarge);
    }

    #[test]
    fn encodes_chunk_heads_in_lowercase_hex() {
        let mut v = Vec::new();
        encode_chunk_head(0x1a2f, &mut v);
        encode_chunk_head(1, &mut v);
        assert_eq!(v, b"1a2f\r\n1\r\n");
    }
}
