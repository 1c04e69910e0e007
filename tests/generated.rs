//! Generated tests: properties checked over many random inputs from a small
//! seeded generator (SplitMix64, written here; no crates).
//!
//! 1. Split invariance: TCP delivers a byte stream, not messages, so the
//!    same pipelined requests cut at any points must get byte-for-byte the
//!    same responses as when sent in one write (RFC 9112 §2.2, §9.3.2).
//! 2. Mutation: requests with random byte flips, inserted CR/LF/NUL/SP/`:`,
//!    truncations and duplications never crash the server, never hold a
//!    connection past its short timeouts, and always end in well-formed
//!    responses or a clean close (error responses close: RFC 9112 §6.3,
//!    §9.6).
//! 3. Round trip: every response the server writes, in every framing mode
//!    (Content-Length, chunked, close-delimited, HEAD, 204/304), parses back
//!    with the test-side parser to the status, fields and body the handler
//!    gave (RFC 9112 §6.3, RFC 9110 §6.4.1, §9.3.2).
//!
//! `H1SERVE_PROPTEST_CASES=N` sets the number of cases of each property
//! (defaults keep the file to a few seconds); `H1SERVE_PROPTEST_SEED=S`
//! (decimal or 0x-hex) sets the first seed. A failure prints the seed of the
//! failing case and its input, escaped; `H1SERVE_PROPTEST_SEED=<that seed>
//! H1SERVE_PROPTEST_CASES=1` replays it alone.

mod common;

use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use h1serve::{CloseReason, Method, Request, Response, Running, Server, reason_phrase};

// ---------------------------------------------------------------------------
// The generator and the case driver.

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, and every seed, including 0,
/// gives a good stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num/den`.
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

fn env_number(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
    .or_else(|| panic!("{name}={v:?} is not a number"))
}

/// The number of cases of a property: `H1SERVE_PROPTEST_CASES`, else its
/// default.
fn case_count(default: usize) -> usize {
    env_number("H1SERVE_PROPTEST_CASES").map_or(default, |n| n as usize)
}

/// The seeds of `n` cases: the first is the base seed (so that a printed
/// seed replays its case as case 0), the rest follow from it.
fn seeds(default_seed: u64, n: usize) -> Vec<u64> {
    let base = env_number("H1SERVE_PROPTEST_SEED").unwrap_or(default_seed);
    let mut chain = Rng(base);
    (0..n).map(|i| if i == 0 { base } else { chain.next() }).collect()
}

/// Checks one case; a panic inside (the test-side parser asserts) counts as
/// a failure of that case. On failure, panics with the seed and the input.
fn check_case<I>(
    property: &str,
    seed: u64,
    input: &I,
    show: impl Fn(&I) -> String,
    check: impl FnOnce(&I) -> Result<(), String>,
) {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| check(input)));
    let why = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(why)) => why,
        Err(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into()),
    };
    panic!(
        "{property} failed for seed {seed:#x}: {why}\n  input: {}\n  replay: H1SERVE_PROPTEST_SEED={seed:#x} H1SERVE_PROPTEST_CASES=1",
        show(input)
    );
}

fn escape(b: impl AsRef<[u8]>) -> String {
    b.as_ref().escape_ascii().to_string()
}

/// A parsed response for a failure message, its body cut short.
fn show_resp(r: &Resp) -> String {
    let body = &r.body[..r.body.len().min(200)];
    format!("{} {:?} {:?} framing {} body({}) {}", r.status, r.reason, r.headers, r.framing, r.body.len(), escape(body))
}

// ---------------------------------------------------------------------------
// Valid requests and what the echo handler answers to them.

/// Which response the echo handler builds, chosen by the first path segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `Response::text`: Content-Length.
    Text,
    /// `Response::from_reader`: Content-Length, streamed.
    Reader,
    /// `Response::stream`: chunked to 1.1, close-delimited to 1.0.
    Stream,
    NoContent,
    NotModified,
}

const KINDS: [(Kind, &str); 5] = [
    (Kind::Text, "/text"),
    (Kind::Reader, "/reader"),
    (Kind::Stream, "/stream"),
    (Kind::NoContent, "/204"),
    (Kind::NotModified, "/304"),
];

/// What the handler reports about a request: method, target, version, every
/// field in order, the body, the trailers. The generator computes the same
/// text from what it sent.
fn echo_text(req: &mut Request) -> String {
    let mut s = format!("{} {} {}\n", req.method(), req.target(), req.version());
    for (name, value) in req.headers().iter() {
        s.push_str(&format!("{name}: {}\n", escape(value)));
    }
    match req.read_body() {
        Ok(body) => s.push_str(&format!("body {}: {}\n", body.len(), escape(body))),
        Err(e) => s.push_str(&format!("body error: {e}\n")),
    }
    if let Some(trailers) = req.body().trailers() {
        for (name, value) in trailers.iter() {
            s.push_str(&format!("trailer {name}: {}\n", escape(value)));
        }
    }
    s
}

fn echo_response(req: &mut Request) -> Response {
    let kind = KINDS.iter().find(|(_, prefix)| req.path().starts_with(prefix)).map_or(Kind::Text, |k| k.0);
    let text = echo_text(req);
    match kind {
        Kind::Text => Response::text(text),
        Kind::Reader => {
            let len = text.len() as u64;
            Response::from_reader(io::Cursor::new(text.into_bytes()), len)
        }
        Kind::Stream => Response::stream(move |w| {
            let (a, b) = text.as_bytes().split_at(text.len() / 2);
            w.write_all(a)?;
            w.flush()?;
            w.write_all(b)
        }),
        Kind::NoContent => Response::status(204).with_header("X-Echo-Len", text.len().to_string()),
        Kind::NotModified => Response::status(304).with_header("X-Echo-Len", text.len().to_string()),
    }
}

