//! The request body as a reader: exact `Content-Length` or chunked framing
//! (RFC 9112 §6, §7.1), the body limit, and `100 Continue` sent lazily.

use std::fmt;
use std::io::{self, Read};
use std::time::Duration;

use crate::chunked::ChunkedDecoder;
use crate::error::RequestError;
use crate::headers::Headers;
use crate::io::{Transport, is_timeout};

/// The interim response that tells a client waiting on
/// `Expect: 100-continue` to send the body (RFC 9110 §10.1.1, §15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// How the length of a request body is known (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLength {
    /// Exactly this many bytes (`Content-Length`, or 0 when the request has
    /// neither `Content-Length` nor `Transfer-Encoding`).
    Exact(u64),
    /// `Transfer-Encoding: chunked`: the framing says where it ends.
    Chunked,
}

#[derive(Debug)]
enum Framing {
    Exact { remaining: u64 },
    Chunked(ChunkedDecoder),
}

/// Where `Expect: 100-continue` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    /// Not asked for, already sent, or no longer needed.
    No,
    /// Asked for and not sent: it goes out on the handler's first read.
    Pending,
}

/// Why reading the body failed; the connection decides the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The framing broke a rule or the body passed the limit: answered
    /// with the error's status.
    Rejected(RequestError),
    /// A read waited longer than the body read timeout.
    Timeout,
    /// The client closed or reset the connection mid-body.
    Io,
}

/// A request body, read with [`std::io::Read`].
///
/// * `Content-Length` bodies end after exactly that many bytes; chunked
///   bodies are decoded, and their trailer fields are available once the
///   body was read to its end ([`Body::trailers`]).
/// * The first read sends `100 Continue` if the client asked for it
///   (RFC 9110 §10.1.1) and has not started sending.
/// * A body that breaks its framing or exceeds the body limit fails the
///   read with [`std::io::ErrorKind::InvalidData`]; the server then answers
///   400 or 413 itself, whatever the handler returns, and closes.
pub struct Body<'c> {
    io: &'c mut Transport,
    framing: Framing,
    expect: Continue,
    timeout: Duration,
    failure: Option<Failure>,
    /// Bytes the handler has read, and the most it allows (see
    /// [`Body::set_limit`]).
    read: u64,
    limit: u64,
}

