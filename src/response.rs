//! The response a handler returns, and how its head is written.
//!
//! The handler chooses the status, the fields and the body; the server
//! owns the framing fields (`Content-Length`, `Transfer-Encoding`) and the
//! connection fields (`Connection`, `Keep-Alive`), which it derives from the
//! body and the connection's state (RFC 9112 §6, §9), and it adds `Date`
//! (RFC 9110 §6.6.1) unless the handler set one.

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};

use crate::date;
use crate::framing::ResponseFraming;
use crate::headers::{Headers, InvalidHeader};

/// A function that writes a streamed body.
type StreamFn = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

/// The body of a response.
pub(crate) enum Content {
    Empty,
    Bytes(Cow<'static, [u8]>),
    Reader { reader: Box<dyn Read + Send>, len: u64 },
    Stream(StreamFn),
}

/// An HTTP response.
///
/// ```
/// use h1serve::Response;
/// let r = Response::text("not here\n").with_status(404).with_header("Cache-Control", "no-store");
/// assert_eq!(r.status_code(), 404);
/// assert_eq!(r.headers().get("content-type"), Some("text/plain; charset=utf-8"));
/// assert_eq!(r.body_len(), Some(9));
/// ```
pub struct Response {
    status: u16,
    headers: Headers,
    pub(crate) content: Content,
    /// For the 500 that stands for a handler's `Err`: the error's text, for
    /// the event hook (never for the client).
    handler_error: Option<String>,
}

/// What a handler returns: a [`Response`], or a `Result` of one, so that
/// the handler can use `?`.
///
/// - `Ok(response)` sends the response.
/// - `Err(response)` (a `Result<Response, Response>`) sends that response:
///   an early answer, such as a 400 for a bad parameter.
/// - Any other `Err(e)`, for an `e` that is `Display` (`io::Error`, a
///   boxed error, ...), is answered `500 Internal Server Error`. The
///   error's text goes to the event hook ([`Event::HandlerFailed`]), not to
///   the client, to which it might reveal what it should not.
///
/// Errors reading the request body are the client's, and the server
/// answers them itself, with their precise status (400, 408, 413),
/// whatever the handler returns: a handler can pass them on with `?`.
///
/// ```
/// use std::io;
/// use h1serve::{Request, Response, Server};
///
/// fn upload(req: &mut Request) -> io::Result<Response> {
///     let body = req.read_body()?; // a body over the limit: 413, sent by the server
///     std::fs::write(std::env::temp_dir().join("h1serve-doc-upload"), &body)?; // a full disk: 500
///     Ok(Response::text(format!("stored {} bytes\n", body.len())))
/// }
///
/// fn item(req: &mut Request) -> Result<Response, Response> {
///     let id: u32 = req.query_param("id").and_then(|v| v.parse().ok()).ok_or_else(|| Response::status(400))?;
///     Ok(Response::text(format!("item {id}\n")))
/// }
///
/// let running = Server::bind("127.0.0.1:0")?.spawn(|req| match req.path() {
///     "/upload" => upload(req),
///     "/item" => item(req).or_else(Ok),
///     _ => Ok(Response::status(404)),
/// })?;
/// # let mut s = std::net::TcpStream::connect(running.local_addr())?;
/// # use std::io::{Read, Write};
/// # s.write_all(b"GET /item?id=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
/// # let mut out = String::new();
/// # s.read_to_string(&mut out)?;
/// # assert!(out.starts_with("HTTP/1.1 400 "), "{out}");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// [`Event::HandlerFailed`]: crate::Event::HandlerFailed
pub trait IntoResponse {
    /// The response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Result<Response, Response> {
    fn into_response(self) -> Response {
        self.unwrap_or_else(|r| r)
    }
}

impl<E: fmt::Display> IntoResponse for Result<Response, E> {
    fn into_response(self) -> Response {
        self.unwrap_or_else(|e| {
            let mut r = Response::text("Internal Server Error\n").with_status(500);
            r.handler_error = Some(e.to_string());
            r
        })
    }
}

impl Response {
    /// A response with no fields yet.
    fn new(status: u16, content: Content) -> Response {
        Response { status, headers: Headers::new(), content, handler_error: None }
    }