/// One generated request: its bytes and the response expected for it.
#[derive(Debug, Clone)]
struct GenRequest {
    wire: Vec<u8>,
    method: String,
    kind: Kind,
    http10: bool,
    /// The handler's echo text for it.
    echo: String,
    /// The response to it ends the connection.
    closes: bool,
}

struct GenOptions {
    /// Whether HEAD may be generated (the mutation property parses every
    /// response as one to a GET, so it leaves HEAD out).
    head: bool,
    max_body: usize,
}

/// Field names the server reads itself: random fields never use them.
const FRAMING_NAMES: [&str; 6] = ["content-length", "transfer-encoding", "host", "connection", "expect", "te"];

fn random_case(rng: &mut Rng, s: &str) -> String {
    s.chars()
        .map(|c| match rng.below(4) {
            0 => c.to_ascii_uppercase(),
            1 => c.to_ascii_lowercase(),
            _ => c,
        })
        .collect()
}

fn token(rng: &mut Rng, max: usize) -> String {
    const TCHAR: &[u8] = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..rng.range(1, max)).map(|_| rng.pick(TCHAR) as char).collect()
}

/// A field value: visible ASCII (and sometimes obs-text) with single spaces
/// or tabs inside, none at the ends.
fn field_value(rng: &mut Rng, max: usize, obs_text: bool) -> Vec<u8> {
    let len = rng.range(0, max);
    let mut v: Vec<u8> = Vec::with_capacity(len);
    for i in 0..len {
        let b = match rng.below(12) {
            0 if i > 0 && i + 1 < len && !matches!(v.last(), Some(b' ' | b'\t')) => rng.pick(b" \t"),
            1 if obs_text => 0x80 + rng.below(0x80) as u8,
            _ => 0x21 + rng.below(0x7e - 0x20) as u8,
        };
        v.push(b);
    }
    v
}

/// Optional whitespace around a field value (RFC 9110 §5.6.3).
fn ows(rng: &mut Rng) -> &'static str {
    rng.pick(&["", "", " ", " ", "\t", " \t "])
}

/// Body bytes: arbitrary bytes, or text that looks like HTTP.
fn body_bytes(rng: &mut Rng, max: usize, head_allowed: bool) -> Vec<u8> {
    let len = match rng.below(20) {
        0..=13 => rng.range(0, 64.min(max)),
        14..=18 => rng.range(0, 1024.min(max)),
        _ => rng.range(0, max),
    };
    if rng.chance(1, 2) {
        let mut pieces: Vec<&[u8]> =
            vec![b"GET / HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n", b"0\r\n\r\n", b"Content-Length: 5\r\n"];
        if head_allowed {
            pieces.push(b"HEAD / HTTP/1.1\r\n");
        }
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            if rng.chance(1, 3) {
                v.extend_from_slice(rng.pick(&pieces));
            } else {
                v.push(rng.byte() & 0x7f);
            }
        }
        v.truncate(len);
        v
    } else {
        let mut v: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        if !head_allowed {
            // Keep "HEAD" out even by chance (see GenOptions::head).
            for w in 0..v.len().saturating_sub(3) {
                if &v[w..w + 4] == b"HEAD" {
                    v[w] = b'h';
                }
            }
        }
        v
    }
}

