//! A reverse proxy: every request it receives is forwarded to one upstream
//! HTTP/1.1 server, and the upstream's response is relayed back.
//!
//! ```text
//! cargo run --example proxy -- --listen ADDR --upstream HOST:PORT
//! ```
//!
//! Both flags are required (a missing or unknown one prints the usage and
//! exits with code 2). The first line printed is
//! `listening on http://HOST:PORT`, with the real port also when ADDR asks
//! for port 0. Try it in front of the echo example:
//! `cargo run --example echo -- 127.0.0.1:8080`, then
//! `cargo run --example proxy -- --listen 127.0.0.1:8081 --upstream 127.0.0.1:8080`
//! and `curl -v localhost:8081/headers`.
//!
//! What it teaches:
//!
//! * **Two independent persistent connections.** h1serve keeps the client's
//!   connection to the proxy alive (keep-alive, pipelining, its timeouts);
//!   the proxy keeps its own connections to the upstream in a small pool
//!   (`Upstream` below). Each hop decides its own persistence
//!   (RFC 9112 §9.3): a client that closes does not close an upstream
//!   connection, an upstream that says `Connection: close` does not close
//!   the client's, and many client connections share a few upstream ones.
//!   An upstream connection goes back to the pool only once its response
//!   was read to the end and the upstream did not ask to close it: a
//!   connection with unread body bytes in it would hand those bytes to the
//!   next request as its "response".
//! * **Hop-by-hop fields stay on their hop** (rules §3, §4). `Connection`
//!   and every field it names (RFC 9110 §7.6.1, which also names
//!   `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding` and
//!   `Upgrade`), `Trailer` (RFC 2616 §13.5.1) and
//!   `Proxy-Authenticate`/`Proxy-Authorization` (RFC 9110 §11.7: for the
//!   next hop) are removed in both directions
//!   ([`Headers::remove_hop_by_hop`]). A "dumb" proxy that passes
//!   an HTTP/1.0 client's `Connection: keep-alive` on makes the server keep
//!   the connection open after its response, while the proxy, which knows
//!   nothing of keep-alive, waits for the close that would end the body:
//!   client and proxy hang. Framing belongs to a hop too: request bodies are
//!   sent upstream with a `Content-Length` whatever framing the client used,
//!   and the upstream's body (length, chunked or close-delimited) reaches
//!   the client with the framing h1serve chooses for it.
//! * **Safe retries** (RFC 9112 §9.3.1, RFC 9110 §9.2.2, rules §6).
//!   An upstream may close an idle connection at any moment. Before a pooled
//!   connection is reused it is checked for a close that already arrived.
//!   If it closes anyway before a byte of the response (the close crossed
//!   our request on the wire), an idempotent request (GET, HEAD, PUT,
//!   DELETE, OPTIONS, TRACE) is sent once more on a fresh connection. POST
//!   and PATCH are not: the upstream may have acted on them before closing,
//!   so the client gets 502 and decides for itself.
//!
//! Other choices:
//!
//! * The client's `Host` is kept, so name-based virtual hosts upstream see
//!   the name the client used. An absolute-form target (`GET http://h/p`)
//!   is sent as origin-form with its authority as `Host` (RFC 9112 §3.2.2);
//!   an HTTP/1.0 request without `Host` gets the upstream's HOST:PORT.
//! * `Via: 1.1 h1serve-proxy` (`1.0` for a message received as HTTP/1.0) is
//!   added in both directions (RFC 9110 §7.6.3). Requests go upstream as
//!   HTTP/1.1 whatever version the client spoke (RFC 9110 §6.2).
//! * Request bodies are read whole (within h1serve's body limit, 16 MiB by
//!   default) before they are sent, so that a retry can send them again;
//!   response bodies are streamed, never held whole.
//! * 502 Bad Gateway when the upstream cannot be reached, closes before its
//!   response head is complete, or sends something that is not a valid
//!   HTTP/1.1 response (RFC 9112 §6.3 asks a proxy for exactly this on an
//!   invalid `Content-Length`); 504 Gateway Timeout when it sends nothing
//!   for 30 s. A response that breaks off mid-body can only be cut off: the
//!   client's connection is closed before the body is complete.
//! * Not done: `Max-Forwards` (RFC 9110 §7.6.2), `Forwarded` (RFC 7239),
//!   interim 1xx responses other than absorbing them, trailers (dropped),
//!   `Upgrade` and CONNECT tunnels, TLS.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::exit;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use h1serve::{Headers, Method, Request, Response, Server, Version, reason_phrase};

