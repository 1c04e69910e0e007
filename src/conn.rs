//! The connection loop: read a head, check its framing, run the handler,
//! settle the request body, write the response, then keep the connection
//! or close it — and always know why it closed.
//!
//! ```text
//!            ┌──────────── keep-alive ◄───────────────┐
//!            ▼                                        │
//!   idle ──first byte──► reading head ──► handler ──► response written
//!    │  (idle timeout)     │ (header deadline)  │          │
//!    │                     │ 4xx/5xx            │ panic    │ close
//!    ▼                     ▼                    ▼          ▼
//!   close ◄────────────── error response ◄── 500 ◄──── graceful close
//! ```
//!
//! The decision to keep the connection is made before the response head is
//! written (so the head can say `Connection: close`), from: what the client
//! asked (RFC 9112 §9.3), what the handler asked, whether the request body
//! was fully consumed, whether the response is self-delimiting, the request
//! cap, and server shutdown.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::body::{Body, Failure};
use crate::chunked::{self, ChunkedDecoder};
use crate::error::{CloseReason, RequestError};
use crate::framing::{self, RequestFraming, ResponseFraming};
use crate::io::{Buffers, Transport, is_timeout};
use crate::parse::HeadParser;
use crate::request::{Method, Request, RequestHead, Version};
use crate::response::{ConnectionField, Content, Response};
use crate::server::{Event, Shared, Slot};

/// The handler type the server calls.
pub(crate) type Handler = dyn Fn(&mut Request<'_>) -> Response + Send + Sync;

/// Bytes of a `from_reader` body read per call.
const COPY_CHUNK: usize = 16 * 1024;

/// Why the loop stops before a handler runs.
enum Stop {
    /// Close without a response.
    Close(CloseReason),
    /// Answer with the error's status, then close.
    Reject(RequestError, CloseReason),
}

/// What a connection thread keeps from one connection for the next: the
/// buffers and the request head's storage. A thread serves many
/// connections in turn (see `server`); reusing these spares a new
/// connection their allocations.
#[derive(Default)]
pub(crate) struct Kept {
    buffers: Buffers,
    head: RequestHead,
}

/// One connection's state, alive for as long as the connection.
struct Conn<'a> {
    io: Transport,
    head: RequestHead,
    parser: HeadParser,
    shared: &'a Shared,
    handler: &'a Handler,
    slot: &'a Slot,
    remote: SocketAddr,
    /// Requests read on this connection so far.
    served: u64,
}

/// Serves one connection to its end, closes it gracefully, and returns why
/// it ended and how many requests it served. `kept` lends the buffers and
/// gets them back.
pub(crate) fn serve(
    stream: Arc<TcpStream>,
    remote: SocketAddr,
    shared: &Shared,
    handler: &Handler,
    slot: &Slot,
    kept: &mut Kept,
) -> (CloseReason, u64) {
    let cfg = &shared.config;
    if !shared.inherited.options {
        set_socket_options(&stream, cfg);
    }
    let mut conn = Conn {
        io: Transport::new(stream, std::mem::take(&mut kept.buffers), shared.inherited.read_timeout),
        head: std::mem::take(&mut kept.head),
        parser: HeadParser::new(),
        shared,
        handler,
        slot,
        remote,
        served: 0,
    };
    let reason = conn.run();
    // The server never loses a response it has written: flush, then the
    // lingering close (see `linger`).
    let _ = conn.io.flush();
    let Transport { stream, rbuf, .. } = &mut conn.io;
    shared.lingerer.close(stream, rbuf.as_scratch(), cfg.linger_timeout, cfg.linger_bytes);
    kept.buffers = conn.io.into_buffers();
    kept.head = conn.head;
    kept.head.shrink();
    (reason, conn.served)
}

/// The options every connection's socket needs, for a socket that did not
/// inherit them from the listener (see `server::preset_socket_options`).
/// Returns whether both were set.
pub(crate) fn set_socket_options(stream: &TcpStream, cfg: &crate::config::Config) -> bool {
    // Rules §2: Nagle's algorithm would hold back a small response
    // while an earlier segment is unacknowledged, which with delayed ACKs
    // stalls it for tens of milliseconds. We batch writes ourselves instead.
    let nodelay = stream.set_nodelay(true).is_ok();
    nodelay & stream.set_write_timeout(Some(crate::io::socket_timeout(cfg.write_timeout))).is_ok()
}