/// The chunked coding of `body` (RFC 9112 §7.1) with random chunk sizes,
/// hex case, leading zeros, extensions and trailers; returns the wire
/// bytes and the trailers as the handler reports them.
fn chunked(rng: &mut Rng, body: &[u8]) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut wire = Vec::new();
    let size_line = |rng: &mut Rng, wire: &mut Vec<u8>, n: usize| {
        let zeros = "0".repeat(rng.pick(&[0, 0, 0, 1, 3]));
        let hex = if rng.chance(1, 2) { format!("{n:x}") } else { format!("{n:X}") };
        wire.extend_from_slice(format!("{zeros}{hex}").as_bytes());
        if rng.chance(1, 4) {
            let ext = rng.pick(&[";a", ";a=b", ";name=\"q \\\" v\"", " ; x = y", ";a;b=c"]);
            wire.extend_from_slice(ext.as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
    };
    let mut rest = body;
    while !rest.is_empty() {
        let n = match rng.below(3) {
            0 => rng.range(1, rest.len().min(8)),
            _ => rng.range(1, rest.len()),
        };
        size_line(rng, &mut wire, n);
        wire.extend_from_slice(&rest[..n]);
        wire.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    size_line(rng, &mut wire, 0);
    let mut trailers = Vec::new();
    for _ in 0..rng.pick(&[0, 0, 0, 1, 2]) {
        let name = format!("X-Trailer-{}", token(rng, 6));
        let value = field_value(rng, 20, true);
        wire.extend_from_slice(format!("{name}:{}", ows(rng)).as_bytes());
        wire.extend_from_slice(&value);
        wire.extend_from_slice(format!("{}\r\n", ows(rng)).as_bytes());
        trailers.push((name, value));
    }
    wire.extend_from_slice(b"\r\n");
    (wire, trailers)
}

/// One valid request; `last` asks for one that ends the connection.
fn gen_request(rng: &mut Rng, opts: &GenOptions, last: bool) -> GenRequest {
    let mut methods = vec!["GET", "GET", "GET", "POST", "POST", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE"];
    if opts.head {
        methods.extend(["HEAD", "HEAD"]);
    }
    let method = rng.pick(&methods).to_string();
    let http10 = rng.chance(1, 6);
    let (mut kind, mut prefix) = rng.pick(&KINDS);
    if http10 && !last && kind == Kind::Stream && method != "HEAD" {
        // A close-delimited response would end the connection early.
        (kind, prefix) = KINDS[0];
    }
    // Any token character but `#`: a request target has no fragment.
    let mut target = format!("{prefix}/{}", token(rng, 8).replace('#', "-"));
    if rng.chance(1, 3) {
        target.push('?');
        target.push_str(&String::from_utf8_lossy(&field_value(rng, 16, false)).replace([' ', '\t', '#'], "+"));
    }
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };

    // Fields in a random order; the handler reports them as (name, value).
    let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
    if !http10 || rng.chance(1, 2) {
        fields.push((
            random_case(rng, "Host"),
            rng.pick(&["x", "example.com:8080", "[::1]:80", "127.0.0.1", ""]).as_bytes().to_vec(),
        ));
    }
    let connection = match (http10, last) {
        (true, false) => Some(rng.pick(&["keep-alive", "Keep-Alive", "keep-alive, x-hop"])),
        (true, true) => rng.chance(1, 2).then_some("close"),
        (false, false) => rng.chance(1, 5).then(|| rng.pick(&["keep-alive", "x-hop"])),
        (false, true) => Some(rng.pick(&["close", "Close", "x-hop, close"])),
    };
    if let Some(c) = connection {
        fields.push((random_case(rng, "Connection"), c.as_bytes().to_vec()));
    }
    for _ in 0..rng.range(0, 5) {
        let name = match rng.below(3) {
            0 => {
                let common = rng.pick(&["Accept", "User-Agent", "Cookie", "Cache-Control", "X-Request-Id"]);
                random_case(rng, common)
            }
            _ => token(rng, 12),
        };
        if FRAMING_NAMES.iter().any(|n| n.eq_ignore_ascii_case(&name)) || name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        fields.push((name, field_value(rng, 40, true)));
    }
    let body_likely = matches!(method.as_str(), "POST" | "PUT" | "PATCH");
    let has_body = rng.chance(if body_likely { 7 } else { 1 }, 10);
    let mut body = Vec::new();
    let mut body_wire = Vec::new();
    let mut trailers = Vec::new();
    if has_body {
        body = body_bytes(rng, opts.max_body, opts.head);
        if !http10 && rng.chance(2, 5) {
            fields.push((random_case(rng, "Transfer-Encoding"), b"chunked".to_vec()));
            (body_wire, trailers) = chunked(rng, &body);
        } else {
            let zeros = "0".repeat(rng.pick(&[0, 0, 0, 2]));
            fields.push((random_case(rng, "Content-Length"), format!("{zeros}{}", body.len()).into_bytes()));
            body_wire = body.clone();
        }
    }
    // Shuffle the fields (Fisher-Yates): order must not matter to framing.
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i + 1));
    }

    let mut wire = Vec::new();
    if rng.chance(1, 10) {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(format!("{method} {target} {version}\r\n").as_bytes());
    let mut echo = format!("{method} {target} {version}\n");
    for (name, value) in &fields {
        wire.extend_from_slice(format!("{name}:{}", ows(rng)).as_bytes());
        wire.extend_from_slice(value);
        wire.extend_from_slice(format!("{}\r\n", ows(rng)).as_bytes());
        echo.push_str(&format!("{name}: {}\n", escape(value)));
    }
    wire.extend_from_slice(b"\r\n");
    wire.extend_from_slice(&body_wire);
    echo.push_str(&format!("body {}: {}\n", body.len(), escape(&body)));
    for (name, value) in &trailers {
        echo.push_str(&format!("trailer {name}: {}\n", escape(value)));
    }
    let close_delimited = http10 && kind == Kind::Stream && method != "HEAD";
    let closes = connection.is_some_and(|c| c.to_ascii_lowercase().contains("close"))
        || (http10 && connection.is_none())
        || close_delimited;
    GenRequest { wire, method, kind, http10, echo, closes }
}

/// 1 to 6 pipelined requests; only the last ends the connection.
fn gen_sequence(rng: &mut Rng, opts: &GenOptions) -> Vec<GenRequest> {
    let n = rng.range(1, 6);
    (0..n).map(|i| gen_request(rng, opts, i + 1 == n)).collect()
}