const USAGE: &str = "usage: proxy --listen ADDR --upstream HOST:PORT";

/// Idle upstream connections kept for reuse; more are closed. A bound keeps
/// a burst of traffic from leaving hundreds of sockets open afterwards.
const MAX_IDLE: usize = 16;
/// An upstream connection idle longer than this is closed rather than
/// reused: servers close idle connections (h1serve after 60 s by default),
/// and reusing one just as the server gives up on it is the race that
/// makes retries necessary. Staying well inside its timeout avoids most.
const MAX_IDLE_TIME: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for the upstream's next bytes; past it the client gets 504
/// (or, mid-body, a cut-off response).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest upstream response head, and largest trailer section.
const MAX_HEAD: u64 = 64 * 1024;
/// Longest chunk-size line (with extensions) in a chunked response.
const MAX_CHUNK_LINE: u64 = 4 * 1024;
/// Most interim (1xx) responses absorbed before the final one.
const MAX_INTERIM: usize = 16;
/// Our name in `Via` (RFC 9110 §7.6.3: received-protocol, then a pseudonym).
const VIA_NAME: &str = "h1serve-proxy";

fn main() {
    let (listen, authority) = parse_args();
    let upstream = Arc::new(Upstream { authority, idle: Mutex::new(Vec::new()) });
    let server = Server::bind(&listen).unwrap_or_else(|e| {
        eprintln!("proxy: cannot listen on {listen}: {e}");
        exit(1)
    });
    println!("listening on http://{}", server.local_addr());
    let _ = io::stdout().flush();
    if let Err(e) = server.serve(move |req| forward(&upstream, req)) {
        eprintln!("proxy: {e}");
        exit(1);
    }
}

fn parse_args() -> (String, String) {
    let (mut listen, mut upstream) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let slot = match flag.as_str() {
            "--listen" => &mut listen,
            "--upstream" => &mut upstream,
            "-h" | "--help" => {
                println!("{USAGE}");
                exit(0)
            }
            other => usage(&format!("unexpected argument {other}")),
        };
        match args.next() {
            _ if slot.is_some() => usage(&format!("{flag} given twice")),
            Some(value) if !value.starts_with('-') => *slot = Some(value),
            _ => usage(&format!("{flag} needs a value")),
        }
    }
    let listen = listen.unwrap_or_else(|| usage("--listen is required"));
    let upstream = upstream.unwrap_or_else(|| usage("--upstream is required"));
    // The address is resolved at each connect (it may change), but its shape
    // is checked now; it is also the Host sent for requests that had none.
    match upstream.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => usage("--upstream must be HOST:PORT"),
    }
    (listen, upstream)
}

fn usage(problem: &str) -> ! {
    eprintln!("proxy: {problem}\n{USAGE}");
    exit(2)
}

/// The handler: builds the upstream request, sends it, relays the answer.
fn forward(upstream: &Arc<Upstream>, req: &mut Request) -> Response {
    let outgoing = match Outgoing::from_request(req, &upstream.authority) {
        Ok(o) => o,
        Err(refusal) => return refusal,
    };
    let relayed = upstream.round_trip(&outgoing).and_then(|(head, conn)| relay(upstream, head, conn, outgoing.is_head));
    relayed.unwrap_or_else(|e| {
        eprintln!("proxy: {} {}: {e}", req.method(), req.target());
        e.response()
    })
}

/// `1.0` or `1.1`: the received-protocol of a `Via` entry (the protocol
/// name is left out when it is HTTP, RFC 9110 §7.6.3).
fn via(http10: bool) -> String {
    format!("{} {VIA_NAME}", if http10 { "1.0" } else { "1.1" })
}

// ---------------------------------------------------------------------------
// The request side.

/// A request ready to go upstream: head and body in one buffer, so that it
/// is sent with one write (rules §2) and can be sent again on retry.
struct Outgoing {
    bytes: Vec<u8>,
    idempotent: bool,
    is_head: bool,
}