impl Conn<'_> {
    fn run(&mut self) -> CloseReason {
        loop {
            match self.read_head() {
                Ok(()) => {}
                Err(Stop::Close(reason)) => return reason,
                Err(Stop::Reject(e, reason)) => return self.reject(e, reason),
            }
            self.served += 1;
            let framing = match framing::request_framing(&self.head, self.shared.config.max_body_bytes) {
                Ok(f) => f,
                Err(e) => return self.reject(e, CloseReason::BadRequest),
            };
            if let Some(reason) = self.exchange(framing) {
                return reason;
            }
        }
    }

    /// Reads the next request head into `self.head`, waiting first (idle)
    /// for its first byte, then for the rest within the header deadline.
    fn read_head(&mut self) -> Result<(), Stop> {
        let cfg = &self.shared.config;
        let limits = cfg.head_limits();
        self.parser.reset();
        let mut deadline = None;
        let mut skipped = 0;
        let mut idle_since = None;
        loop {
            if self.io.rbuf.is_empty() {
                self.wait_for_request(&mut idle_since)?;
            }
            match self.parser.parse(self.io.rbuf.data(), &limits, &mut self.head) {
                Ok(Some(len)) => {
                    self.io.rbuf.consume(len);
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => return Err(Stop::Reject(e, CloseReason::BadRequest)),
            }
            if let Some(len) = self.parser.empty_lines_only() {
                // Only empty lines so far, which a server skips before a
                // request line (RFC 9112 §2.2): no request has begun, so the
                // connection is still idle (no header deadline, no 408),
                // in the same idle period: an empty line does not restart
                // the idle timeout. They count towards the head limit all
                // the same. Either bound alone stops a client that would
                // hold the connection by sending CRLFs.
                skipped += len;
                if skipped > cfg.max_head_bytes {
                    return Err(Stop::Reject(RequestError::HeaderFieldsTooLarge, CloseReason::BadRequest));
                }
                self.io.rbuf.consume(len);
                self.parser.reset();
                // A deadline taken while an empty line was half here (its
                // CR without its LF) belonged to no request.
                deadline = None;
                continue;
            }
            // The head has begun and is not complete: from now on, the rest
            // must arrive by one deadline, not within a timeout per read, so
            // a client trickling bytes cannot extend it. (Taken here rather
            // than at the first byte: a head that arrives whole, the usual
            // case, then costs no clock reading.)
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + cfg.header_timeout);
            match self.io.fill_by(deadline) {
                Ok(0) => return Err(Stop::Close(CloseReason::Io)),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {
                    return Err(Stop::Reject(RequestError::RequestTimeout, CloseReason::HeaderTimeout));
                }
                Err(_) => return Err(Stop::Close(CloseReason::Io)),
            }
        }
    }

    /// Waits, idle, for the first byte of the next request. While idle the
    /// connection may be closed for eviction or shutdown: the server wakes
    /// the blocked read through its socket (see `Slot::close_if_idle`),
    /// and `leave_idle` then says it was closed.
    ///
    /// `idle_since` is when this idle period began, if it began before the
    /// empty lines just skipped (see `read_head`): the idle timeout then
    /// runs on from there, and the eviction order keeps its place.
    fn wait_for_request(&mut self, idle_since: &mut Option<u64>) -> Result<(), Stop> {
        self.io.flush().map_err(|_| Stop::Close(CloseReason::Io))?;
        self.io.shrink_idle_buffers();
        let now = self.shared.nanos();
        let idle_timeout = self.shared.config.idle_timeout;
        let first_wait = idle_since.is_none();
        let (since, timeout) = match *idle_since {
            None => (*idle_since.insert(now), idle_timeout),
            Some(since) => match idle_timeout.checked_sub(Duration::from_nanos(now - since)) {
                Some(left) if !left.is_zero() => (since, left),
                _ => return Err(Stop::Close(CloseReason::IdleTimeout)),
            },
        };
        if !self.slot.enter_idle(self.shared, since) {
            return Err(Stop::Close(self.slot.wake_reason()));
        }
        if first_wait {
            self.shared.emit(&Event::Idle { id: self.slot.id });
        }
        let r = self.io.fill(timeout);
        if !self.slot.leave_idle() {
            return Err(Stop::Close(self.slot.wake_reason()));
        }
        match r {
            Ok(0) => Err(Stop::Close(CloseReason::ClientClosed)),
            Ok(_) => Ok(()),
            Err(e) if is_timeout(&e) => Err(Stop::Close(CloseReason::IdleTimeout)),
            Err(_) => Err(Stop::Close(CloseReason::Io)),
        }
    }

    /// The response for the server's own refusal `e`, reported to the
    /// event hook.
    fn refusal_response(&self, e: RequestError) -> Response {
        self.shared.emit(&Event::Refused { id: self.slot.id, error: e });
        error_response(e)
    }

    /// Queues the error response for `e`; the connection then closes.
    fn reject(&mut self, e: RequestError, reason: CloseReason) -> CloseReason {
        let response = self.refusal_response(e);
        let framing = ResponseFraming::Length(response.body_len().unwrap_or(0));
        // A refused HEAD still gets no body (RFC 9110 §9.3.2): a pipelining
        // client would read it as the start of the next response. The
        // method is known if the request line got that far (else GET).
        let is_head = self.head.method == Method::Head;
        match self.write_response(response, framing, ConnectionField::Close, is_head) {
            Ok(()) => reason,
            Err(io_failed) => io_failed,
        }
    }

    /// Runs the handler for the request in `self.head` and writes its
    /// response. Returns why the connection must close, if it must.
    fn exchange(&mut self, framing: RequestFraming) -> Option<CloseReason> {
        let cfg = &self.shared.config;
        let version = self.head.version;
        let is_head = self.head.method == Method::Head;
        let handler = self.handler;
        let (outcome, failure, mut close) = {
            let decoder = || ChunkedDecoder::new(cfg.max_body_bytes, cfg.head_limits());
            let body = Body::new(&mut self.io, framing.body, decoder, framing.expect_continue, cfg.body_read_timeout);
            let mut req = Request { head: &mut self.head, body, remote_addr: self.remote };
            // A panicking handler costs its client a 500 and its connection,
            // not the server.
            let outcome = panic::catch_unwind(AssertUnwindSafe(|| handler(&mut req)));
            let failure = req.body.failure();
            let close = if failure.is_none() { settle_body(&mut req.body, cfg.max_drain_bytes) } else { None };
            (outcome, failure, close)
        };
        let response = match (outcome, failure) {
            // The client vanished mid-body: there is no one to answer.
            (_, Some(Failure::Io)) => return Some(CloseReason::Io),
            // The body broke its framing or limit, or stalled: the server
            // answers the precise status, whatever the handler made of it,
            // and reports the refusal as it does a head's.
            (_, Some(Failure::Timeout)) => {
                close = Some(CloseReason::BodyTimeout);
                self.refusal_response(RequestError::RequestTimeout)
            }
            (_, Some(Failure::Rejected(e))) => {
                close = Some(CloseReason::BadRequest);
                self.refusal_response(e)
            }
            (Err(_), None) => {
                close = Some(CloseReason::HandlerPanicked);
                Response::text("Internal Server Error\n").with_status(500)
            }
            (Ok(mut r), None) => {
                if let Some(error) = r.take_handler_error() {
                    self.shared.emit(&Event::HandlerFailed { id: self.slot.id, error: &error });
                }
                r
            }
        };
        let out = framing::response_framing(response.status_code(), response.body_len(), version);
        let close = close
            .or_else(|| (!framing.keep_alive).then_some(CloseReason::ClientRequestedClose))
            .or_else(|| response.wants_close().then_some(CloseReason::HandlerRequestedClose))
            .or_else(|| {
                (out == ResponseFraming::CloseDelimited && !is_head).then_some(CloseReason::CloseDelimitedResponse)
            })
            .or_else(|| (self.served >= cfg.max_requests_per_connection).then_some(CloseReason::RequestLimit))
            .or_else(|| self.shared.is_shutting_down().then_some(CloseReason::Shutdown));
        let conn_field = match (close, version) {
            (Some(_), _) => ConnectionField::Close,
            (None, Version::Http11) => ConnectionField::None,
            // RFC 9112 §9.3 / RFC 2068 §19.7.1: an HTTP/1.0 client that asked
            // for keep-alive is told it got it, with hints of how long and
            // how many more requests. The time is a second short of the idle
            // timeout (rounded down): the idle clock starts when the response
            // is sent, before the client has it, and a client that waits the
            // whole hint must not send into a connection being closed.
            (None, Version::Http10) => ConnectionField::KeepAlive {
                timeout_secs: cfg.idle_timeout.saturating_sub(Duration::from_secs(1)).as_secs(),
                max: cfg.max_requests_per_connection - self.served,
            },
        };
        let status = response.status_code();
        if let Err(reason) = self.write_response(response, out, conn_field, is_head) {
            return Some(reason);
        }
        self.slot.count_response();
        self.shared.emit(&Event::Request {
            id: self.slot.id,
            method: &self.head.method,
            target: &self.head.target,
            status,
        });
        close
    }

    /// Appends the response to the write buffer (flushing when it is full;
    /// otherwise the flush happens before the next blocking read, so the
    /// responses to pipelined requests go out together).
    fn write_response(
        &mut self,
        response: Response,
        framing: ResponseFraming,
        conn: ConnectionField,
        is_head: bool,
    ) -> Result<(), CloseReason> {
        response.write_head(framing, conn, &mut self.io.wbuf);
        let content = response.into_content();
        let io_failed = |_| CloseReason::Io;
        // RFC 9110 §9.3.2: HEAD gets the head a GET would get, no body.
        // A length of 0 with content is a 205 (see `response_framing`).
        if is_head || matches!(framing, ResponseFraming::NoBody | ResponseFraming::Length(0)) {
            return self.io.flush_if_full().map_err(io_failed);
        }
        match content {
            Content::Empty => {}
            Content::Bytes(b) => self.io.write_body(&b).map_err(io_failed)?,
            Content::Reader { reader, len } => copy_exact(&mut self.io, reader, len)?,
            Content::Stream(write) => {
                let mut w = BodyWriter {
                    io: &mut self.io,
                    chunked: framing == ResponseFraming::Chunked,
                    chunk: Vec::new(),
                    failed: false,
                };
                match panic::catch_unwind(AssertUnwindSafe(|| write(&mut w))) {
                    Ok(Ok(())) => w.finish().map_err(io_failed)?,
                    Ok(Err(_)) if w.failed => return Err(CloseReason::Io),
                    Ok(Err(_)) => return Err(CloseReason::ResponseBodyError),
                    Err(_) => return Err(CloseReason::HandlerPanicked),
                }
            }
        }
        self.io.flush_if_full().map_err(io_failed)
    }
}