/// Checks a parsed response against the echo the generator expects.
fn check_echo(req: &GenRequest, r: &Resp) -> Result<(), String> {
    let head = req.method == "HEAD";
    let fail = |what: String| Err(format!("{} {}: {what}; got {}", req.method, req.kind_name(), show_resp(r)));
    let (status, framing) = match req.kind {
        Kind::NoContent => (204, "none"),
        Kind::NotModified => (304, "none"),
        _ if head => (200, "none"),
        Kind::Stream if req.http10 => (200, "close"),
        Kind::Stream => (200, "chunked"),
        Kind::Text | Kind::Reader => (200, "length"),
    };
    if r.status != status || r.framing != framing {
        return fail(format!("expected {status} with framing {framing}"));
    }
    let echo_len = req.echo.len().to_string();
    match req.kind {
        Kind::NoContent | Kind::NotModified => {
            if r.header("x-echo-len") != Some(&echo_len) || r.header("content-length").is_some() {
                return fail(format!("expected X-Echo-Len {echo_len} and no Content-Length"));
            }
        }
        _ if head => {
            let (cl, te) = match req.kind {
                Kind::Stream if req.http10 => (None, None),
                Kind::Stream => (None, Some("chunked")),
                _ => (Some(echo_len.as_str()), None),
            };
            if r.header("content-length") != cl || r.header("transfer-encoding") != te || !r.body.is_empty() {
                return fail(format!("HEAD: expected Content-Length {cl:?}, Transfer-Encoding {te:?}, no body"));
            }
        }
        _ => {
            if r.body != req.echo.as_bytes() {
                return fail(format!("body differs from the echo {:?}", req.echo));
            }
        }
    }
    if r.closes() != req.closes {
        return fail(format!("Connection: close expected {}", req.closes));
    }
    Ok(())
}

impl GenRequest {
    fn kind_name(&self) -> &'static str {
        KINDS.iter().find(|k| k.0 == self.kind).map_or("?", |k| k.1)
    }
}

/// Parses `bytes` with the test-side parser (which reads from a socket, so
/// the bytes go through a loopback connection), one response per method.
fn parse_responses(bytes: &[u8], methods: &[&str]) -> Result<Vec<Resp>, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let mut writer = TcpStream::connect(listener.local_addr().unwrap()).map_err(|e| e.to_string())?;
    let (reader, _) = listener.accept().map_err(|e| e.to_string())?;
    reader.set_read_timeout(Some(PATIENCE)).unwrap();
    let data = bytes.to_vec();
    let feeder = thread::spawn(move || {
        let _ = writer.write_all(&data);
    });
    let mut c = Client::from_stream(reader);
    let mut out = Vec::new();
    for m in methods {
        match c.read_response_to(m) {
            Ok(r) => out.push(r),
            Err(e) => return Err(format!("response {} of {}: {e}", out.len() + 1, methods.len())),
        }
    }
    let rest = c.rest().map_err(|e| e.to_string())?;
    feeder.join().unwrap();
    if !rest.is_empty() {
        return Err(format!("bytes after the last response: {}", escape(rest)));
    }
    Ok(out)
}

/// Sends `pieces` (with a pause after those marked) while reading every
/// response until the server closes.
fn deliver(addr: SocketAddr, pieces: &[(&[u8], bool)]) -> Result<Vec<u8>, String> {
    let s = connect(addr);
    s.set_nodelay(true).unwrap();
    let mut reader = s.try_clone().unwrap();
    let collector = thread::spawn(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    let mut w = &s;
    for (piece, pause) in pieces {
        if w.write_all(piece).is_err() {
            // The server closed early; what it answered is compared below.
            break;
        }
        // With TCP_NODELAY each piece leaves as its own segment; a pause
        // makes it likely that the server reads it before the next one.
        if *pause {
            thread::sleep(Duration::from_micros(300));
        }
    }
    collector.join().unwrap().map_err(|e| format!("reading the responses: {e}"))
}

/// Masks the value of every `Date` field: the only bytes that may differ
/// between two runs.
fn mask_dates(mut bytes: Vec<u8>) -> Vec<u8> {
    let pat = b"\r\nDate: ";
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(pat.len()).position(|w| w == pat) {
        let mut j = i + at + pat.len();
        while j < bytes.len() && bytes[j] != b'\r' {
            bytes[j] = b'#';
            j += 1;
        }
        i = j;
    }
    bytes
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    let at = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(60);
    format!(
        "lengths {} and {}, first difference at byte {at}:\n    whole: {}\n    split: {}",
        a.len(),
        b.len(),
        escape(&a[from..(at + 60).min(a.len())]),
        escape(&b[from..(at + 60).min(b.len())])
    )
}

// ---------------------------------------------------------------------------
// 1. Split invariance.

struct SplitCase {
    requests: Vec<GenRequest>,
    wire: Vec<u8>,
    /// Where the split delivery cuts, and after which cuts it pauses.
    cuts: Vec<(usize, bool)>,
}

fn gen_split_case(rng: &mut Rng) -> SplitCase {
    let requests = gen_sequence(rng, &GenOptions { head: true, max_body: 4096 });
    let wire: Vec<u8> = requests.iter().flat_map(|r| r.wire.iter().copied()).collect();
    // Piece sizes from one byte to the whole; sometimes every byte alone.
    let mut cuts = Vec::new();
    let mut at = 0;
    let style = rng.below(4);
    while at < wire.len() {
        let left = wire.len() - at;
        let n = match style {
            0 if wire.len() <= 2048 => 1,
            1 => rng.range(1, left.min(16)),
            _ => rng.range(1, left),
        };
        at += n;
        cuts.push((at, false));
    }
    cuts.truncate(400);
    if cuts.last().is_none_or(|c| c.0 != wire.len()) {
        cuts.push((wire.len(), false));
    }
    // A few pauses, not one per piece: a pause costs scheduler time, which
    // on a loaded machine is long.
    for _ in 0..rng.range(0, 8) {
        let i = rng.below(cuts.len());
        cuts[i].1 = true;
    }
    SplitCase { requests, wire, cuts }
}

fn show_split(c: &SplitCase) -> String {
    let cuts: Vec<usize> = c.cuts.iter().map(|c| c.0).collect();
    format!("{}\n  cut after bytes: {cuts:?}", escape(&c.wire))
}

fn check_split(addr: SocketAddr, c: &SplitCase) -> Result<(), String> {
    let whole = mask_dates(deliver(addr, &[(&c.wire, false)])?);
    let mut pieces = Vec::new();
    let mut from = 0;
    for &(to, pause) in &c.cuts {
        pieces.push((&c.wire[from..to], pause));
        from = to;
    }
    let split = mask_dates(deliver(addr, &pieces)?);
    if whole != split {
        return Err(format!("split delivery got other responses: {}", first_difference(&whole, &split)));
    }
    let methods: Vec<&str> = c.requests.iter().map(|r| r.method.as_str()).collect();
    let responses = parse_responses(&whole, &methods)?;
    for (req, r) in c.requests.iter().zip(&responses) {
        check_echo(req, r)?;
    }
    Ok(())
}

#[test]
fn pipelined_requests_get_the_same_responses_however_they_are_split() {
    let running = start(default_builder(), echo_response);
    let addr = running.local_addr();
    let seeds = seeds(0x5e11_7001, case_count(150));
    let (mut requests, mut pieces) = (0, 0);
    for &seed in &seeds {
        let case = gen_split_case(&mut Rng(seed));
        requests += case.requests.len();
        pieces += case.cuts.len();
        check_case("split invariance", seed, &case, show_split, |c| check_split(addr, c));
    }
    eprintln!("split invariance: {} sequences ({requests} requests) sent whole and in {pieces} pieces", seeds.len());
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HandlerPanicked), 0);
}