    /// A response with this status and an empty body.
    ///
    /// # Panics
    /// If `code` is not a final status, 200 to 599: a 1xx is an interim
    /// response and cannot end an exchange (RFC 9110 §15.2); the server
    /// sends `100 Continue` itself.
    pub fn status(code: u16) -> Response {
        Response::new(check_status(code), Content::Empty)
    }

    /// 200 with a `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Cow<'static, str>>) -> Response {
        Response::bytes(str_bytes(body.into())).with_content_type(b"text/plain; charset=utf-8")
    }

    /// 200 with a `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<Cow<'static, str>>) -> Response {
        Response::bytes(str_bytes(body.into())).with_content_type(b"text/html; charset=utf-8")
    }

    /// Adds a `Content-Type` known to be valid (skips the check that
    /// [`Response::with_header`] makes of outside values).
    fn with_content_type(mut self, value: &'static [u8]) -> Response {
        self.headers.push_unchecked(b"Content-Type", value);
        self
    }

    /// 200 with a body of bytes, and no `Content-Type` (add one with
    /// [`Response::with_header`]).
    pub fn bytes(body: impl Into<Cow<'static, [u8]>>) -> Response {
        Response::new(200, Content::Bytes(body.into()))
    }

    /// 200 with a body of the first `len` bytes read from `reader`, sent
    /// with `Content-Length: len` without holding the body in memory. The
    /// reader is not read past `len` bytes, so it may have more (a file
    /// that grows, a range of a file after a `seek`). If it ends early or
    /// fails, the connection is closed: the head promised `len` bytes, and
    /// closing is how the client learns the body is incomplete
    /// (RFC 9112 §8).
    ///
    /// What the reader has is sent as it comes: a read that returns fewer
    /// bytes than asked for flushes them, so a slow source (a pipe, an
    /// upstream socket) streams. To answer HEAD with the length a GET would
    /// get and no body, `from_reader(std::io::empty(), len)` declares it.
    pub fn from_reader(reader: impl Read + Send + 'static, len: u64) -> Response {
        Response::new(200, Content::Reader { reader: Box::new(reader), len })
    }

    /// 200 with a body of unknown length, written by `write` after the head:
    /// chunked to HTTP/1.1 clients, delimited by closing the connection to
    /// HTTP/1.0 clients. Writes are buffered; call `flush` on the writer to
    /// push what was written so far to the client. Not called for HEAD
    /// requests or for 204/205/304 responses.
    ///
    /// The head is buffered with the body, not sent ahead of it. A stream
    /// that waits before its first write (server-sent events, say) should
    /// call `w.flush()` first, or the client sees no head, not even the
    /// status, until the first flush or the end of the body.
    ///
    /// ```
    /// use std::io::Write;
    /// let r = h1serve::Response::stream(|w| {
    ///     for i in 0..3 {
    ///         writeln!(w, "line {i}")?;
    ///         w.flush()?;
    ///     }
    ///     Ok(())
    /// });
    /// assert_eq!(r.body_len(), None);
    /// ```
    pub fn stream(write: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send + 'static) -> Response {
        Response::new(200, Content::Stream(Box::new(write)))
    }

    /// Sets the status.
    ///
    /// # Panics
    /// As [`Response::status`], for codes outside 200–599.
    pub fn with_status(mut self, code: u16) -> Response {
        self.status = check_status(code);
        self
    }

    /// Appends a header field; a repeated name (`Set-Cookie`, say) is sent
    /// as one more field line.
    ///
    /// `Content-Type` is the exception: it names the one media type of the
    /// body, so it is a singleton field and must not be repeated (RFC 9110
    /// §8.3, §5.3). Setting it replaces the one before, such as the
    /// `text/plain` that [`Response::text`] chose:
    ///
    /// ```
    /// use h1serve::Response;
    /// let r = Response::text("{\"up\":true}").with_header("Content-Type", "application/json");
    /// assert_eq!(r.headers().get_all("content-type").collect::<Vec<_>>(), ["application/json"]);
    /// ```
    ///
    /// The server writes the framing and connection fields itself, from
    /// the body and the connection's state (RFC 9112 §6, §9.3), so
    /// `Content-Length`, `Transfer-Encoding`, `Connection` and `Keep-Alive`
    /// set here are dropped from the head. A `close` token in `Connection`
    /// is still acted on: the server closes the connection after this
    /// response, and its own `Connection: close` says so. A `Date` set
    /// here is sent instead of the one the server would add.
    ///
    /// # Panics
    /// If the name is not a token or the value holds control characters
    /// (see [`Headers::append`]). For values that come from outside (a
    /// redirect to a decoded `?next=`), use [`Response::try_with_header`].
    pub fn with_header(self, name: &str, value: impl AsRef<[u8]>) -> Response {
        match self.try_with_header(name, value) {
            Ok(r) => r,
            Err(_) => panic!("invalid header field {name:?}"),
        }
    }

    /// As [`Response::with_header`], but refuses a name that is not a token
    /// or a value with control characters (RFC 9110 §5.1, §5.5) instead of
    /// panicking: such a field would split the message.
    ///
    /// ```
    /// use h1serve::Response;
    /// let to = |next: &str| Response::status(303).try_with_header("Location", next);
    /// assert!(to("/home").is_ok());
    /// assert!(to("/x\r\nSet-Cookie: stolen=1").is_err());
    /// assert!(Response::text("x").try_with_header("Content-Type", "text/html\0").is_err());
    /// ```
    pub fn try_with_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Result<Response, InvalidHeader> {
        if name.eq_ignore_ascii_case("content-type") {
            self.headers.try_insert(name, value)?;
        } else {
            self.headers.try_append(name, value)?;
        }
        Ok(self)
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The header fields set so far.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The header fields, to change. As with [`Response::with_header`],
    /// `Content-Length`, `Transfer-Encoding`, `Connection` and `Keep-Alive`
    /// set here are dropped (the server frames the body and manages the
    /// connection itself), but `Connection: close` makes the server close
    /// after sending.
    pub fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }

    /// The body's length, if known (`None` for [`Response::stream`]).
    pub fn body_len(&self) -> Option<u64> {
        match &self.content {
            Content::Empty => Some(0),
            Content::Bytes(b) => Some(b.len() as u64),
            Content::Reader { len, .. } => Some(*len),
            Content::Stream(_) => None,
        }
    }

    /// The body, once the head is written; the fields' storage goes to the
    /// next response made on this thread.
    pub(crate) fn into_content(self) -> Content {
        self.headers.recycle();
        self.content
    }

    /// The error a handler's `Err` stood for, if this is its 500.
    pub(crate) fn take_handler_error(&mut self) -> Option<String> {
        self.handler_error.take()
    }

    /// True if the handler asked to close the connection.
    pub(crate) fn wants_close(&self) -> bool {
        self.headers.has_token("connection", "close")
    }

    /// Writes a whole response with an in-memory body and
    /// `Connection: close`: the server's own refusals.
    pub(crate) fn write_refusal(&self, out: &mut Vec<u8>) {
        self.write_head(ResponseFraming::Length(self.body_len().unwrap_or(0)), ConnectionField::Close, out);
        if let Content::Bytes(b) = &self.content {
            out.extend_from_slice(b);
        }
    }

    /// Writes the status line and header section to `out`.
    pub(crate) fn write_head(&self, framing: ResponseFraming, conn: ConnectionField, out: &mut Vec<u8>) {
        let s = self.status;
        // Three digits, as RFC 9112 §4 requires (checked at construction).
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(&[b'0' + (s / 100) as u8, b'0' + (s / 10 % 10) as u8, b'0' + (s % 10) as u8, b' ']);
        out.extend_from_slice(reason_phrase(self.status).as_bytes());
        out.extend_from_slice(b"\r\n");
        if !self.headers.contains("date") {
            out.extend_from_slice(&date::field_line());
        }
        for (name, value) in self.headers.iter_raw() {
            if is_server_owned(name) {
                continue;
            }
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        match framing {
            ResponseFraming::Length(n) => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, n);
                out.extend_from_slice(b"\r\n");
            }
            ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            ResponseFraming::NoBody | ResponseFraming::CloseDelimited => {}
        }
        match conn {
            ConnectionField::None => {}
            ConnectionField::Close => out.extend_from_slice(b"Connection: close\r\n"),
            ConnectionField::KeepAlive { timeout_secs, max } => {
                out.extend_from_slice(b"Connection: keep-alive\r\nKeep-Alive: ");
                // A hint of 0 s would tell a client that honours it never to
                // reuse the connection it was just told is kept: no hint.
                if timeout_secs > 0 {
                    out.extend_from_slice(b"timeout=");
                    push_decimal(out, timeout_secs);
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(b"max=");
                push_decimal(out, max);
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The connection fields of a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionField {
    /// HTTP/1.1 keep-alive: the default needs no field.
    None,
    /// `Connection: close`: this is the last response on the connection.
    Close,
    /// HTTP/1.0 keep-alive: `Connection: keep-alive` and the hints
    /// `Keep-Alive: timeout=, max=`. RFC 2068 §19.7.1 describes this
    /// keep-alive, and §19.7.1.1 defines the `Keep-Alive` field but no
    /// parameters: `timeout` and `max` are the de facto ones, as Apache
    /// sends them.
    KeepAlive { timeout_secs: u64, max: u64 },
}

/// Fields the server writes itself.
fn is_server_owned(name: &[u8]) -> bool {
    [&b"content-length"[..], b"transfer-encoding", b"connection", b"keep-alive"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// A string's bytes, without copying them.
fn str_bytes(s: Cow<'static, str>) -> Cow<'static, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

fn check_status(code: u16) -> u16 {
    assert!((200..=599).contains(&code), "status {code} is not a final status (200-599)");
    code
}

/// Appends `n` in decimal without going through `fmt`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// The reason phrase of RFC 9110 §15 (empty for codes it does not name:
/// clients must ignore it anyway, RFC 9112 §4).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body_len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(r: &Response, framing: ResponseFraming, conn: ConnectionField) -> String {
        let mut out = Vec::new();
        r.write_head(framing, conn, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn head_has_status_date_fields_framing_and_blank_line() {
        let r = Response::text("hi").with_header("X-A", "1");
        let h = head_of(&r, ResponseFraming::Length(2), ConnectionField::None);
        assert!(h.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{h}");
        assert!(
            h.ends_with("\r\nContent-Type: text/plain; charset=utf-8\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n"),
            "{h}"
        );
    }

    #[test]
    fn text_and_html_set_one_content_type() {
        let html = Response::html(String::from("<p>hi</p>"));
        assert_eq!(html.headers().get_all("content-type").collect::<Vec<_>>(), ["text/html; charset=utf-8"]);
        assert_eq!(html.body_len(), Some(9));
        let text = Response::text("hi");
        assert_eq!(text.headers().get_all("content-type").collect::<Vec<_>>(), ["text/plain; charset=utf-8"]);
    }

    #[test]
    fn a_content_type_replaces_the_one_before_and_other_fields_repeat() {
        let r = Response::text("{}")
            .with_header("content-type", "application/json")
            .with_header("Set-Cookie", "a=1")
            .with_header("Set-Cookie", "b=2");
        let h = head_of(&r, ResponseFraming::Length(2), ConnectionField::None);
        assert_eq!(h.to_ascii_lowercase().matches("content-type:").count(), 1, "{h}");
        assert!(h.contains("\r\ncontent-type: application/json\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n"), "{h}");
    }

    #[test]
    fn server_owns_framing_and_connection_fields() {
        let r = Response::status(204)
            .with_header("Content-Length", "99")
            .with_header("Transfer-Encoding", "gzip")
            .with_header("Connection", "close")
            .with_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(r.wants_close());
        let h = head_of(&r, ResponseFraming::NoBody, ConnectionField::Close);
        assert_eq!(h, "HTTP/1.1 204 No Content\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n");
    }

    #[test]
    fn keep_alive_hints_and_unknown_reasons() {
        let r = Response::status(599);
        let h = head_of(&r, ResponseFraming::Chunked, ConnectionField::KeepAlive { timeout_secs: 5, max: 99 });
        assert!(h.starts_with("HTTP/1.1 599 \r\n"));
        assert!(h.ends_with(
            "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5, max=99\r\n\r\n"
        ));
        // An idle timeout under 2 s leaves no whole second of hint.
        let h = head_of(&r, ResponseFraming::Chunked, ConnectionField::KeepAlive { timeout_secs: 0, max: 99 });
        assert!(h.ends_with("Connection: keep-alive\r\nKeep-Alive: max=99\r\n\r\n"), "{h}");
    }

    #[test]
    #[should_panic(expected = "not a final status")]
    fn interim_status_is_refused() {
        let _ = Response::status(101);
    }

    #[test]
    fn decimal_digits() {
        let mut v = Vec::new();
        for n in [0, 7, 10, 12345, u64::MAX] {
            v.clear();
            push_decimal(&mut v, n);
            assert_eq!(v, n.to_string().as_bytes());
        }
    }
}