impl Outgoing {
    fn from_request(req: &mut Request, upstream_authority: &str) -> Result<Outgoing, Response> {
        // h1serve decodes the client's framing (Content-Length or chunked)
        // and enforces its body limit; when the body breaks a rule it
        // answers 400/408/413 itself, whatever we return here.
        let body = req.read_body().map_err(|_| Response::status(400))?;
        let mut headers = req.headers().clone();
        let had_content = headers.contains("content-length") || headers.contains("transfer-encoding");
        headers.remove_hop_by_hop();
        // Framing is per hop: this hop's is a Content-Length we write below.
        headers.remove("content-length");
        // We have read the whole body already (h1serve sent the client its
        // 100 Continue), so the expectation is met on this hop; passing it
        // on would only make the upstream send a 100 for us to skip.
        if headers.has_token("expect", "100-continue") {
            headers.remove("expect");
        }
        let target = match req.target() {
            t if t.starts_with('/') || t == "*" => t.to_string(),
            absolute => {
                // RFC 9112 §3.2.2: the authority of an absolute-form target
                // replaces Host; the upstream gets the origin form.
                let Some(authority) = authority_of(absolute) else {
                    return Err(Response::text("only http(s) absolute targets are forwarded\n").with_status(400));
                };
                headers.remove("host");
                if headers.try_append("Host", authority).is_err() {
                    return Err(Response::text("invalid authority in the target\n").with_status(400));
                }
                match req.query() {
                    Some(q) => format!("{}?{q}", req.path()),
                    None => req.path().to_string(),
                }
            }
        };
        // HTTP/1.1 requires Host (h1serve refuses a 1.1 request without
        // one); HTTP/1.0 clients may leave it out.
        if !headers.contains("host") {
            headers.append("Host", upstream_authority);
        }
        headers.append("Via", via(req.version() == Version::Http10));

        let mut bytes = Vec::with_capacity(512 + body.len());
        bytes.extend_from_slice(req.method().as_str().as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(target.as_bytes());
        bytes.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in headers.iter() {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        // RFC 9110 §8.6: no Content-Length on a request that had no content
        // (a GET), but keep `Content-Length: 0` on one that had an empty one.
        if had_content || !body.is_empty() {
            bytes.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(&body);
        Ok(Outgoing { bytes, idempotent: req.method().is_idempotent(), is_head: *req.method() == Method::Head })
    }
}

/// The authority of an absolute-form target, without userinfo:
/// `http://user@h:8080/p?q` gives `h:8080`.
fn authority_of(target: &str) -> Option<&str> {
    let (scheme, rest) = target.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    Some(authority.rsplit_once('@').map_or(authority, |(_, host)| host))
}

// ---------------------------------------------------------------------------
// The upstream client: a pool of persistent connections.

/// The upstream server and the connections to it that are idle, ready to
/// be reused.
struct Upstream {
    /// HOST:PORT as given on the command line.
    authority: String,
    /// Most recently used last: reuse takes the warmest connection, and
    /// the coldest ones age out.
    idle: Mutex<Vec<Conn>>,
}

/// One connection to the upstream. Writes go straight to the socket; reads
/// go through a buffer that must be empty whenever the connection is idle.
struct Conn {
    reader: BufReader<TcpStream>,
    idle_since: Instant,
}

impl Upstream {
    /// Sends `req` and reads the head of the final response. Returns the
    /// connection with it: the body is still to be read from it.
    fn round_trip(&self, req: &Outgoing) -> Result<(ResponseHead, Conn), UpstreamError> {
        if let Some(mut conn) = self.checkout() {
            match conn.exchange(req) {
                Ok(head) => return Ok((head, conn)),
                // The upstream closed this connection as our request went
                // out (RFC 9112 §9.3.1). An idempotent request may be sent
                // again, once, on a connection that is surely fresh; a POST
                // or PATCH may already have had its effect, so it is not.
                Err(UpstreamError::Closed) if req.idempotent => {}
                Err(UpstreamError::Closed) => return Err(UpstreamError::ClosedNotRetried),
                Err(e) => return Err(e),
            }
        }
        let mut conn = self.connect()?;
        let head = conn.exchange(req)?;
        Ok((head, conn))
    }

    fn connect(&self) -> Result<Conn, UpstreamError> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolves to no address");
        for addr in self.authority.to_socket_addrs().map_err(UpstreamError::Connect)? {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    // Each request goes out in one write; Nagle would only
                    // delay it (rules §2).
                    let _ = stream.set_nodelay(true);
                    stream.set_read_timeout(Some(READ_TIMEOUT)).map_err(UpstreamError::Connect)?;
                    stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(UpstreamError::Connect)?;
                    return Ok(Conn { reader: BufReader::new(stream), idle_since: Instant::now() });
                }
                Err(e) => last = e,
            }
        }
        Err(UpstreamError::Connect(last))
    }