// ---------------------------------------------------------------------------
// 2. Mutation.

/// Far above every timeout of the mutation server (300 ms): only a server
/// that ignores its timeouts makes a client wait this long.
const HANG_BOUND: Duration = Duration::from_secs(5);

/// Statuses the server may answer a mutated request with: the handler's,
/// or one of its own refusals.
const MUTATION_STATUSES: [u16; 11] = [200, 204, 304, 400, 408, 413, 414, 417, 431, 501, 505];

struct MutationCase {
    input: Vec<u8>,
    /// Keep the write side open: the server's timeouts must end it.
    hold_open: bool,
    mutations: Vec<String>,
}

fn mutate(rng: &mut Rng, mut v: Vec<u8>, log: &mut Vec<String>) -> Vec<u8> {
    for _ in 0..rng.range(1, 4) {
        let at = rng.below(v.len() + 1);
        match rng.below(8) {
            0 if at < v.len() => {
                let b = rng.byte();
                log.push(format!("byte {at} := {b:#04x}"));
                v[at] = b;
            }
            1 if at < v.len() => {
                let bit = 1u8 << rng.below(8);
                log.push(format!("byte {at} ^= {bit:#04x}"));
                v[at] ^= bit;
            }
            2 | 3 => {
                let b = rng.pick(b"\r\n\0 :\t");
                log.push(format!("insert {:?} at {at}", b as char));
                v.insert(at, b);
            }
            4 => {
                log.push(format!("truncate to {at}"));
                v.truncate(at);
            }
            5 if at < v.len() => {
                let end = rng.range(at, v.len());
                let copy = v[at..end].to_vec();
                let dest = rng.range(at, v.len());
                log.push(format!("duplicate {at}..{end} at {dest}"));
                v.splice(dest..dest, copy);
            }
            6 if at < v.len() => {
                let end = rng.range(at, v.len().min(at + 16));
                log.push(format!("delete {at}..{end}"));
                v.drain(at..end);
            }
            7 if at < v.len() => {
                // Repeating a short range reaches the limits: long lines,
                // many fields, big lengths.
                let end = rng.range(at + 1, v.len().min(at + 24));
                let times = rng.range(2, 200);
                log.push(format!("repeat {at}..{end} {times} times"));
                let copy = v[at..end].repeat(times - 1);
                v.splice(end..end, copy);
            }
            _ => {}
        }
    }
    v
}

fn gen_mutation_case(rng: &mut Rng, hold_open: bool) -> MutationCase {
    let requests = gen_sequence(rng, &GenOptions { head: false, max_body: 1024 });
    let wire: Vec<u8> = requests.iter().take(3).flat_map(|r| r.wire.iter().copied()).collect();
    let mut mutations = Vec::new();
    let input = mutate(rng, wire, &mut mutations);
    MutationCase { input, hold_open, mutations }
}

fn show_mutation(c: &MutationCase) -> String {
    format!("{} (hold open: {}; mutations: {})", escape(&c.input), c.hold_open, c.mutations.join(", "))
}

/// What the mutation cases saw, for the summary line.
#[derive(Default)]
struct Tally {
    statuses: Mutex<HashMap<u16, u64>>,
    clean_closes_without_response: AtomicU64,
    slowest_ms: AtomicU64,
}

