//! Test helpers: servers on port 0, raw sockets, and an HTTP/1.1 response
//! parser written independently of the server's code.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use h1serve::{Builder, Request, Response, Running, Server};

/// Generous bound for a read a test expects to succeed: only a broken
/// server makes a test wait this long.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Starts `handler` on 127.0.0.1:0 with `builder`'s settings.
pub fn start(builder: Builder, handler: impl Fn(&mut Request) -> Response + Send + Sync + 'static) -> Running {
    builder.bind("127.0.0.1:0").expect("bind").spawn(handler).expect("spawn")
}

/// A server answering every request with the request's method and target.
pub fn start_echo_line(builder: Builder) -> Running {
    start(builder, |req| Response::text(format!("{} {}", req.method(), req.target())))
}

pub fn default_builder() -> Builder {
    Server::builder()
}

/// A connected client socket with a read timeout, so a broken server fails
/// the test instead of hanging it.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

/// A response as the test-side parser saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How the body was delimited: "length", "chunked", "close" or "none".
    pub framing: &'static str,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn closes(&self) -> bool {
        self.header("connection").is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Reads responses off a connection, keeping bytes between them.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { reader: BufReader::new(connect(addr)) }
    }

    pub fn from_stream(s: TcpStream) -> Client {
        Client { reader: BufReader::new(s) }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream().write_all(bytes.as_ref()).expect("send");
    }

    /// Reads one response to a request with method `method` (HEAD responses
    /// have no body). Skips 1xx interim responses unless `keep_interim`.
    pub fn read_response_to(&mut self, method: &str) -> io::Result<Resp> {
        loop {
            let r = self.read_one(method)?;
            if r.status >= 200 {
                return Ok(r);
            }
        }
    }

    pub fn read_response(&mut self) -> Resp {
        self.read_response_to("GET").expect("a response")
    }

    /// Reads exactly one response, interim ones included.
    pub fn read_one(&mut self, method: &str) -> io::Result<Resp> {
        let line = self.line()?;
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {line:?}"));
        let rest = line.strip_prefix("HTTP/1.1 ").ok_or_else(|| bad("status line"))?;
        let (code, reason) = rest.split_at(3.min(rest.len()));
        let status: u16 = code.parse().map_err(|_| bad("status code"))?;
        let reason = reason.strip_prefix(' ').ok_or_else(|| bad("SP after status"))?.to_string();
        let mut headers = Vec::new();
        loop {
            let l = self.line()?;
            if l.is_empty() {
                break;
            }
            let (n, v) = l.split_once(':').ok_or_else(|| bad("field line"))?;
            assert!(!n.ends_with(' ') && !n.is_empty(), "bad field name {n:?}");
            headers.push((n.to_string(), v.trim().to_string()));
        }
        let mut r = Resp { status, reason, headers, body: Vec::new(), framing: "none" };
        if method == "HEAD" || status < 200 || status == 204 || status == 304 {
            return Ok(r);
        }
        if r.header("transfer-encoding").is_some() {
            assert_eq!(r.header("transfer-encoding"), Some("chunked"));
            assert!(r.header("content-length").is_none(), "both TE and CL");
            r.framing = "chunked";
            loop {
                let size_line = self.line()?;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap().trim(), 16)
                    .map_err(|_| bad("chunk size"))?;
                if size == 0 {
                    while !self.line()?.is_empty() {}
                    break;
                }
                let start = r.body.len();
                r.body.resize(start + size, 0);
                self.reader.read_exact(&mut r.body[start..])?;
                if !self.line()?.is_empty() {
                    return Err(bad("CRLF after chunk"));
                }
            }
        } else if let Some(len) = r.header("content-length") {
            assert_eq!(r.header_count("content-length"), 1);
            let len: usize = len.parse().map_err(|_| bad("content-length"))?;
            r.framing = "length";
            r.body.resize(len, 0);
            self.reader.read_exact(&mut r.body)?;
        } else {
            r.framing = "close";
            self.reader.read_to_end(&mut r.body)?;
        }
        Ok(r)
    }

    /// One CRLF-terminated line, without the CRLF; a bare LF is an error.
    fn line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf)?;
        if buf.is_empty() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if !buf.ends_with(b"\r\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("line without CRLF: {buf:?}")));
        }
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).map_err(|_| io::ErrorKind::InvalidData.into())
    }

    /// Asserts that the server sends nothing for `wait` (where sending
    /// would be the bug). Only a silent server can pass, however loaded
    /// the machine; `why` names what a byte would have meant.
    pub fn assert_silent_for(&mut self, wait: Duration, why: &str) {
        assert!(self.reader.buffer().is_empty(), "{why}: bytes already buffered");
        self.stream().set_read_timeout(Some(wait)).unwrap();
        let early = self.stream().peek(&mut [0u8; 1]);
        self.stream().set_read_timeout(Some(PATIENCE)).unwrap();
        let silent =
            matches!(&early, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut));
        assert!(silent, "{why}: {early:?}");
    }

    /// True if the server closed the connection cleanly (EOF, not reset)
    /// with nothing more to read.
    pub fn at_eof(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(self.reader.read_to_end(&mut rest), Ok(0))
    }

    /// Everything until the server closes.
    pub fn rest(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest)?;
        Ok(rest)
    }
}

/// Sends `request` on a new connection and reads everything until the
/// server closes it.
pub fn exchange_until_close(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read until close");
    out
}

/// The status code of the first response in `bytes`.
pub fn status_of(bytes: &[u8]) -> u16 {
    std::str::from_utf8(&bytes[9.min(bytes.len())..12.min(bytes.len())]).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// Waits until the server has no open connection; panics if it keeps one.
pub fn assert_all_closed(running: &Running) {
    assert!(running.handle().wait_until(PATIENCE, |s| s.open == 0), "connections left open: {:?}", running.stats());
}

/// A running example program, killed when dropped.
pub struct Example {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Everything the program printed to stdout after its first line.
    pub stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of an example binary that `cargo test` built next to the
/// test binary (target/<profile>/examples/<name>).
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

/// Starts an example with `args`, stdin empty, stdout and stderr piped.
pub fn start_example_process(name: &str, args: &[&str]) -> std::process::Child {
    let mut command = std::process::Command::new(example_path(name));
    command.args(args);
    start_piped(name, command)
}

/// Starts `command` (which runs example `name`), stdin empty, stdout and
/// stderr piped.
fn start_piped(name: &str, mut command: std::process::Command) -> std::process::Child {
    use std::process::Stdio;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e} (cargo test builds examples)"))
}

/// Starts an example with `args` and waits for its first line,
/// `listening on http://HOST:PORT`, which gives its address.
pub fn spawn_example(name: &str, args: &[&str]) -> Example {
    listening(name, start_example_process(name, args))
}

/// Like [`spawn_example`], with the program allowed at most `limit` open
/// descriptors (`ulimit -n`, set by `sh` before it runs the program), so
/// that a test can make it run out of them.
#[cfg(unix)]
pub fn spawn_example_with_fd_limit(name: &str, args: &[&str], limit: u32) -> Example {
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\"")).arg(example_path(name)).args(args);
    listening(name, start_piped(name, command))
}

/// Waits for the first line of a started example, `listening on
/// http://HOST:PORT`, which gives its address.
fn listening(name: &str, mut child: std::process::Child) -> Example {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).expect("first line");
    let addr = first
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{name}: unexpected first line {first:?}"))
        .parse()
        .expect("an address");
    Example { child, addr, stdout }
}