impl<'c> Body<'c> {
    pub(crate) fn new(
        io: &'c mut Transport,
        length: BodyLength,
        decoder: impl FnOnce() -> ChunkedDecoder,
        expect_continue: bool,
        timeout: Duration,
    ) -> Body<'c> {
        let framing = match length {
            BodyLength::Exact(n) => Framing::Exact { remaining: n },
            BodyLength::Chunked => Framing::Chunked(decoder()),
        };
        let mut body = Body { io, framing, expect: Continue::No, timeout, failure: None, read: 0, limit: u64::MAX };
        if expect_continue && !body.is_complete() {
            body.expect = Continue::Pending;
        }
        body
    }

    /// The declared `Content-Length`, or `None` for a chunked body.
    /// (After reads, the bytes still to come.)
    pub fn remaining_len(&self) -> Option<u64> {
        match &self.framing {
            Framing::Exact { remaining } => Some(*remaining),
            Framing::Chunked(_) => None,
        }
    }

    /// Lowers the body limit for this request to `max` bytes in all, for a
    /// route that takes less than the server's
    /// [`max_body_bytes`](crate::Builder::max_body_bytes) (which still
    /// holds). A body over it fails the read that passes it, and the server
    /// answers 413 itself, as for its own limit: a `Content-Length` over it
    /// fails the first read, before anything is read or `100 Continue` sent
    /// (a chunked body's length is not known before it is read). A body
    /// the handler leaves unread is skipped as usual, within
    /// [`max_drain_bytes`](crate::Builder::max_drain_bytes), whatever this
    /// limit: an early answer keeps the connection.
    ///
    /// ```
    /// use h1serve::{Request, Response};
    /// fn rename(req: &mut Request) -> std::io::Result<Response> {
    ///     req.body().set_limit(256); // a name, not an upload
    ///     let name = req.read_body()?;
    ///     Ok(Response::text(format!("renamed to {}\n", String::from_utf8_lossy(&name))))
    /// }
    /// ```
    pub fn set_limit(&mut self, max: u64) {
        self.limit = max;
    }

    /// The trailer fields of a chunked body, once it was read to its end.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use h1serve::{Response, Server};
    ///
    /// let running = Server::bind("127.0.0.1:0")?.spawn(|req| {
    ///     let mut data = Vec::new();
    ///     if req.body().read_to_end(&mut data).is_err() {
    ///         return Response::status(400); // the server answers 400 or 413 itself
    ///     }
    ///     let digest = req.body().trailers().and_then(|t| t.get("digest")).unwrap_or("none");
    ///     Response::text(format!("{} bytes, digest {digest}\n", data.len()))
    /// })?;
    /// let mut client = std::net::TcpStream::connect(running.local_addr())?;
    /// client.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
    ///                    Connection: close\r\n\r\n5\r\nhello\r\n0\r\nDigest: sha-256=abc\r\n\r\n")?;
    /// let mut response = String::new();
    /// client.read_to_string(&mut response)?;
    /// assert!(response.ends_with("\r\n\r\n5 bytes, digest sha-256=abc\n"), "{response}");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn trailers(&self) -> Option<&Headers> {
        match &self.framing {
            Framing::Chunked(d) => d.trailers(),
            Framing::Exact { .. } => None,
        }
    }

    /// True when every byte of the body was read.
    pub(crate) fn is_complete(&self) -> bool {
        match &self.framing {
            Framing::Exact { remaining } => *remaining == 0,
            Framing::Chunked(d) => d.is_done(),
        }
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure
    }

    /// True when the client asked for `100 Continue` and did not get it: it
    /// may be holding the body back, or may send it any moment.
    pub(crate) fn continue_pending(&self) -> bool {
        self.expect == Continue::Pending
    }

    /// True when the rest of a `Content-Length` body is already buffered.
    pub(crate) fn rest_is_buffered(&self) -> bool {
        matches!(self.framing, Framing::Exact { remaining } if remaining <= self.io.rbuf.data().len() as u64)
    }

    /// Reads and discards the rest of the body, up to `max` bytes. True if
    /// the body ended within the bound (the connection can go on).
    pub(crate) fn drain(&mut self, max: u64) -> bool {
        if matches!(self.framing, Framing::Exact { remaining } if remaining > max) {
            return false;
        }
        // The handler's limit was on what it would read; skipping the rest
        // is the server's, bounded by `max`.
        self.limit = u64::MAX;
        // On the heap: this path is rare, and an 8 KiB array in the frame
        // would be touched (stack probes) on every request of every thread.
        let mut scratch = vec![0u8; 8 * 1024];
        let mut drained = 0u64;
        loop {
            match self.read(&mut scratch) {
                // Read returns 0 only at the end of the body.
                Ok(0) => return self.is_complete(),
                Ok(n) => {
                    drained += n as u64;
                    if drained > max {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    fn fail(&mut self, failure: Failure, e: io::Error) -> io::Error {
        self.failure = Some(failure);
        e
    }

    fn read_exact_framed(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Framing::Exact { remaining } = &mut self.framing else { unreachable!() };
        let want = out.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
        let n = self.io.read_into(&mut out[..want], self.timeout)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        *remaining -= n as u64;
        Ok(n)
    }

    fn read_chunked(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Framing::Chunked(decoder) = &mut self.framing else { unreachable!() };
        loop {
            if decoder.is_done() {
                return Ok(0);
            }
            if self.io.rbuf.is_empty() {
                if let Some(left) = decoder.data_remaining() {
                    // Inside a chunk: read its data straight into `out`.
                    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.io.read_into(&mut out[..want], self.timeout)?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    decoder.consumed_data(n);
                    return Ok(n);
                }
            }
            let (consumed, produced) = decoder.decode(self.io.rbuf.data(), out).map_err(invalid_data)?;
            self.io.rbuf.consume(consumed);
            if produced > 0 || decoder.is_done() {
                return Ok(produced);
            }
            if self.io.fill(self.timeout)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

fn invalid_data(e: RequestError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(f) = self.failure {
            return Err(match f {
                Failure::Rejected(e) => invalid_data(e),
                Failure::Timeout => io::ErrorKind::TimedOut.into(),
                Failure::Io => io::ErrorKind::ConnectionAborted.into(),
            });
        }
        if out.is_empty() || self.is_complete() {
            return Ok(0);
        }
        if matches!(self.framing, Framing::Exact { remaining } if self.read.saturating_add(remaining) > self.limit) {
            return Err(self
                .fail(Failure::Rejected(RequestError::ContentTooLarge), invalid_data(RequestError::ContentTooLarge)));
        }
        if self.expect == Continue::Pending {
            self.expect = Continue::No;
            // RFC 9110 §10.1.1: a server MAY omit the interim response if it
            // has already received some of the content.
            if self.io.rbuf.is_empty() {
                self.io.wbuf.extend_from_slice(CONTINUE);
            }
        }
        let r = match self.framing {
            Framing::Exact { .. } => self.read_exact_framed(out),
            Framing::Chunked(_) => self.read_chunked(out),
        };
        let r = r.and_then(|n| {
            self.read += n as u64;
            if self.read > self.limit { Err(invalid_data(RequestError::ContentTooLarge)) } else { Ok(n) }
        });
        r.map_err(|e| {
            let failure = match e.get_ref().and_then(|i| i.downcast_ref::<RequestError>()) {
                Some(&rejected) => Failure::Rejected(rejected),
                None if is_timeout(&e) => Failure::Timeout,
                None => Failure::Io,
            };
            self.fail(failure, e)
        })
    }
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("framing", &self.framing)
            .field("expect_continue", &self.expect)
            .finish_non_exhaustive()
    }
}