fn check_mutation(addr: SocketAddr, c: &MutationCase, tally: &Tally) -> Result<(), String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(HANG_BOUND)).unwrap();
    s.set_write_timeout(Some(HANG_BOUND)).unwrap();
    let started = Instant::now();
    // The server may refuse and close before reading everything; a failed
    // write is then expected, and its response is still read below.
    let _ = (&s).write_all(&c.input);
    if !c.hold_open {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut client = Client::from_stream(s);
    let mut responses: Vec<Resp> = Vec::new();
    loop {
        match client.reader.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err(format!("no end after {:?} (hang) with {} responses", started.elapsed(), responses.len()));
            }
            Err(e) => return Err(format!("not a clean close after {} responses: {e}", responses.len())),
        }
        let r =
            client.read_response_to("GET").map_err(|e| format!("malformed response {}: {e}", responses.len() + 1))?;
        if !MUTATION_STATUSES.contains(&r.status) {
            return Err(format!("unexpected status {}", r.status));
        }
        if let Some(prev) = responses.last().filter(|p| p.closes()) {
            return Err(format!("a response after one that said close ({})", prev.status));
        }
        // Every refusal closes: after a framing error the server cannot know
        // where a next request would start (RFC 9112 §6.3, §9.6).
        if r.status >= 400 && !r.closes() {
            return Err(format!("{} without Connection: close", r.status));
        }
        responses.push(r);
    }
    let elapsed = started.elapsed();
    if elapsed > HANG_BOUND {
        return Err(format!("the exchange took {elapsed:?}"));
    }
    tally.slowest_ms.fetch_max(elapsed.as_millis() as u64, SeqCst);
    if responses.is_empty() {
        tally.clean_closes_without_response.fetch_add(1, SeqCst);
    }
    let mut statuses = tally.statuses.lock().unwrap();
    for r in &responses {
        *statuses.entry(r.status).or_default() += 1;
    }
    Ok(())
}

/// The echo handler, except that HEAD (which mutation never aims for) gets
/// an empty body, so every response parses as one to a GET.
fn mutation_handler(req: &mut Request) -> Response {
    if *req.method() == Method::Head {
        let _ = req.read_body();
        return Response::status(200);
    }
    echo_response(req)
}