/// After the handler: a body it left unread must be skipped before the next
/// request can be parsed (rules §5). Returns a close reason if it
/// cannot be skipped safely.
fn settle_body(body: &mut Body<'_>, max_drain: u64) -> Option<CloseReason> {
    if body.is_complete() {
        return None;
    }
    // The client asked to wait for 100 Continue and never got it: it may
    // send the body or not, and we cannot tell which; close unless the whole
    // body is already here (RFC 9110 §10.1.1).
    if body.continue_pending() && !body.rest_is_buffered() {
        return Some(CloseReason::UnreadBody);
    }
    // Small remainders are read and discarded; large ones cost more than a
    // new connection (Go's net/http makes the same trade).
    if body.drain(max_drain) { None } else { Some(CloseReason::UnreadBody) }
}

/// The response the server sends for its own refusals: the status, a short
/// text naming the rule (never the client's input), and `Connection: close`.
fn error_response(e: RequestError) -> Response {
    let mut text = String::with_capacity(64);
    text.push_str(crate::response::reason_phrase(e.status()));
    text.push_str(": ");
    text.push_str(e.detail());
    text.push('\n');
    Response::text(text).with_status(e.status())
}

/// Copies exactly `len` bytes from `reader` into the response, and fails
/// the connection if the reader ends before them. It is never read past
/// `len`: what it has beyond is not part of this response (a file that
/// grew, a range of a longer file, a socket that stays open), and a read
/// for it could block the response's end.
fn copy_exact(io: &mut Transport, mut reader: Box<dyn Read + Send>, len: u64) -> Result<(), CloseReason> {
    let mut left = len;
    while left > 0 {
        let start = io.wbuf.len();
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(COPY_CHUNK);
        io.wbuf.resize(start + want, 0);
        let read = read_guarded(&mut reader, &mut io.wbuf[start..]);
        let n = match &read {
            Ok(Ok(n)) => *n,
            _ => 0,
        };
        // Whatever happened, only the bytes read stay in the buffer (the
        // rest of the zeroed space would otherwise go out as body).
        io.wbuf.truncate(start + n);
        match read? {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Short or failed: the head promised `len` bytes. Closing is the
            // only way left to tell the client the body is incomplete.
            Err(_) | Ok(0) => return Err(CloseReason::ResponseBodyError),
            Ok(_) => {}
        }
        left -= n as u64;
        // A short read means the rest is not there yet (a pipe, a socket):
        // send what we have, so that a slow source streams rather than
        // holding back the head while its next read blocks. Files fill
        // every read, so they still go out in large writes.
        let flushed = if n < want { io.flush() } else { io.flush_if_full() };
        flushed.map_err(|_| CloseReason::Io)?;
    }
    Ok(())
}