    /// An idle connection that still looks usable, if there is one.
    fn checkout(&self) -> Option<Conn> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop()?;
            if conn.idle_since.elapsed() < MAX_IDLE_TIME && conn.is_open() {
                return Some(conn);
            }
            // Dropped here: closed, and the next one is tried.
        }
    }

    /// Puts a connection whose response was read to the end back in the
    /// pool, or closes it when the pool is full.
    fn checkin(&self, mut conn: Conn) {
        conn.idle_since = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

impl Conn {
    /// True unless the upstream has already closed this idle connection, or
    /// sent bytes no request asked for. A non-blocking peek sees a FIN that
    /// has arrived as end-of-stream; a close still on its way cannot be
    /// seen, which is what the retry in `round_trip` is for.
    fn is_open(&self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let stream = self.reader.get_ref();
        if stream.set_nonblocking(true).is_err() {
            return false;
        }
        let peeked = stream.peek(&mut [0u8; 1]);
        stream.set_nonblocking(false).is_ok() && matches!(peeked, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Writes the request and reads the head of the final response,
    /// absorbing interim 1xx responses (RFC 9110 §15.2): the client hop has
    /// had its own 100 Continue from h1serve.
    fn exchange(&mut self, req: &Outgoing) -> Result<ResponseHead, UpstreamError> {
        if let Err(e) = self.reader.get_mut().write_all(&req.bytes) {
            return Err(if is_timeout(&e) { UpstreamError::Timeout } else { UpstreamError::Closed });
        }
        for first in (0..MAX_INTERIM).map(|i| i == 0) {
            let head = read_head(&mut self.reader, first)?;
            match head.status {
                // We never forward Upgrade, so a switch is a broken upstream.
                101 => return Err(UpstreamError::Invalid("101 Switching Protocols without an Upgrade")),
                100..=199 => continue,
                _ => return Ok(head),
            }
        }
        Err(UpstreamError::Invalid("too many interim responses"))
    }
}

/// Why the upstream gave no usable response.
#[derive(Debug)]
enum UpstreamError {
    /// No connection could be made.
    Connect(io::Error),
    /// The connection closed (EOF or reset) before a byte of the response
    /// arrived, or the request could not be written.
    Closed,
    /// As `Closed`, on a pooled connection, for a request that must not be
    /// sent twice.
    ClosedNotRetried,
    /// The upstream sent nothing within `READ_TIMEOUT`.
    Timeout,
    /// Reading failed or the connection closed in the middle of the head.
    Io(io::Error),
    /// What arrived is not a valid HTTP/1.1 response.
    Invalid(&'static str),
}

impl UpstreamError {
    fn response(&self) -> Response {
        let status = if matches!(self, UpstreamError::Timeout) { 504 } else { 502 };
        Response::text(format!("{}: {self}\n", reason_phrase(status))).with_status(status)
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(e) => write!(f, "cannot connect to the upstream: {e}"),
            UpstreamError::Closed => f.write_str("the upstream closed the connection without answering"),
            UpstreamError::ClosedNotRetried => f.write_str(
                "the upstream closed the connection without answering; not retried, the method is not idempotent",
            ),
            UpstreamError::Timeout => f.write_str("the upstream did not answer in time"),
            UpstreamError::Io(e) => write!(f, "reading the upstream's response failed: {e}"),
            UpstreamError::Invalid(why) => write!(f, "invalid response from the upstream: {why}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn read_error(e: io::Error) -> UpstreamError {
    if is_timeout(&e) { UpstreamError::Timeout } else { UpstreamError::Io(e) }
}

// ---------------------------------------------------------------------------
// Reading the upstream's response (RFC 9112 §4, §5, §6.3, §7.1).

/// A response's status line and header section.
struct ResponseHead {
    http10: bool,
    status: u16,
    headers: Headers,
}

impl ResponseHead {
    /// RFC 9112 §9.3: an HTTP/1.1 connection persists unless `close`; an
    /// HTTP/1.0 one only with `keep-alive`.
    fn keeps_alive(&self) -> bool {
        !self.headers.has_token("connection", "close")
            && (!self.http10 || self.headers.has_token("connection", "keep-alive"))
    }
}

/// Reads a response head. `first` marks the first read of an exchange: EOF
/// or a reset before any byte then means the connection had closed under
/// us, which the caller may retry; anywhere later it is a broken response.
fn read_head(r: &mut BufReader<TcpStream>, first: bool) -> Result<ResponseHead, UpstreamError> {
    match r.fill_buf() {
        Ok([]) if first => return Err(UpstreamError::Closed),
        Ok(_) => {}
        Err(e) if first && is_closed(&e) => return Err(UpstreamError::Closed),
        Err(e) => return Err(read_error(e)),
    }
    let mut budget = MAX_HEAD;
    let line = read_line(r, &mut budget)?;
    let (http10, status) = parse_status_line(&line).ok_or(UpstreamError::Invalid("malformed status line"))?;
    let headers = read_fields(r, &mut budget)?;
    Ok(ResponseHead { http10, status, headers })
}

fn is_closed(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof)
}

/// `HTTP/1.x SP 3DIGIT SP reason` (RFC 9112 §4): the version (true for
/// 1.0) and the status. The reason phrase is ignored, as clients must;
/// h1serve writes its own.
fn parse_status_line(line: &[u8]) -> Option<(bool, u16)> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let (&minor, rest) = rest.split_first()?;
    if !minor.is_ascii_digit() {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (code, after) = rest.split_at_checked(3)?;
    if !code.iter().all(u8::is_ascii_digit) || !(after.is_empty() || after[0] == b' ') {
        return None;
    }
    let status = code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    // 1xx are interim; 200-599 final; the rest is not HTTP.
    (100..=599).contains(&status).then_some((minor == b'0', status))
}

/// Reads field lines up to the empty line that ends a header or trailer
/// section.
fn read_fields(r: &mut BufReader<TcpStream>, budget: &mut u64) -> Result<Headers, UpstreamError> {
    let mut headers = Headers::new();
    loop {
        let line = read_line(r, budget)?;
        if line.is_empty() {
            return Ok(headers);
        }
        // RFC 9112 §5.2: a proxy that receives obs-fold in a response MUST
        // either replace it with SP or answer 502; we answer 502.
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(UpstreamError::Invalid("obsolete line folding"));
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(UpstreamError::Invalid("field line without a colon"))?;
        // A name must be a token (no whitespace before the colon,
        // RFC 9112 §5.1), and a value must not hold CR, NUL or other
        // controls that would split or smuggle a message: try_append checks
        // both.
        let name = std::str::from_utf8(&line[..colon]).map_err(|_| UpstreamError::Invalid("invalid field name"))?;
        headers.try_append(name, &line[colon + 1..]).map_err(|_| UpstreamError::Invalid("invalid field line"))?;
    }
}

/// One line, without its line ending, spending from `budget`. A bare LF is
/// accepted as the end of a line (RFC 9112 §2.2 allows it of a recipient).
fn read_line(r: &mut BufReader<TcpStream>, budget: &mut u64) -> Result<Vec<u8>, UpstreamError> {
    let mut line = Vec::new();
    let n = r.by_ref().take(*budget).read_until(b'\n', &mut line).map_err(read_error)?;
    *budget -= n as u64;
    if line.pop() != Some(b'\n') {
        return Err(if *budget == 0 {
            UpstreamError::Invalid("head or line too long")
        } else {
            UpstreamError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed mid-head"))
        });
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// How the upstream's response body is delimited (RFC 9112 §6.3).
enum Framing {
    /// Responses to HEAD, and 1xx, 204 and 304: no body, whatever the
    /// fields say (rules 1 and 2).
    NoBody,
    /// `Transfer-Encoding: chunked` (rule 4).
    Chunked,
    /// `Content-Length` (rule 6).
    Length(u64),
    /// Neither: the body ends when the upstream closes (rule 8).
    UntilClose,
}

fn response_framing(head: &ResponseHead, is_head: bool) -> Result<Framing, UpstreamError> {
    if is_head || head.status < 200 || head.status == 204 || head.status == 304 {
        return Ok(Framing::NoBody);
    }
    let mut lengths = head.headers.get_all_bytes("content-length");
    let length = lengths.next();
    if head.headers.contains("transfer-encoding") {
        // Rule 3: both fields "ought to be handled as an error", the stuff
        // of response splitting. And we decode chunked only: passing on
        // another transfer coding after dropping Transfer-Encoding (it is
        // hop-by-hop) would hand the client bytes it cannot decode.
        if length.is_some() {
            return Err(UpstreamError::Invalid("both Transfer-Encoding and Content-Length"));
        }
        if head.http10 {
            return Err(UpstreamError::Invalid("Transfer-Encoding in an HTTP/1.0 response"));
        }
        let mut codings = head.headers.list("transfer-encoding");
        return match (codings.next(), codings.next()) {
            (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(UpstreamError::Invalid("transfer coding other than chunked")),
        };
    }
    match length {
        None => Ok(Framing::UntilClose),
        // Rule 5: an invalid Content-Length (a list, a repeat, a sign,
        // overflow) is unrecoverable; a proxy MUST answer 502.
        Some(_) if lengths.next().is_some() => Err(UpstreamError::Invalid("repeated Content-Length")),
        Some(v) => parse_decimal(v).map(Framing::Length).ok_or(UpstreamError::Invalid("invalid Content-Length")),
    }
}

/// `1*DIGIT`, without overflow.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

// ---------------------------------------------------------------------------
// Relaying the response to the client.

/// Turns the upstream's response into the client's. The body is read from
/// the upstream while h1serve writes it to the client, after this returns.
fn relay(upstream: &Arc<Upstream>, head: ResponseHead, conn: Conn, is_head: bool) -> Result<Response, UpstreamError> {
    // On an error `conn` is dropped, closed: where its response ends is
    // unknown, so nothing else can be read from it.
    let framing = response_framing(&head, is_head)?;
    // Decided on the fields as received, before the hop-by-hop ones go.
    let reusable = head.keeps_alive();
    let status = head.status;
    // A HEAD response's Content-Length is the length a GET would get
    // (RFC 9110 §8.6); it is passed on through h1serve's framing.
    let head_length = head.headers.get_bytes("content-length").and_then(parse_decimal);
    let mut headers = head.headers;
    headers.remove_hop_by_hop();
    // h1serve writes the framing fields for the client's hop itself.
    headers.remove("content-length");
    headers.append("Via", via(head.http10));

    let mut body = UpstreamBody { conn: Some(conn), upstream: Arc::clone(upstream), reusable, state: State::Done };
    let response = match framing {
        Framing::NoBody => {
            body.release();
            match head_length {
                _ if status == 204 || status == 304 => Response::status(status),
                // from_reader declares the length; h1serve reads no body
                // for HEAD.
                Some(len) => Response::from_reader(io::empty(), len),
                None => Response::stream(|_| Ok(())),
            }
        }
        Framing::Length(len) => {
            body.state = State::Length { left: len };
            if len == 0 {
                body.release();
            }
            Response::from_reader(body, len)
        }
        Framing::Chunked => {
            body.state = State::Chunked { left: 0, crlf_due: false };
            Response::stream(move |w| body.copy_to(w))
        }
        Framing::UntilClose => {
            body.state = State::UntilClose;
            Response::stream(move |w| body.copy_to(w))
        }
    };
    let mut response = response.with_status(status);
    *response.headers_mut() = headers;
    Ok(response)
}

/// The body of an upstream response, read as the client is sent it. Once
/// it has been read to its end the connection goes back to the pool (if the
/// upstream keeps it alive); if it is dropped before — the client went
/// away, the upstream broke off — the connection is closed with it.
struct UpstreamBody {
    conn: Option<Conn>,
    upstream: Arc<Upstream>,
    reusable: bool,
    state: State,
}

enum State {
    /// `left` bytes still to come.
    Length { left: u64 },
    /// `left` bytes of the current chunk still to come, then (if
    /// `crlf_due`) the CRLF that ends its data.
    Chunked { left: u64, crlf_due: bool },
    /// Until the upstream closes.
    UntilClose,
    /// Read to the end.
    Done,
}

impl UpstreamBody {
    /// The body was read to its end: the connection is free again.
    fn release(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.reusable {
                self.upstream.checkin(conn);
            }
        }
    }

    /// Copies the decoded body to a `Response::stream` writer.
    fn copy_to(mut self, w: &mut dyn Write) -> io::Result<()> {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            w.write_all(&buf[..n])?;
            // What has arrived together goes out together, but nothing
            // waits in our buffer while we wait for the upstream: a stream
            // of events must reach the client as it happens.
            if self.conn.as_ref().is_none_or(|c| c.reader.buffer().is_empty()) {
                w.flush()?;
            }
        }
    }
}

impl Read for UpstreamBody {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(conn) = self.conn.as_mut() else { return Ok(0) };
        if out.is_empty() {
            return Ok(0);
        }
        let r = &mut conn.reader;
        let n = match &mut self.state {
            State::Done => 0,
            State::Length { left } => {
                let n = read_some(r, out, *left)?;
                *left -= n as u64;
                if *left == 0 {
                    // Released now, before h1serve writes these last bytes:
                    // the next request can have the connection at once.
                    self.release();
                }
                return Ok(n);
            }
            State::UntilClose => r.read(out)?,
            State::Chunked { left, crlf_due } => {
                if *crlf_due {
                    expect_crlf(r)?;
                    *crlf_due = false;
                }
                if *left == 0 {
                    *left = read_chunk_size(r)?;
                    if *left == 0 {
                        // The last chunk; the trailer section is read (to
                        // leave the connection clean) and dropped: Trailer
                        // is hop-by-hop and h1serve sends no trailers.
                        let mut budget = MAX_HEAD;
                        read_fields(r, &mut budget).map_err(io::Error::other)?;
                        0
                    } else {
                        read_chunk_data(r, out, left, crlf_due)?
                    }
                } else {
                    read_chunk_data(r, out, left, crlf_due)?
                }
            }
        };
        if n == 0 {
            self.release();
        }
        Ok(n)
    }
}

/// Reads at most `left` bytes; the upstream closing first is an error.
fn read_some(r: &mut BufReader<TcpStream>, out: &mut [u8], left: u64) -> io::Result<usize> {
    let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
    match r.read(&mut out[..want])? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the upstream closed before the end of the body")),
        n => Ok(n),
    }
}

fn read_chunk_data(
    r: &mut BufReader<TcpStream>,
    out: &mut [u8],
    left: &mut u64,
    crlf_due: &mut bool,
) -> io::Result<usize> {
    let n = read_some(r, out, *left)?;
    *left -= n as u64;
    if *left == 0 {
        *crlf_due = true;
        // Take the CRLF now if it is already here, so that an empty buffer
        // means "nothing more has arrived" to `copy_to`.
        if r.buffer().starts_with(b"\r\n") {
            r.consume(2);
            *crlf_due = false;
        }
    }
    Ok(n)
}

fn expect_crlf(r: &mut BufReader<TcpStream>) -> io::Result<()> {
    let mut budget = 2;
    match read_line(r, &mut budget) {
        Ok(line) if line.is_empty() => Ok(()),
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, "chunk data not followed by CRLF")),
    }
}

/// `chunk-size [ chunk-ext ] CRLF` (RFC 9112 §7.1); extensions are ignored.
fn read_chunk_size(r: &mut BufReader<TcpStream>) -> io::Result<u64> {
    let mut budget = MAX_CHUNK_LINE;
    let line = read_line(r, &mut budget).map_err(io::Error::other)?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    let rest = &line[digits..];
    let ext_ok = rest.is_empty() || matches!(rest.iter().find(|&&b| b != b' ' && b != b'\t'), Some(b';'));
    // 15 hex digits always fit in a u64; more is no size anyone sends.
    if digits == 0 || digits > 15 || !ext_ok {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "invalid chunk size"));
    }
    let hex = std::str::from_utf8(&line[..digits]).expect("hex digits are ASCII");
    Ok(u64::from_str_radix(hex, 16).expect("at most 15 hex digits"))
}