fn assert_still_serving(running: &Running) {
    let mut c = Client::new(running.local_addr());
    c.send("GET /text/alive HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response().status, 200, "the server stopped answering: {:?}", running.stats());
}

#[test]
fn mutated_requests_never_crash_or_hang_the_server() {
    let short = Duration::from_millis(300);
    let builder = Server::builder()
        .header_timeout(short)
        .idle_timeout(short)
        .body_read_timeout(short)
        .write_timeout(Duration::from_secs(2))
        .linger(short, 64 * 1024)
        .max_request_line(256)
        .max_head_bytes(2048)
        .max_headers(16)
        .max_body_bytes(2048);
    let running = start(builder, mutation_handler);
    let addr = running.local_addr();
    let tally = Tally::default();

    // Most cases half-close after sending, so the server sees the end of
    // input at once; four clients run them side by side.
    let fast = seeds(0x5e11_7002, case_count(2000));
    let workers = 4;
    thread::scope(|scope| {
        for w in 0..workers {
            let (fast, tally, running) = (&fast, &tally, &running);
            scope.spawn(move || {
                for (i, &seed) in fast.iter().enumerate().skip(w).step_by(workers) {
                    let case = gen_mutation_case(&mut Rng(seed), false);
                    check_case("mutation", seed, &case, show_mutation, |c| check_mutation(addr, c, tally));
                    if i % 500 == w {
                        assert_still_serving(running);
                    }
                }
            });
        }
    });

    // The rest keep their side open: only the server's header, idle and
    // body timeouts end them. They wait, so they run all at once, in
    // batches.
    let slow = seeds(0x5e11_7003, case_count(2000).div_ceil(40));
    for batch in slow.chunks(32) {
        thread::scope(|scope| {
            for &seed in batch {
                let tally = &tally;
                scope.spawn(move || {
                    let case = gen_mutation_case(&mut Rng(seed), true);
                    check_case("mutation (held open)", seed, &case, show_mutation, |c| check_mutation(addr, c, tally));
                });
            }
        });
    }

    assert_still_serving(&running);
    assert_all_closed(&running);
    let stats = running.stats();
    assert_eq!(stats.closes(CloseReason::HandlerPanicked), 0, "{stats:?}");
    let mut statuses: Vec<_> = tally.statuses.lock().unwrap().iter().map(|(s, n)| (*s, *n)).collect();
    statuses.sort();
    eprintln!(
        "mutation: {} inputs ({} half-closed, {} held open); responses by status {statuses:?}; \
         {} closed without a response; slowest exchange {} ms",
        fast.len() + slow.len(),
        fast.len(),
        slow.len(),
        tally.clean_closes_without_response.load(SeqCst),
        tally.slowest_ms.load(SeqCst),
    );
    let reasons: Vec<String> = CloseReason::ALL
        .iter()
        .filter(|r| stats.closes(**r) > 0)
        .map(|r| format!("{r}={}", stats.closes(*r)))
        .collect();
    eprintln!("mutation: server closes by reason: {}", reasons.join(" "));
}

// ---------------------------------------------------------------------------
// 3. Round trip of responses.

#[derive(Debug, Clone)]
enum BodyKind {
    Bytes,
    /// `from_reader`, with a reader that returns at most this many bytes
    /// per call.
    Reader(usize),
    /// `stream`: written in these pieces; `true` flushes after a piece;
    /// empty writes between pieces (an empty chunk would end the body).
    Stream(Vec<(usize, bool)>, bool),
}

#[derive(Debug, Clone)]
struct Spec {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    kind: BodyKind,
}

/// Fields the server writes itself: a handler's are dropped.
const SERVER_OWNED: [&str; 4] = ["content-length", "transfer-encoding", "connection", "keep-alive"];

fn is_server_owned(name: &str) -> bool {
    SERVER_OWNED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn gen_spec(rng: &mut Rng) -> Spec {
    let status = match rng.below(4) {
        0 => rng.pick(&[204, 304]),
        1 => rng.range(200, 599) as u16,
        _ => rng.pick(&[200, 201, 206, 301, 400, 404, 418, 500, 503, 599]),
    };
    let mut headers = Vec::new();
    let mut has_date = false;
    for _ in 0..rng.range(0, 6) {
        let (name, value) = match rng.below(6) {
            // Framing and connection fields from the handler: the server
            // must drop them (and close when `Connection` says close).
            0 => {
                let owned = rng.pick(&SERVER_OWNED);
                let name = random_case(rng, owned);
                let value = rng.pick(&["0", "999", "chunked", "gzip", "close", "keep-alive", "x, Close", "timeout=1"]);
                (name, value.to_string())
            }
            1 if !has_date => {
                has_date = true;
                (random_case(rng, "Date"), "Sun, 06 Nov 1994 08:49:37 GMT".to_string())
            }
            _ => (token(rng, 16), String::from_utf8(field_value(rng, 50, false)).unwrap()),
        };
        headers.push((name, value));
    }
    let len = match rng.below(10) {
        0..=5 => rng.range(0, 100),
        6..=8 => rng.range(0, 5000),
        _ => rng.range(60_000, 200_000),
    };
    let mut body: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
    // Bytes that look like framing must stay data.
    for _ in 0..rng.range(0, 3) {
        if body.len() > 20 {
            let at = rng.below(body.len() - 20);
            let s: &[u8] = rng.pick(&[&b"\r\n0\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\n", b"\r\n\r\n"]);
            body[at..at + s.len()].copy_from_slice(s);
        }
    }
    let kind = match rng.below(3) {
        0 => BodyKind::Bytes,
        1 => BodyKind::Reader(rng.range(1, 70_000)),
        _ => {
            let mut pieces = Vec::new();
            let mut left = len;
            while left > 0 {
                let most = rng.pick(&[1, 16, 1000, 70_000]);
                let n = rng.range(1, left.min(most));
                pieces.push((n, rng.chance(1, 4)));
                left -= n;
            }
            BodyKind::Stream(pieces, rng.chance(1, 3))
        }
    };
    Spec { status, headers, body, kind }
}

/// Gives a reader's bytes in pieces of at most `max` bytes.
struct Pieces {
    data: Vec<u8>,
    at: usize,
    max: usize,
}

impl Read for Pieces {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.max).min(self.data.len() - self.at);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn build_response(spec: Spec) -> Response {
    let Spec { status, headers, body, kind } = spec;
    let mut r = match kind {
        BodyKind::Bytes => Response::bytes(body),
        BodyKind::Reader(max) => {
            let len = body.len() as u64;
            Response::from_reader(Pieces { data: body, at: 0, max }, len)
        }
        BodyKind::Stream(pieces, empty_writes) => Response::stream(move |w| {
            let mut rest = &body[..];
            for (n, flush) in pieces {
                if empty_writes && w.write(&[])? != 0 {
                    return Err(io::Error::other("an empty write wrote something"));
                }
                w.write_all(&rest[..n])?;
                rest = &rest[n..];
                if flush {
                    w.flush()?;
                }
            }
            Ok(())
        }),
    }
    .with_status(status);
    for (name, value) in headers {
        r = r.with_header(&name, value);
    }
    r
}

/// One request of the round trip: a spec, the method and version asking
/// for it.
struct Exchange {
    id: u64,
    spec: Spec,
    head: bool,
    /// None: HTTP/1.1; Some(keep_alive): HTTP/1.0.
    http10: Option<bool>,
}

struct RoundTripCase {
    exchanges: Vec<Exchange>,
    pipelined: bool,
}

fn gen_round_trip(rng: &mut Rng, next_id: &AtomicU64) -> RoundTripCase {
    let exchanges = (0..rng.range(1, 5))
        .map(|_| Exchange {
            id: next_id.fetch_add(1, SeqCst),
            spec: gen_spec(rng),
            head: rng.chance(1, 4),
            http10: match rng.below(5) {
                0 => Some(true),
                1 => Some(false),
                _ => None,
            },
        })
        .collect();
    RoundTripCase { exchanges, pipelined: rng.chance(1, 2) }
}

fn show_round_trip(c: &RoundTripCase) -> String {
    let parts: Vec<String> = c
        .exchanges
        .iter()
        .map(|e| {
            format!(
                "{} {:?}: status {} headers {:?} {:?} body({}) {}",
                if e.head { "HEAD" } else { "GET" },
                e.http10,
                e.spec.status,
                e.spec.headers,
                e.spec.kind,
                e.spec.body.len(),
                escape(&e.spec.body[..e.spec.body.len().min(64)])
            )
        })
        .collect();
    format!("{} (pipelined: {})", parts.join("\n    "), c.pipelined)
}

fn request_for(e: &Exchange) -> String {
    let method = if e.head { "HEAD" } else { "GET" };
    match e.http10 {
        None => format!("{method} /rt/{} HTTP/1.1\r\nHost: x\r\n\r\n", e.id),
        Some(true) => format!("{method} /rt/{} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", e.id),
        Some(false) => format!("{method} /rt/{} HTTP/1.0\r\n\r\n", e.id),
    }
}

/// Checks one response against its spec; returns whether it closed the
/// connection.
fn check_round_trip_response(e: &Exchange, r: &Resp) -> Result<bool, String> {
    let spec = &e.spec;
    let fail = |what: String| Err(format!("{what}; got {}", show_resp(r)));
    let no_body_status = spec.status == 204 || spec.status == 304;
    // RFC 9110 §15.3.6: a 205 carries no content, said with a length of 0
    // whatever the body (its framing is not implied, as 204's is).
    let reset_content = spec.status == 205;
    let stream = matches!(spec.kind, BodyKind::Stream(..)) && !reset_content;
    let http10 = e.http10.is_some();
    let handler_close = spec.headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("connection") && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"))
    });
    let close_delimited = stream && http10 && !e.head && !no_body_status;
    let closes = handler_close || e.http10 == Some(false) || close_delimited;

    if r.status != spec.status || r.reason != reason_phrase(spec.status) {
        return fail(format!("status {} {:?} expected", spec.status, reason_phrase(spec.status)));
    }
    let framing = match () {
        _ if e.head || no_body_status => "none",
        _ if !stream => "length",
        _ if http10 => "close",
        _ => "chunked",
    };
    if r.framing != framing {
        return fail(format!("framing {framing} expected"));
    }
    let body_len = if reset_content { 0 } else { spec.body.len() };
    let expected_cl = (!no_body_status && !stream).then(|| body_len.to_string());
    let expected_te = (!no_body_status && stream && !http10).then_some("chunked");
    if r.header("content-length") != expected_cl.as_deref() || r.header_count("content-length") > 1 {
        return fail(format!("Content-Length {expected_cl:?} expected"));
    }
    if r.header("transfer-encoding") != expected_te || r.header_count("transfer-encoding") > 1 {
        return fail(format!("Transfer-Encoding {expected_te:?} expected"));
    }
    let body: &[u8] = if framing == "none" || reset_content { &[] } else { &spec.body };
    if r.body != body {
        return fail(format!("body of {} bytes expected, got {} bytes", body.len(), r.body.len()));
    }
    let expected_connection = match (closes, http10) {
        (true, _) => Some("close"),
        (false, true) => Some("keep-alive"),
        (false, false) => None,
    };
    if r.header("connection") != expected_connection || r.header_count("connection") > 1 {
        return fail(format!("Connection {expected_connection:?} expected"));
    }
    if r.header("keep-alive").is_some() != (expected_connection == Some("keep-alive")) {
        return fail("Keep-Alive only with HTTP/1.0 keep-alive".into());
    }
    // Exactly one Date: the handler's if it set one, else the server's.
    if r.header_count("date") != 1 {
        return fail("one Date expected".into());
    }
    let spec_has_date = spec.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("date"));
    let got: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| !is_server_owned(n) && (spec_has_date || !n.eq_ignore_ascii_case("date")))
        .cloned()
        .collect();
    let want: Vec<(String, String)> = spec.headers.iter().filter(|(n, _)| !is_server_owned(n)).cloned().collect();
    if got != want {
        return fail(format!("handler fields {want:?} expected"));
    }
    Ok(closes)
}