/// One read of a response body's reader: the handler's code, so a panic in
/// it costs the connection (`HandlerPanicked`), not the thread.
fn read_guarded(reader: &mut Box<dyn Read + Send>, out: &mut [u8]) -> Result<io::Result<usize>, CloseReason> {
    panic::catch_unwind(AssertUnwindSafe(|| reader.read(out))).map_err(|_| CloseReason::HandlerPanicked)
}

/// The writer handed to [`Response::stream`] bodies: chunked framing for
/// HTTP/1.1, raw bytes (close-delimited) for HTTP/1.0.
///
/// Chunked, the writes between two flushes become one chunk (up to
/// `COPY_CHUNK` bytes), not one chunk each: a `writeln!` makes several
/// small writes, and a chunk head and CRLF per piece would add up to 7
/// bytes of framing to each few bytes of data.
struct BodyWriter<'a> {
    io: &'a mut Transport,
    chunked: bool,
    /// The data of the chunk being gathered (chunked only).
    chunk: Vec<u8>,
    /// A socket write failed (as opposed to the body's own code failing).
    failed: bool,
}

impl BodyWriter<'_> {
    /// Ends the body: the gathered chunk, then the last chunk, when
    /// chunked. (Buffered; it goes out with the next flush.)
    fn finish(mut self) -> io::Result<()> {
        if self.chunked {
            self.end_chunk()?;
            self.io.wbuf.extend_from_slice(chunked::LAST_CHUNK);
        }
        Ok(())
    }

    /// Frames the gathered data as one chunk, if there is any: an empty
    /// chunk would be the last.
    fn end_chunk(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let mut chunk = std::mem::take(&mut self.chunk);
        let r = self.put(&chunk);
        chunk.clear();
        self.chunk = chunk;
        r
    }

    /// Puts `data` in the write buffer: as one chunk when chunked
    /// (RFC 9112 §7.1), else as it is.
    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        if self.chunked {
            chunked::encode_chunk_head(data.len(), &mut self.io.wbuf);
        }
        let r = self.io.write_body(data);
        self.track(r)?;
        if self.chunked {
            self.io.wbuf.extend_from_slice(b"\r\n");
        }
        let r = self.io.flush_if_full();
        self.track(r)
    }

    fn track<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        self.failed |= r.is_err();
        r
    }
}

impl Write for BodyWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.chunked && (!self.chunk.is_empty() || data.len() < COPY_CHUNK) {
            // Gathered, up to a bounded chunk (`write_all` comes back for
            // the rest).
            let n = data.len().min(COPY_CHUNK - self.chunk.len());
            self.chunk.extend_from_slice(&data[..n]);
            if self.chunk.len() == COPY_CHUNK {
                self.end_chunk()?;
            }
            return Ok(n);
        }
        // Not chunked, or a large write with nothing gathered: put as it
        // is (a chunk of its own), without gathering it first.
        self.put(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.end_chunk()?;
        let r = self.io.flush();
        self.track(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_socket_that_inherited_nothing_gets_nodelay_and_the_write_timeout() {
        // Where sockets do not inherit options from the listener (see
        // `server::preset_socket_options`), each connection sets its own.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(!accepted.nodelay().unwrap());
        let config = crate::config::Builder::default().write_timeout(Duration::from_millis(900)).config;
        assert!(set_socket_options(&accepted, &config));
        assert!(accepted.nodelay().unwrap());
        let t = accepted.write_timeout().unwrap().unwrap();
        assert!(t.as_millis().abs_diff(900) < 20, "{t:?}");
    }
}