fn check_round_trip(addr: SocketAddr, specs: &Mutex<HashMap<u64, Spec>>, c: &RoundTripCase) -> Result<usize, String> {
    for e in &c.exchanges {
        specs.lock().unwrap().insert(e.id, e.spec.clone());
    }
    let mut client = Client::new(addr);
    if c.pipelined {
        let all: String = c.exchanges.iter().map(request_for).collect();
        client.send(all);
    }
    let mut answered = 0;
    let mut closed = false;
    for (i, e) in c.exchanges.iter().enumerate() {
        if !c.pipelined {
            client.send(request_for(e));
        }
        let method = if e.head { "HEAD" } else { "GET" };
        let r = client.read_response_to(method).map_err(|err| format!("response {}: {err}", i + 1))?;
        answered += 1;
        closed = check_round_trip_response(e, &r).map_err(|why| format!("response {}: {why}", i + 1))?;
        if closed {
            break;
        }
    }
    // After a response that closes, nothing more: requests already sent
    // behind it are never answered.
    if closed && !client.at_eof() {
        return Err(format!("no clean end-of-stream after response {answered}"));
    }
    let mut left = specs.lock().unwrap();
    for e in &c.exchanges {
        left.remove(&e.id);
    }
    Ok(answered)
}

#[test]
fn responses_parse_back_to_what_the_handler_gave() {
    let specs: Arc<Mutex<HashMap<u64, Spec>>> = Arc::default();
    let lookup = specs.clone();
    let running = start(default_builder(), move |req| {
        let id: u64 = req.path().trim_start_matches("/rt/").parse().unwrap_or(u64::MAX);
        match lookup.lock().unwrap().remove(&id) {
            Some(spec) => build_response(spec),
            None => Response::text("no such spec").with_status(500),
        }
    });
    let addr = running.local_addr();
    let next_id = AtomicU64::new(0);
    let seeds = seeds(0x5e11_7004, case_count(150));
    let mut responses = 0;
    for &seed in &seeds {
        let case = gen_round_trip(&mut Rng(seed), &next_id);
        check_case("round trip", seed, &case, show_round_trip, |c| {
            responses += check_round_trip(addr, &specs, c)?;
            Ok(())
        });
    }
    eprintln!("round trip: {} connections, {responses} responses checked", seeds.len());
    assert_all_closed(&running);
    assert_eq!(running.stats().closes(CloseReason::HandlerPanicked), 0);
}
